"""One period of the ledger archive, built and read a piece at a time: what its manifest and ids
shards say (PeriodBuilder), and gzip in and out with bounded memory. Pure: no I/O."""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from collections.abc import Iterator

import msgspec

from eventsource.core.account import EntryKind
from eventsource.core.archive_filter import KeyFilter
from eventsource.core.archive_fold import CARRIED_HEADER
from eventsource.core.archive_format import ArchivedMessage, id_time_ms
from eventsource.core.archive_ids import IdEntry, directory_hours, split_ids
from eventsource.core.archive_manifest import FoldFigures, Manifest, ids_sha256_of
from eventsource.core.errors import ArchiveCorrupt, NatsbankError, PeriodIncomplete
from eventsource.core.events import AccountChanged, account_event_decoder, transfer_event_decoder
from eventsource.core.limits import (
    ARCHIVE_GZIP_LEVEL,
    ARCHIVE_INFLATE_STEP_BYTES,
    ARCHIVE_LINE_BYTES_MAX,
    ARCHIVE_PERIOD_MAX,
)
from eventsource.core.money import parse_balance
from eventsource.core.subjects import state_prefix

GZIP_WBITS = 31  # zlib's window bits for a gzip wrapper: `zcat` reads the objects


class Gzipper:
    """gzip of a byte stream, fed in pieces; the sha256 is of the uncompressed bytes."""

    def __init__(self, level: int = ARCHIVE_GZIP_LEVEL) -> None:
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def add(self, data: bytes) -> bytes:
        self.sha256.update(data)
        self.size += len(data)
        return self._deflate.compress(data)

    def finish(self) -> bytes:
        return self._deflate.flush()


def gzip_bytes(data: bytes, level: int = ARCHIVE_GZIP_LEVEL) -> bytes:
    gzipper = Gzipper(level)
    return gzipper.add(data) + gzipper.finish()


class Inflater:
    """gunzip fed in pieces, never more than `ARCHIVE_INFLATE_STEP_BYTES` out at a time and
    `size_max` in all (None: a stream that is never held whole): a corrupt or hostile object
    cannot exhaust memory."""

    def __init__(self, what: str, size_max: int | None) -> None:
        self.what = what
        self._inflate = zlib.decompressobj(GZIP_WBITS)
        self._size_max = size_max
        self.sha256 = hashlib.sha256()
        self.size = 0

    def feed(self, compressed: bytes) -> Iterator[bytes]:
        data = compressed
        while data:
            try:
                out = self._inflate.decompress(data, ARCHIVE_INFLATE_STEP_BYTES)
            except zlib.error as exc:
                raise ArchiveCorrupt(f"{self.what}: not valid gzip ({exc})") from None
            if self._inflate.unused_data:
                raise ArchiveCorrupt(f"{self.what}: bytes after the end of the gzip stream")
            data = self._inflate.unconsumed_tail
            self.size += len(out)
            if self._size_max is not None and self.size > self._size_max:
                raise ArchiveCorrupt(f"{self.what}: more than {self._size_max} bytes uncompressed")
            self.sha256.update(out)
            yield out

    def finish(self) -> None:
        if not self._inflate.eof:
            raise ArchiveCorrupt(f"{self.what}: the gzip stream is cut short")


class GunzipLines:
    """The lines (without their newline) of a gzip NDJSON stream, fed in pieces."""

    def __init__(
        self, what: str, size_max: int | None, line_bytes_max: int = ARCHIVE_LINE_BYTES_MAX
    ) -> None:
        self.inflater = Inflater(what, size_max)
        self._line_bytes_max = line_bytes_max
        self._partial = bytearray()

    def feed(self, compressed: bytes) -> Iterator[bytes]:
        for out in self.inflater.feed(compressed):
            start = 0
            while (end := out.find(b"\n", start)) != -1:
                if self._partial:
                    self._partial += out[start:end]
                    line = bytes(self._partial)
                    self._partial.clear()
                else:
                    line = out[start:end]
                self._check(len(line))
                yield line
                start = end + 1
            self._partial += out[start:]
            self._check(len(self._partial))

    def finish(self) -> None:
        self.inflater.finish()
        if self._partial:
            raise ArchiveCorrupt(f"{self.inflater.what}: the last line has no newline")

    def _check(self, length: int) -> None:
        if length > self._line_bytes_max:
            raise ArchiveCorrupt(
                f"{self.inflater.what}: a line longer than {self._line_bytes_max} bytes"
            )


