"""Reading the dead-letter stream exactly, and republishing from it.

Single messages are read with the stream API's get (`$JS.API.STREAM.MSG.GET`), which the stream
leader answers. A listing reads the stream with an ephemeral consumer (headers only: payloads
can be large), which a replica that is still catching up may serve with a prefix; so it notes
the leader's last sequence first and reads again unless it got that far. Under authorization
no tool creates consumers: a listing reads by batched direct gets (adapters/direct_reader.py,
exact by itself; payloads included).
"""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RawStreamMsg
from nats.js.errors import APIError, NotFoundError

from eventsource.adapters.direct_reader import read_by_direct_get
from eventsource.adapters.jetstream import STREAM_NOT_FOUND, WRONG_LAST_SEQUENCE
from eventsource.adapters.stream_reader import reads_by_direct_get
from eventsource.adapters.subscriptions import unsubscribe_quietly
from eventsource.core.dead_letter_records import (
    REPUBLISHED,
    REPUBLISHED_SUBJECT,
    RETRY_OF_HEADER,
    DeadLetter,
    LetterFilter,
    Retried,
    RetryRecord,
    letter_from,
    retried_from,
)
from eventsource.core.errors import ConfigError, InfrastructureError
from eventsource.core.subjects import (
    DEAD_LETTER_STREAM,
    dead_letter_retry_subject,
    parse_dead_letter_subject,
)

READ_ATTEMPTS_MAX = 5
READ_PAUSE_S = 0.5
FETCH_BATCH = 500
FETCH_TIMEOUT_S = 5.0
PUBLISH_TIMEOUT_S = 5.0
_FAILURES = (nats.errors.Error, OSError, TimeoutError)


class Listing(msgspec.Struct, frozen=True, kw_only=True):
    letters: list[DeadLetter]  # the newest matching ones, oldest first
    matched: int  # how many matched in all


async def list_letters(nc: Client, wanted: LetterFilter, limit: int) -> Listing:
    """The last `limit` letters that match, each with its retry record, as the leader has them."""
    for _ in range(READ_ATTEMPTS_MAX):
        last_seq, stored = await _leader_state(nc)
        found = _Found(wanted, limit)
        reached = await _scan(nc, wanted.since_ms, found)
        if reached >= last_seq or (
            reached == 0 and await _nothing_since(nc, last_seq, stored, wanted)
        ):
            return found.listing()
        await asyncio.sleep(READ_PAUSE_S)
    raise InfrastructureError(
        f"{DEAD_LETTER_STREAM} was read only in part {READ_ATTEMPTS_MAX} times (a replica still "
        "catching up answered): try again"
    )


class _Found:
    """What one read of the stream kept: the newest `limit` matches, and every retry record."""

    def __init__(self, wanted: LetterFilter, limit: int) -> None:
        self.wanted = wanted
        self.letters: collections.deque[DeadLetter] = collections.deque(maxlen=limit)
        self.matched = 0
        self.retried: dict[int, Retried] = {}

    def take(self, seq: int, at_ms: int, subject: str, headers: dict[str, str]) -> None:
        parsed = parse_dead_letter_subject(subject)
        if parsed is None:
            return
        if parsed[1] is not None:
            record = retried_from(headers, at_ms)
            if record is not None:
                self.retried[parsed[1]] = record
            return
        size = int(headers.get("Nats-Msg-Size", 0))
        letter = letter_from(seq, at_ms, subject, headers, size)
        if letter is not None and self.wanted.matches(letter):
            self.matched += 1
            self.letters.append(letter)

    def listing(self) -> Listing:
        letters = [
            msgspec.structs.replace(x, retried=self.retried.get(x.seq)) for x in self.letters
        ]
        return Listing(letters=letters, matched=self.matched)


async def get_letter(nc: Client, seq: int) -> tuple[DeadLetter, bytes] | None:
    """The letter stored as `seq` and its payload, or None if there is no letter there."""
    stored = await get_stored(nc, DEAD_LETTER_STREAM, seq)
    if stored is None or stored.seq is None or stored.time is None:
        return None
    payload = stored.data or b""
    letter = letter_from(seq, _ms(stored.time), stored.subject or "", stored.headers, len(payload))
    return None if letter is None else (letter, payload)


async def get_retried(nc: Client, letter: DeadLetter) -> Retried | None:
    """The retry record of `letter`, if it was republished."""
    subject = dead_letter_retry_subject(letter.participant, letter.seq)
    try:
        stored = await nc.jetstream().get_last_msg(DEAD_LETTER_STREAM, subject)
    except NotFoundError:
        return None
    except _FAILURES as exc:
        raise InfrastructureError(f"reading {subject} failed: {exc!r}") from None
    return retried_from(stored.headers, _ms(stored.time) if stored.time else 0)


async def get_stored(nc: Client, stream: str, seq: int) -> RawStreamMsg | None:
    """Message `seq` of `stream`, from its leader; None if there is none."""
    try:
        return await nc.jetstream().get_msg(stream, seq)
    except NotFoundError as exc:
        if exc.err_code == STREAM_NOT_FOUND:
            raise _no_stream(stream) from None
        return None
    except _FAILURES as exc:
        raise InfrastructureError(f"reading {stream}:{seq} failed: {exc!r}") from None


