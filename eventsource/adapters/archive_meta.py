"""Where each ledger stream's archive stands, and who may move it: the KV bucket `archive`.

- `head.<stream>`: the archive head (core/archive_head.py). Every message of the stream below
  `end_seq` is in the archive, verified, and may be purged from the live stream. Only a
  compare-and-set moves it, so two archivers can never both advance it from the same place.
- `lease.<stream>`: which archiver process works on the stream, until when. A run renews it
  between its steps and stops (ArchiveLeaseLost) once another holder has it. The lease keeps
  two archivers from doing the same work; the head's compare-and-set keeps them correct even
  if their clocks disagree about the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import msgspec
from nats.aio.client import Client
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from eventsource.adapters.retry import transient_retry
from eventsource.core.archive_head import Head
from eventsource.core.errors import ArchiveCorrupt, ArchiveLeaseLost
from eventsource.core.limits import ARCHIVE_LEASE_S, ARCHIVE_META_BUCKET

_head_decoder = msgspec.json.Decoder(Head)


class Lease(msgspec.Struct, frozen=True):
    holder: str
    until_ms: int


async def meta_bucket(nc: Client, replicas: int | None = None) -> KeyValue:
    """The bucket; created (with `replicas`, else as many as the registry has) if missing."""
    js = nc.jetstream()

    async def bind() -> KeyValue:
        try:
            return await js.key_value(ARCHIVE_META_BUCKET)
        except NotFoundError:
            if replicas is None:
                registry = await js.stream_info("KV_participants")
                count = registry.config.num_replicas or 1
            else:
                count = replicas
            config = KeyValueConfig(bucket=ARCHIVE_META_BUCKET, history=1, replicas=count)
            return await js.create_key_value(config)

    return await transient_retry(bind, what="open of the archive bucket")


async def existing_meta_bucket(nc: Client) -> KeyValue | None:
    """The bucket if an archiver ever created it; None (and nothing created) otherwise."""
    js = nc.jetstream()

    async def bind() -> KeyValue | None:
        try:
            return await js.key_value(ARCHIVE_META_BUCKET)
        except NotFoundError:
            return None

    return await transient_retry(bind, what="open of the archive bucket")


async def read_head(kv: KeyValue, stream: str) -> tuple[Head, int]:
    """The stream's head and its revision (0: nothing archived yet)."""

    async def read():
        try:
            entry = await kv.get(f"head.{stream}")
        except NotFoundError:  # KeyNotFoundError too
            return Head(), 0
        try:
            return _head_decoder.decode(entry.value or b""), entry.revision or 0
        except msgspec.DecodeError as exc:
            raise ArchiveCorrupt(f"the archive head of {stream} does not decode: {exc}") from None

    return await transient_retry(read, what=f"read of the archive head of {stream}")


async def advance_head(kv: KeyValue, stream: str, head: Head, revision: int) -> int:
    """Compare-and-set the head from `revision`; ArchiveLeaseLost if it moved meanwhile."""
    value = msgspec.json.encode(head)

    async def write() -> int:
        try:
            if revision == 0:
                return await kv.create(f"head.{stream}", value)
            return await kv.update(f"head.{stream}", value, last=revision)
        except KeyWrongLastSequenceError:
            raise ArchiveLeaseLost(
                f"the archive head of {stream} moved under this run: another archiver"
            ) from None

    return await transient_retry(write, what=f"update of the archive head of {stream}")


class StreamLease:
    """One archiver's hold on one stream's archive (see the module's docstring)."""

    def __init__(
        self,
        kv: KeyValue,
        stream: str,
        holder: str | None = None,
        *,
        ttl_s: float = ARCHIVE_LEASE_S,
    ) -> None:
        self.kv = kv
        self.stream = stream
        self.holder = holder or f"archiver-{uuid.uuid4().hex[:12]}"
        self.ttl_s = ttl_s
        self.other: str | None = None  # who held it when take() failed
        self._revision = 0

    @property
    def key(self) -> str:
        return f"lease.{self.stream}"

    async def take(self) -> bool:
        """Take the lease if it is free or expired (or ours); False if someone else has it."""
        now = _now_ms()
        try:
            entry = await self.kv.get(self.key)
        except NotFoundError:
            entry = None
        if entry is not None and entry.value:
            current = msgspec.json.decode(entry.value, type=Lease)
            if current.holder != self.holder and current.until_ms > now:
                self.other = current.holder
                return False
        try:
            self._revision = await self._write(entry.revision if entry else 0)
        except KeyWrongLastSequenceError:
            return False  # somebody took it between our read and our write
        return True

    async def wait_for(self, patience_s: float) -> bool:
        """Take it, waiting up to `patience_s` for another holder's lease to lapse (one that
        died keeps it until it expires)."""
        deadline = time.monotonic() + patience_s
        while not await self.take():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(min(1.0, self.ttl_s / 4))
        return True

    async def renew(self) -> None:
        """Extend the lease; ArchiveLeaseLost if it is not ours any more."""
        try:
            self._revision = await self._write(self._revision)
        except KeyWrongLastSequenceError:
            raise ArchiveLeaseLost(f"the archive lease of {self.stream} was taken over") from None

    async def release(self) -> None:
        with contextlib.suppress(Exception):  # taken over, or the server is gone: it lapses
            await self.kv.update(self.key, b"", last=self._revision)

    async def _write(self, revision: int) -> int:
        value = msgspec.json.encode(Lease(self.holder, _now_ms() + int(self.ttl_s * 1000)))
        if revision == 0:
            return await self.kv.create(self.key, value)
        return await self.kv.update(self.key, value, last=revision)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
