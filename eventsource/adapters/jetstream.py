"""The one place natsbank connects, and the JetStream reads nats-py has no helper for:
last message per subject, and the leader's last sequence. Reads are retried through transient
unavailability (`adapters/retry.py`). The atomic batch commit: `adapters/batch_commit.py`."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Sequence

import nats
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NotFoundError

from eventsource.adapters.credentials import NO_CREDENTIAL, Credential
from eventsource.adapters.retry import TRANSIENT_RETRY_SECONDS, is_transient_reply, transient_retry
from eventsource.core.errors import InfrastructureError, TemporarilyUnavailable
from eventsource.core.limits import READ_TIMEOUT_S
from eventsource.core.permissions import JS_API
from eventsource.core.signing import server_nonce_problem

# JetStream error codes natsbank reacts to (server errors.json).
WRONG_LAST_SEQUENCE = 10071  # the subject moved past the expected sequence
WRONG_LAST_SEQUENCE_IN_BATCH = 10164  # the same refusal, as reported for an atomic batch
STREAM_NOT_FOUND = 10059
NOT_FOUND = 404


class LedgerClient(Client):
    """A connection that knows the JetStream API prefix its credential must use: the ledger's
    own `$JS.API` for the operator's tools, the imported `$JS.ledger.API` for a bank
    (core/permissions.py). Every `jetstream()` context and raw API request goes through it."""

    js_api: str = JS_API
    reads_by_direct_get: bool = False  # stream reads without consumers (adapters/stream_reader)

    def jetstream(self, **options):  # type: ignore[override]
        options.setdefault("prefix", self.js_api)
        return super().jetstream(**options)

    def _setup_nkeys_connect(self) -> None:
        """nats-py signs whatever nonce the server sends with the credential's nkey, and a
        bank's service nkey is also its signing key: sign only nonces a server would make."""
        super()._setup_nkeys_connect()
        sign = self._signature_cb
        if sign is None:
            return

        def guarded(nonce: str) -> bytes:
            if problem := server_nonce_problem(nonce):
                raise nats.errors.Error(problem)
            return sign(nonce)

        self._signature_cb = guarded


def api_subject(nc: Client, tail: str) -> str:
    """A raw JetStream API request subject (`STREAM.INFO.<stream>`) for this connection."""
    return f"{getattr(nc, 'js_api', JS_API)}.{tail}"


async def connect(
    url: str, *, name: str = "natsbank", credential: Credential = NO_CREDENTIAL, **options
) -> Client:
    """The one place natsbank connects: with `credential`'s authentication, reply inbox and
    JetStream API prefix."""
    servers = [u.strip() for u in url.split(",") if u.strip()]
    nc = LedgerClient()
    nc.js_api = credential.js_api
    nc.reads_by_direct_get = credential.reads_by_direct_get
    defaults = {
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 3,
        "allow_reconnect": True,
    }
    try:
        await nc.connect(
            servers=servers, name=name, **{**defaults, **credential.options, **options}
        )
    except (OSError, NoRespondersError, NatsTimeout, nats.errors.Error) as exc:
        raise InfrastructureError(f"cannot connect to NATS at {url}: {exc}") from None
    return nc


def refusal(error: dict) -> type[InfrastructureError]:
    """The error to raise for a JetStream API error: TemporarilyUnavailable if it means "not
    now" (adapters/retry.py), else InfrastructureError."""
    transient = is_transient_reply(error.get("code"), error.get("err_code"))
    return TemporarilyUnavailable if transient else InfrastructureError


async def read_last(
    nc: Client,
    stream: str,
    subject: str,
    *,
    leader: bool = False,
    timeout: float = READ_TIMEOUT_S,
    retry_seconds: float = TRANSIENT_RETRY_SECONDS,
) -> tuple[bytes, int] | None:
    """The last message on `subject` and its sequence, or None if the subject is empty.

    Direct gets may be answered by a lagging replica; `leader=True` asks the stream leader,
    which is exact. A read is safe to repeat: it is retried through transient unavailability
    for up to `retry_seconds`.
    """
    if leader:
        request = {"last_by_subj": subject}
        read = functools.partial(leader_get, nc, stream, request, subject, timeout)
    else:
        read = functools.partial(_direct_get, nc, stream, subject, timeout)
    return await transient_retry(read, what=f"read of {subject}", retry_seconds=retry_seconds)


