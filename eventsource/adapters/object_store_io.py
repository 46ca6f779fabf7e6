"""Object Store reads that are exact and bounded, and writes retried through transient
unavailability (`adapters/retry.py`), on top of nats-py 2.16's ObjectStore.

nats-py's `put` takes bytes or a file (it calls `readinto` in a thread) and publishes 128 KiB
chunks one by one, then the object's meta; the meta is the commit, and a put that fails
purges its chunks. Its `get` is not used: it reads the chunks through an ephemeral ordered
consumer (placed on any replica, possibly one that is catching up), builds the whole object in
memory by concatenation, and waits for ever when none of the chunks is there (measured: an
object whose chunks were purged, as a concurrent put purges the old ones; 15 s, no answer).
Here every chunk is a STREAM.MSG.GET answered by the stream leader (`next_by_subj`), so a read
is exact, streamed, and ends: a missing chunk is an ArchiveCorrupt, and the size and SHA-256 of
the meta are checked.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import BinaryIO

from nats.js.api import ObjectInfo, ObjectMeta, ObjectMetaOptions, ObjectStoreConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import (
    BadObjectMetaError,
    BadRequestError,
    BucketNotFoundError,
    NotFoundError,
    ObjectNotFoundError,
)
from nats.js.object_store import ObjectStore

from eventsource.adapters.retry import transient_retry
from eventsource.core.errors import ArchiveCorrupt
from eventsource.core.limits import ARCHIVE_CHUNK_BYTES, ARCHIVE_REREADS_MAX

_DIGEST_PREFIX = "SHA-256="


def object_stream(bucket: str) -> str:
    return f"OBJ_{bucket}"


def _chunk_subject(bucket: str, nuid: str) -> str:
    return f"$O.{bucket}.C.{nuid}"


async def open_bucket(
    js: JetStreamContext,
    bucket: str,
    replicas_if_missing: Callable[[], Awaitable[int]] | None = None,
) -> ObjectStore | None:
    """The bucket, or None if it does not exist; created (file storage, with the replicas the
    callback names) when a callback is given. Creating it twice with the same settings is a
    no-op on the server; a concurrent creation with other settings wins, and is bound."""

    async def bind() -> ObjectStore | None:
        try:
            return await js.object_store(bucket)
        except BucketNotFoundError:
            return None

    store = await transient_retry(bind, what=f"open of bucket {bucket}")
    if store is not None or replicas_if_missing is None:
        return store
    replicas = await replicas_if_missing()
    config = ObjectStoreConfig(
        description="natsbank: archived ledger periods (docs/ARCHIVE.md)",
        storage=StorageType.FILE,
        replicas=replicas,
    )

    async def create() -> ObjectStore:
        try:
            return await js.create_object_store(bucket, config=config)
        except BadRequestError:  # created meanwhile with other settings
            found = await bind()
            if found is None:
                raise
            return found

    return await transient_retry(create, what=f"creation of bucket {bucket}")


async def object_info(store: ObjectStore, name: str) -> ObjectInfo | None:
    """The object's meta from the stream leader, or None when it is missing or deleted."""

    async def read() -> ObjectInfo | None:
        try:
            return await store.get_info(name)
        except ObjectNotFoundError:
            return None
        except BadObjectMetaError:
            raise ArchiveCorrupt(f"object {name}: its meta does not decode") from None

    return await transient_retry(read, what=f"read of object {name}'s meta")


async def read_chunks(js: JetStreamContext, bucket: str, info: ObjectInfo) -> AsyncIterator[bytes]:
    """The object's bytes, chunk by chunk, each from the stream leader; ArchiveCorrupt if a
    chunk is missing or the size or digest differ from the meta."""
    what = f"object {info.name}"
    stream, subject = object_stream(bucket), _chunk_subject(bucket, info.nuid)
    digest, size, seq = hashlib.sha256(), 0, 1
    chunks = info.chunks or 0
    for index in range(chunks):
        get = functools.partial(_next_chunk, js, stream, subject, seq)
        found = await transient_retry(get, what=f"read of {what}")
        if found is None:
            raise ArchiveCorrupt(f"{what}: chunk {index + 1} of {chunks} is missing")
        data, seq = found[0], found[1] + 1
        size += len(data)
        if size > (info.size or 0):
            raise ArchiveCorrupt(f"{what}: more bytes than the {info.size} its meta says")
        digest.update(data)
        yield data
    if size != (info.size or 0):
        raise ArchiveCorrupt(f"{what}: {size} bytes where its meta says {info.size}")
    if _digest_text(digest.digest()) != _strip_prefix(info.digest or ""):
        raise ArchiveCorrupt(f"{what}: its chunks do not match the SHA-256 of its meta")


async def _next_chunk(
    js: JetStreamContext, stream: str, subject: str, seq: int
) -> tuple[bytes, int] | None:
    try:
        msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
    except NotFoundError:
        return None
    return msg.data or b"", int(msg.seq or 0)


def _digest_text(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode()


def _strip_prefix(digest: str) -> str:
    # nats.go and nats-py write "SHA-256="; some writers upper-case the prefix.
    return digest[len(_DIGEST_PREFIX) :] if digest.upper().startswith(_DIGEST_PREFIX) else digest


async def read_small(
    js: JetStreamContext, store: ObjectStore, bucket: str, name: str, size_max: int
) -> bytes | None:
    """A whole small object (a manifest, a directory entry), or None if it does not exist.
    One replaced while it was read (its old chunks purged: the archiver updates directory
    entries while lookups read them) is read again, as it is now."""
    for _ in range(ARCHIVE_REREADS_MAX):
        info = await object_info(store, name)
        if info is None:
            return None
        if (info.size or 0) > size_max:
            raise ArchiveCorrupt(f"object {name}: {info.size} bytes, more than {size_max}")
        try:
            return b"".join([chunk async for chunk in read_chunks(js, bucket, info)])
        except ArchiveCorrupt:
            now = await object_info(store, name)
            if now is not None and now.nuid == info.nuid:
                raise  # the same object: really corrupt
    raise ArchiveCorrupt(f"object {name}: replaced {ARCHIVE_REREADS_MAX} times while read")


async def put_file(store: ObjectStore, name: str, source: BinaryIO) -> ObjectInfo:
    """Store the file's content as `name`, replacing any earlier object of that name. A retry
    starts the file again: a put whose meta was not stored left nothing visible."""
    meta = ObjectMeta(name=name, options=ObjectMetaOptions(max_chunk_size=ARCHIVE_CHUNK_BYTES))

    async def attempt() -> ObjectInfo:
        source.seek(0)
        return await store.put(name, source, meta=meta)

    return await transient_retry(attempt, what=f"write of object {name}")


async def put_bytes(store: ObjectStore, name: str, data: bytes) -> ObjectInfo:
    meta = ObjectMeta(name=name, options=ObjectMetaOptions(max_chunk_size=ARCHIVE_CHUNK_BYTES))
    put = functools.partial(store.put, name, data, meta=meta)
    return await transient_retry(put, what=f"write of object {name}")


async def delete_object(store: ObjectStore, name: str) -> None:
    """Delete `name` (its meta says deleted, its chunks are purged); a missing one is fine."""

    async def attempt() -> None:
        with contextlib.suppress(ObjectNotFoundError):
            await store.delete(name)

    await transient_retry(attempt, what=f"delete of object {name}")