async def has_consumer(nc: Client, stream: str, consumer: str) -> bool:
    try:
        await nc.jetstream().consumer_info(stream, consumer)
    except NotFoundError:
        return False
    except _FAILURES as exc:
        raise InfrastructureError(f"reading consumer {stream}/{consumer} failed: {exc!r}") from None
    return True


async def republish(
    nc: Client,
    stream: str,
    subject: str,
    payload: bytes,
    msg_id: str,
    letter_seq: int,
    extra: dict[str, str] | None = None,
) -> tuple[int, bool]:
    """Publish onto `stream`; (its sequence, whether the server had it already). `extra`: more
    headers (the operator's signature of a republished protocol message)."""
    headers = {
        **(extra or {}),
        "Nats-Msg-Id": msg_id,
        RETRY_OF_HEADER: f"{DEAD_LETTER_STREAM}:{letter_seq}",
    }
    try:
        ack = await nc.jetstream().publish(
            subject, payload, headers=headers, stream=stream, timeout=PUBLISH_TIMEOUT_S
        )
    except _FAILURES as exc:
        raise InfrastructureError(f"republishing onto {subject} failed: {exc!r}") from None
    return ack.seq, bool(ack.duplicate)


async def record_retry(nc: Client, letter: DeadLetter, stream: str, seq: int, subject: str) -> None:
    """Write the retry record once: a second one is refused by its expected sequence 0."""
    record = RetryRecord(dead_letter=letter.seq, stream=stream, seq=seq, subject=subject)
    headers = {
        "Nats-Msg-Id": f"natsbank-retried-{letter.seq}-{letter.msg_id}",
        "Nats-Expected-Last-Subject-Sequence": "0",
        REPUBLISHED: f"{stream}:{seq}",
        REPUBLISHED_SUBJECT: subject,
    }
    try:
        await nc.jetstream().publish(
            dead_letter_retry_subject(letter.participant, letter.seq),
            msgspec.json.encode(record),
            headers=headers,
            stream=DEAD_LETTER_STREAM,
            timeout=PUBLISH_TIMEOUT_S,
        )
    except APIError as exc:
        if exc.err_code != WRONG_LAST_SEQUENCE:  # another retry recorded it first
            raise InfrastructureError(f"recording the retry failed: {exc!r}") from None
    except _FAILURES as exc:
        raise InfrastructureError(f"recording the retry failed: {exc!r}") from None


async def _scan(nc: Client, since_ms: int | None, found: _Found) -> int:
    """Hand every message (from `since_ms`) to `found`; return the last sequence read."""
    if reads_by_direct_get(nc):
        return await _scan_by_direct_get(nc, since_ms, found)
    js = nc.jetstream()
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.ALL if since_ms is None else DeliverPolicy.BY_START_TIME,
        opt_start_time=None if since_ms is None else datetime.fromtimestamp(since_ms / 1000, UTC),
        headers_only=True,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    reached = 0
    sub = None
    try:
        sub = await js.pull_subscribe("", stream=DEAD_LETTER_STREAM, config=config)
        pending = (await sub.consumer_info()).num_pending
        while pending > 0:
            try:
                msgs = await sub.fetch(min(pending, FETCH_BATCH), timeout=FETCH_TIMEOUT_S)
            except TimeoutError:
                break  # read in part: the caller sees it by the sequence reached
            for msg in msgs:
                meta = msg.metadata
                reached = meta.sequence.stream
                found.take(reached, _ms(meta.timestamp), msg.subject, msg.headers or {})
            pending = msgs[-1].metadata.num_pending if msgs else 0
    except _FAILURES as exc:
        raise InfrastructureError(f"reading {DEAD_LETTER_STREAM} failed: {exc!r}") from None
    finally:
        await unsubscribe_quietly(sub)
    return reached


async def _scan_by_direct_get(nc: Client, since_ms: int | None, found: _Found) -> int:
    reached = 0
    try:
        async for msg in read_by_direct_get(nc, DEAD_LETTER_STREAM):
            reached = msg.seq
            at_ms = _ms(datetime.fromisoformat(msg.headers["Nats-Time-Stamp"]))
            if since_ms is None or at_ms >= since_ms:
                found.take(msg.seq, at_ms, msg.subject, msg.headers)
    except _FAILURES as exc:
        raise InfrastructureError(f"reading {DEAD_LETTER_STREAM} failed: {exc!r}") from None
    return reached


async def _leader_state(nc: Client) -> tuple[int, int]:
    """(last sequence, messages stored), as the stream leader answers stream info."""
    try:
        state = (await nc.jetstream().stream_info(DEAD_LETTER_STREAM)).state
        return state.last_seq, state.messages
    except NotFoundError:
        raise _no_stream(DEAD_LETTER_STREAM) from None
    except _FAILURES as exc:
        raise InfrastructureError(f"reading {DEAD_LETTER_STREAM} failed: {exc!r}") from None


async def _nothing_since(nc: Client, last_seq: int, stored: int, wanted: LetterFilter) -> bool:
    """Whether a read that got nothing was right: the stream is empty (never written, or every
    letter aged out), or the leader's newest message is older than --since."""
    if stored == 0:
        return True
    if wanted.since_ms is None:
        return False
    newest = await get_stored(nc, DEAD_LETTER_STREAM, last_seq)
    return newest is None or newest.time is None or _ms(newest.time) < wanted.since_ms


def _no_stream(stream: str) -> ConfigError:
    return ConfigError(f"there is no stream {stream}: run `natsbank streams init`")


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