class PeriodBuilder:
    """What a period's manifest and ids shards say, gathered one message at a time, in stream
    order. The ledger denies deletes and purges, so a period has every sequence from
    `first_seq` to `end_seq - 1`: a gap means a read lost messages (PeriodIncomplete).
    It holds the final event of each record final in the period (the ids need it), and only
    the key of the others: its memory grows with the period's records, not its messages."""

    def __init__(self, partition: int, period: int, first_seq: int, end_seq: int) -> None:
        if not 0 <= period <= ARCHIVE_PERIOD_MAX:
            raise ValueError(f"period {period} is not 0 to {ARCHIVE_PERIOD_MAX}")
        if not 1 <= first_seq <= end_seq:
            raise ValueError(f"first_seq {first_seq} and end_seq {end_seq} are not a range")
        self.partition, self.period = partition, period
        self.first_seq, self.end_seq = first_seq, end_seq
        self.messages = 0
        self.funded: Counter[str] = Counter()
        self._next_seq = first_seq
        self._prefix = state_prefix(partition)
        # The latest event of each transfer record in the period: its entry if final, else None.
        # A carried copy (CARRIED_HEADER) is never final: the archiver carries only what stays live.
        self._records: dict[str, IdEntry | None] = {}

    def add(self, message: ArchivedMessage) -> None:
        if message.seq != self._next_seq:
            raise PeriodIncomplete(
                f"partition {self.partition} period {self.period}: message {message.seq} "
                f"where {self._next_seq} was due (range {self.first_seq}..{self.end_seq - 1})"
            )
        self._next_seq += 1
        self.messages += 1
        if not message.subject.startswith(self._prefix):
            return  # an inbox message: archived, not summarised
        key = message.subject[len(self._prefix) :]
        parts = key.split(".")
        if (len(parts) == 3 and parts[1] == "out") or (len(parts) == 4 and parts[1] == "in"):
            self._records[key] = _final_entry(parts[-1], message.payload)
        elif len(parts) == 3 and parts[1] == "acct" and CARRIED_HEADER not in message.headers:
            self._count_funding(message.payload)  # a carried copy was counted where it began

    def finish(self) -> None:
        if self._next_seq != self.end_seq:
            raise PeriodIncomplete(
                f"partition {self.partition} period {self.period}: messages end at "
                f"{self._next_seq - 1}, the period at {self.end_seq - 1}"
            )

    def ids(self) -> dict[str, IdEntry]:
        return {key: entry for key, entry in self._records.items() if entry is not None}

    def ids_shards(self) -> list[dict[str, IdEntry]]:
        return split_ids(self.ids())

    def key_filter(self) -> KeyFilter:
        """The filter of the keys its ids shards hold (a lookup of another key reads none)."""
        return KeyFilter.of(self.ids())

    def ids_below(self, bound_ms: int | None, before: Manifest | None) -> int | None:
        """The period's `ids_below_ms` (see Manifest): `bound_ms` raised, if need be, above
        its own ids' times and to the bound of the period before, so that it holds for every
        earlier period too. None if not given, or if the period before has none."""
        if bound_ms is None or (before is not None and before.ids_below_ms is None):
            return None
        times = [e.time_ms for e in self.ids().values() if e.time_ms is not None]
        earlier = before.ids_below_ms if before is not None else None
        return max(bound_ms, max(times, default=bound_ms - 1) + 1, earlier or bound_ms)

    def manifest(
        self,
        *,
        events_sha256: str,
        ids_shard_sha256: list[str],
        snapshot_sha256: str,
        figures: FoldFigures,
        prev_chain: str,
        archived_at_ms: int,
        ids_below_ms: int | None = None,
        filter_sha256: str | None = None,
    ) -> Manifest:
        entries = self.ids().values()
        times = [entry.time_ms for entry in entries if entry.time_ms is not None]
        manifest = Manifest(
            partition=self.partition,
            period=self.period,
            first_seq=self.first_seq,
            end_seq=self.end_seq,
            messages=self.messages,
            events_sha256=events_sha256,
            ids_sha256=ids_sha256_of(ids_shard_sha256),
            ids_shards=len(ids_shard_sha256),
            ids_shard_sha256=ids_shard_sha256,
            snapshot_sha256=snapshot_sha256,
            prev_chain=prev_chain,
            chain="",
            id_time_min_ms=min(times, default=None),
            id_time_max_ms=max(times, default=None),
            archived_at_ms=archived_at_ms,
            ids_below_ms=ids_below_ms,
            filter_sha256=filter_sha256,
            funded=dict(sorted(self.funded.items())),
            **msgspec.structs.asdict(figures),
        )
        return msgspec.structs.replace(manifest, chain=manifest.expected_chain())

    def hours(self) -> set[str]:
        return directory_hours(entry.time_ms for entry in self.ids().values())

    def _count_funding(self, payload: bytes) -> None:
        """FUNDED entries create money (I1); an event that does not decode is quarantined by
        the services and counts for nothing here either."""
        try:
            event = account_event_decoder.decode(payload)
            if not isinstance(event, AccountChanged):
                return
            currency = event.state.currency
            funded = [
                parse_balance(entry.amount, currency)
                for entry in event.entries
                if entry.kind is EntryKind.FUNDED
            ]
        except (msgspec.DecodeError, NatsbankError, ValueError):
            return
        if funded:
            self.funded[currency] += sum(funded)


def _final_entry(transfer_id: str, payload: bytes) -> IdEntry | None:
    try:
        state = transfer_event_decoder.decode(payload).state
    except msgspec.DecodeError:
        return None
    if not state.final:
        return None
    outcome = state.outcome.value if state.outcome is not None else None
    return IdEntry.of(state.digest, outcome, id_time_ms(transfer_id), payload)
