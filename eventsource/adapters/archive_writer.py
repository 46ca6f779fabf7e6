"""Writing one archived period: the events gzipped into a spool as they come, the ids shards and
the snapshot, and the read back that must match before a manifest may exist. `archive_store.py`
is the API."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from nats.aio.msg import Msg
from nats.js.api import RawStreamMsg
from nats.js.client import JetStreamContext
from nats.js.object_store import ObjectStore

from eventsource.adapters.archive_filters import filter_of
from eventsource.adapters.archive_reader import (
    events_digest,
    ids_shard_json,
    manifest_of,
    snapshot_json,
)
from eventsource.adapters.direct_reader import StoredMessage
from eventsource.adapters.object_store_io import put_bytes, read_small
from eventsource.adapters.stream_reader import delivery_ns
from eventsource.core.archive_filter import KeyFilter
from eventsource.core.archive_format import (
    ArchivedMessage,
    PeriodExtras,
    encode_line,
    events_object,
    filter_object,
    ids_object,
    kept_headers,
    manifest_object,
    snapshot_object,
)
from eventsource.core.archive_head import ZERO_CHAIN
from eventsource.core.archive_ids import IdEntry, encode_ids
from eventsource.core.archive_manifest import Manifest, encode_manifest, sha256_hex
from eventsource.core.archive_period import Gzipper, PeriodBuilder, gzip_bytes
from eventsource.core.errors import ArchiveCorrupt, ArchiveError
from eventsource.core.limits import (
    ARCHIVE_BUCKET,
    ARCHIVE_CHUNK_BYTES,
    ARCHIVE_FILTER_BYTES_MAX,
    ARCHIVE_IDS_BYTES_MAX,
    ARCHIVE_SMALL_OBJECT_BYTES_MAX,
    ARCHIVE_SNAPSHOT_BYTES_MAX,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LedgerMessage = StoredMessage | Msg | RawStreamMsg | ArchivedMessage


async def spool_events(
    messages: AsyncIterable[LedgerMessage] | Iterable[LedgerMessage],
    builder: PeriodBuilder,
    spool: BinaryIO,
) -> str:
    """gzip the NDJSON into `spool` as the messages come; return the SHA-256 of the NDJSON."""
    gzipper = Gzipper()
    pending = bytearray()
    async for message in _each(messages):
        archived = as_archived(message)
        builder.add(archived)
        pending += encode_line(archived)
        if len(pending) >= ARCHIVE_CHUNK_BYTES:  # few, large calls into zlib
            spool.write(gzipper.add(bytes(pending)))
            pending.clear()
    spool.write(gzipper.add(bytes(pending)) + gzipper.finish())
    return gzipper.sha256.hexdigest()


async def _each(messages: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[Any]:
    if isinstance(messages, AsyncIterable):
        async for message in messages:
            yield message
    else:
        for message in messages:
            yield message


def as_archived(message: LedgerMessage) -> ArchivedMessage:
    """A ledger message as a stream read (StoredMessage), a consumer (Msg) or a get
    (RawStreamMsg) gives it. Every way the time is the stored nanoseconds cut to the
    millisecond, so all reads archive the same."""
    if isinstance(message, ArchivedMessage):
        return message
    if isinstance(message, StoredMessage):
        seq, time_ms = message.seq, message.time_ns // 1_000_000
        subject, payload, headers = message.subject, message.data, message.headers
    elif isinstance(message, Msg):
        seq, time_ms = message.metadata.sequence.stream, delivery_ns(message.reply) // 1_000_000
        subject, payload, headers = message.subject, message.data, message.headers
    else:
        seq, stamp = message.seq or 0, message.time
        subject, payload, headers = message.subject or "", message.data, message.headers
        if stamp is None:
            raise ArchiveError(f"message {seq} on {subject} has no timestamp")
        time_ms = (stamp - _EPOCH) // timedelta(milliseconds=1)  # nats-py cuts it to the µs
    return ArchivedMessage(
        seq=seq,
        time_ms=time_ms,
        subject=subject,
        payload=payload or b"",
        headers=kept_headers(headers),
    )


def check_funded(builder: PeriodBuilder, funded: Mapping[str, int] | None) -> None:
    if funded is None:
        return
    given = {currency: amount for currency, amount in funded.items() if amount}
    if given != dict(builder.funded):
        raise ArchiveError(
            f"partition {builder.partition} period {builder.period}: funded {given} differs "
            f"from the FUNDED entries of its events {dict(builder.funded)}"
        )


async def check_follows(
    js: JetStreamContext,
    store: ObjectStore,
    builder: PeriodBuilder,
    prev_chain: str,
) -> Manifest | None:
    """A period continues the one before: its chain and where it ended. Checked before
    anything is written, so an archiver's slip cannot store a broken chain. Returns the
    manifest of the period before (None for period 0)."""
    partition, period = builder.partition, builder.period
    where = f"partition {partition} period {period}"
    if period == 0:
        if prev_chain != ZERO_CHAIN:
            raise ArchiveError(f"{where} follows nothing: its prev_chain must be {ZERO_CHAIN}")
        return None
    before = await manifest_of(js, store, partition, period - 1)
    if before is None:
        raise ArchiveError(f"{where} cannot follow period {period - 1}: it is not archived")
    if (before.chain, before.end_seq) != (prev_chain, builder.first_seq):
        raise ArchiveError(
            f"{where} must start at {before.end_seq} with prev_chain {before.chain} (the end of "
            f"period {period - 1}), not at {builder.first_seq} with {prev_chain}"
        )
    return before


def checked_extras(builder: PeriodBuilder, extras: PeriodExtras) -> PeriodExtras:
    where = f"partition {builder.partition} period {builder.period}"
    if not isinstance(extras, PeriodExtras) or not isinstance(extras.snapshot, bytes):
        raise TypeError(f"{where}: extras must give a PeriodExtras with a bytes snapshot")
    if len(extras.snapshot) > ARCHIVE_SNAPSHOT_BYTES_MAX:
        raise ArchiveError(f"{where}: a snapshot of more than {ARCHIVE_SNAPSHOT_BYTES_MAX} bytes")
    return extras


async def put_ids_shards(
    store: ObjectStore, builder: PeriodBuilder, shards: list[dict[str, IdEntry]]
) -> list[str]:
    """Each shard gzipped and stored, one at a time; their SHA-256s, uncompressed, in order."""
    digests = []
    for shard, ids in enumerate(shards):
        name = ids_object(builder.partition, builder.period, shard)
        data = encode_ids(ids)
        if len(data) > ARCHIVE_IDS_BYTES_MAX:
            raise ArchiveError(f"{name}: more than {ARCHIVE_IDS_BYTES_MAX} bytes uncompressed")
        await put_bytes(store, name, gzip_bytes(data))
        digests.append(sha256_hex(data))
    return digests


async def put_filter(store: ObjectStore, builder: PeriodBuilder, key_filter: KeyFilter) -> str:
    """The key filter, stored as it is (its bits are random: gzip would not shrink them)."""
    name = filter_object(builder.partition, builder.period)
    data = key_filter.encode()
    if len(data) > ARCHIVE_FILTER_BYTES_MAX:
        raise ArchiveError(f"{name}: more than {ARCHIVE_FILTER_BYTES_MAX} bytes")
    await put_bytes(store, name, data)
    return sha256_hex(data)


async def put_snapshot(store: ObjectStore, builder: PeriodBuilder, snapshot: bytes) -> str:
    name = snapshot_object(builder.partition, builder.period)
    await put_bytes(store, name, gzip_bytes(snapshot))
    return sha256_hex(snapshot)


async def read_back(js: JetStreamContext, store: ObjectStore, manifest: Manifest) -> None:
    """Every object as stored now, against what was meant to be stored: the events (digest
    and lines), each ids shard and the snapshot (digests; ArchiveCorrupt if one differs)."""
    partition, period = manifest.partition, manifest.period
    events_sha256, lines = await events_digest(js, store, events_object(partition, period))
    if (events_sha256, lines) != (manifest.events_sha256, manifest.messages):
        raise ArchiveCorrupt(f"{events_object(partition, period)}: read back other than written")
    for shard in range(manifest.ids_shards):
        await ids_shard_json(js, store, manifest, shard, keep=False)
    if manifest.filter_sha256 is not None:
        await filter_of(js, store, manifest)
    await snapshot_json(js, store, manifest, keep=False)


async def commit_manifest(js: JetStreamContext, store: ObjectStore, manifest: Manifest) -> None:
    name = manifest_object(manifest.partition, manifest.period)
    data = encode_manifest(manifest)
    await put_bytes(store, name, data)
    if await read_small(js, store, ARCHIVE_BUCKET, name, ARCHIVE_SMALL_OBJECT_BYTES_MAX) != data:
        raise ArchiveCorrupt(f"{name}: read back other than written")