async def first_sequence_from(
    nc: Client, stream: str, start: int, subject_filter: str
) -> int | None:
    """The stream sequence of the first message at or after `start` that matches
    `subject_filter` (wildcards allowed), from the stream leader; None when there is none."""
    request = {"seq": max(1, start), "next_by_subj": subject_filter}
    get = functools.partial(leader_get, nc, stream, request, subject_filter)
    found = await transient_retry(get, what=f"read of {stream} after {start}")
    return None if found is None else found[1]


async def leader_last_sequence(
    nc: Client,
    stream: str,
    filters: Sequence[str] | None = None,
    *,
    timeout: float = READ_TIMEOUT_S,
    retry_seconds: float = TRANSIENT_RETRY_SECONDS,
) -> int:
    """The stream's last sequence as its leader has it; with `filters`, the last sequence of a
    message on any of them (0: none). What an exact read must reach (`read_messages`).

    Both requests are answered by the stream leader alone: STREAM.INFO (nats-server answers it
    from a member only while the group has no leader, and then names no leader: refused here
    as transient) and STREAM.MSG.GET with `last_by_subj`, which takes a wildcard."""
    if not filters:
        read = functools.partial(_leader_info_last, nc, stream, timeout)
    else:
        read = functools.partial(_leader_filtered_last, nc, stream, list(filters), timeout)
    return await transient_retry(
        read, what=f"read of {stream}'s last sequence", retry_seconds=retry_seconds
    )


async def _stream_info(nc: Client, stream: str, timeout: float) -> dict:
    """One STREAM.INFO as a dict; a missing stream raises NotFoundError as nats-py does, an
    error JetStream calls transient TemporarilyUnavailable."""
    reply = await nc.request(api_subject(nc, f"STREAM.INFO.{stream}"), b"", timeout=timeout)
    body = json.loads(reply.data)
    error = body.get("error")
    if error and error.get("code") == NOT_FOUND:
        raise NotFoundError(NOT_FOUND, error.get("description"), error.get("err_code"), stream)
    if error:
        raise refusal(error)(f"stream info of {stream} failed: {error}")
    return body


async def _leader_info_last(nc: Client, stream: str, timeout: float) -> int:
    body = await _stream_info(nc, stream, timeout)
    if not (body.get("cluster") or {}).get("leader"):
        raise TemporarilyUnavailable(f"stream info of {stream} came from a member without a leader")
    return int(body["state"]["last_seq"])


async def _leader_filtered_last(nc: Client, stream: str, filters: list[str], timeout: float) -> int:
    last = 0
    for subject in filters:
        found = await leader_get(nc, stream, {"last_by_subj": subject}, subject, timeout)
        last = max(last, found[1] if found is not None else 0)
    return last


async def leader_get(
    nc: Client, stream: str, request: dict, subject: str, timeout: float = READ_TIMEOUT_S
) -> tuple[bytes, int] | None:
    """One STREAM.MSG.GET, answered by the stream leader; None when no message matches."""
    reply = await nc.request(
        api_subject(nc, f"STREAM.MSG.GET.{stream}"), json.dumps(request).encode(), timeout=timeout
    )
    body = json.loads(reply.data)
    error = body.get("error")
    if error:
        if error.get("code") == NOT_FOUND:
            return None
        raise refusal(error)(f"read of {subject} failed: {error}")
    message = body["message"]
    return base64.b64decode(message.get("data") or b""), int(message["seq"])


async def _direct_get(
    nc: Client, stream: str, subject: str, timeout: float = READ_TIMEOUT_S
) -> tuple[bytes, int] | None:
    """One DIRECT.GET of the last message on `subject`, answered by any replica."""
    reply = await nc.request(
        api_subject(nc, f"DIRECT.GET.{stream}.{subject}"), b"", timeout=timeout
    )
    headers = reply.headers or {}
    status = headers.get("Status")
    if status == str(NOT_FOUND):
        return None
    if status:
        raise refusal({"code": int(status)})(
            f"read of {subject} failed: {status} {headers.get('Description')}"
        )
    return reply.data, int(headers["Nats-Sequence"])


async def stream_state(nc: Client, stream: str) -> dict:
    """The stream's state as its leader reports it (nats-py's StreamState lacks
    `num_subjects`): first_seq, last_seq, messages, bytes, num_subjects, num_deleted."""

    async def read() -> dict:
        return (await _stream_info(nc, stream, READ_TIMEOUT_S))["state"]

    return await transient_retry(read, what=f"info of {stream}")
