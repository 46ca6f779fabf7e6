"""The JetStream calls natsbank needs that nats-py has no helper for: atomic batch commit and
last-message-per-subject reads."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import nats
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from eventsource.core.errors import CommitUnknown, InfrastructureError, StaleState
from eventsource.core.limits import COMMIT_TIMEOUT_S, MAX_BATCH_MESSAGES, READ_TIMEOUT_S
from eventsource.core.workset import Write

# JetStream error codes natsbank reacts to (server errors.json).
WRONG_LAST_SEQUENCE = 10071
WRONG_LAST_SEQUENCE_IN_BATCH = 10164  # the same refusal, as reported for an atomic batch
STREAM_NOT_FOUND = 10059


async def connect(url: str, *, name: str = "natsbank", **options) -> Client:
    servers = [u.strip() for u in url.split(",") if u.strip()]
    try:
        return await nats.connect(
            servers=servers,
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=3,
            allow_reconnect=True,
            **options,
        )
    except (OSError, NoRespondersError, NatsTimeout, nats.errors.Error) as exc:
        raise InfrastructureError(f"cannot connect to NATS at {url}: {exc}") from None


async def commit(nc: Client, writes: Sequence[Write], *, timeout: float = COMMIT_TIMEOUT_S) -> int:
    """Store `writes` as one atomic batch; return the stream sequence of the last message.

    The messages of a batch get consecutive sequences, so write i has `last - len + 1 + i`.
    """
    if not writes:
        raise ValueError("empty batch")
    if len(writes) > MAX_BATCH_MESSAGES:
        raise ValueError(f"batch of {len(writes)} messages exceeds {MAX_BATCH_MESSAGES}")
    batch_id = uuid.uuid4().hex
    last = len(writes)
    try:
        for index, write in enumerate(writes, 1):
            headers = {
                **(write.headers or {}),
                "Nats-Batch-Id": batch_id,
                "Nats-Batch-Sequence": str(index),
            }
            if write.expected is not None:
                headers["Nats-Expected-Last-Subject-Sequence"] = str(write.expected)
            if index < last:
                await nc.publish(write.subject, write.payload, headers=headers)
                continue
            headers["Nats-Batch-Commit"] = "1"
            reply = await nc.request(write.subject, write.payload, headers=headers, timeout=timeout)
    except (TimeoutError, NatsTimeout, NoRespondersError) as exc:
        raise CommitUnknown(str(exc) or type(exc).__name__) from None
    except nats.errors.ConnectionReconnectingError as exc:
        raise CommitUnknown("connection reconnecting") from exc
    ack = json.loads(reply.data)
    error = ack.get("error")
    if error:
        if error.get("err_code") in (WRONG_LAST_SEQUENCE, WRONG_LAST_SEQUENCE_IN_BATCH):
            raise StaleState(error.get("description", ""))
        raise InfrastructureError(f"commit refused: {error.get('description')} ({error})")
    return int(ack["seq"])


async def read_last(
    nc: Client, stream: str, subject: str, *, leader: bool = False, timeout: float = READ_TIMEOUT_S
) -> tuple[bytes, int] | None:
    """The last message on `subject` and its sequence, or None if the subject is empty.

    Direct gets may be answered by a lagging replica; `leader=True` asks the stream leader,
    which is exact.
    """
    try:
        if leader:
            reply = await nc.request(
                f"$JS.API.STREAM.MSG.GET.{stream}",
                json.dumps({"last_by_subj": subject}).encode(),
                timeout=timeout,
            )
            body = json.loads(reply.data)
            if "error" in body:
                if body["error"].get("code") == 404:
                    return None
                raise InfrastructureError(f"read of {subject} failed: {body['error']}")
            import base64

            message = body["message"]
            return base64.b64decode(message.get("data") or b""), int(message["seq"])
        reply = await nc.request(f"$JS.API.DIRECT.GET.{stream}.{subject}", b"", timeout=timeout)
    except (TimeoutError, NatsTimeout, NoRespondersError) as exc:
        raise InfrastructureError(f"read of {subject} timed out") from exc
    headers = reply.headers or {}
    status = headers.get("Status")
    if status == "404":
        return None
    if status:
        raise InfrastructureError(
            f"read of {subject} failed: {status} {headers.get('Description')}"
        )
    return reply.data, int(headers["Nats-Sequence"])
