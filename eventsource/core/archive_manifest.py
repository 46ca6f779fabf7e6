"""A period's manifest and the hash chain of the ledger archive (issue 12): what one period
holds, the figures its fold found, and the link to the period before. The manifest is written
last, so it is the commit point of a period; replacing any period breaks the next one's link.
docs/ARCHIVE.md is the reference for each field.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

import msgspec

from eventsource.core.errors import ArchiveCorrupt
from eventsource.core.limits import (
    ARCHIVE_IDS_SHARDS_MAX,
    ARCHIVE_PROBLEM_CHARS_MAX,
    ARCHIVE_PROBLEMS_KEPT,
)

if TYPE_CHECKING:
    from eventsource.core.archive_format import PeriodExtras


class FoldFigures(msgspec.Struct, frozen=True, kw_only=True):
    """The part of PeriodExtras a manifest states: the store cannot re-derive it from the
    events, so the chain covers it instead."""

    settled: dict[str, int]
    confirmed: dict[str, int]
    problem_count: int
    problems: list[str]  # kept_problems of them

    @classmethod
    def of(cls, extras: PeriodExtras) -> FoldFigures:
        return cls(
            settled=dict(sorted(extras.settled.items())),
            confirmed=dict(sorted(extras.confirmed.items())),
            problem_count=len(extras.problems),
            problems=kept_problems(extras.problems),
        )


def kept_problems(problems: list[str]) -> list[str]:
    """The problems a manifest lists: the first few, each cut to a bounded length."""
    return [problem[:ARCHIVE_PROBLEM_CHARS_MAX] for problem in problems[:ARCHIVE_PROBLEMS_KEPT]]


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What one period holds and the link to the period before. Written only after every
    object was read back and matched its digest, hence `verified`."""

    partition: int
    period: int
    first_seq: int
    end_seq: int
    messages: int
    events_sha256: str  # of the uncompressed NDJSON bytes
    ids_sha256: str  # ids_sha256_of(ids_shard_sha256)
    ids_shards: int
    ids_shard_sha256: list[str]  # of each shard's uncompressed JSON bytes, by shard number
    snapshot_sha256: str  # of the uncompressed snapshot bytes
    prev_chain: str
    chain: str
    id_time_min_ms: int | None
    id_time_max_ms: int | None
    archived_at_ms: int
    funded: dict[str, int]  # currency -> minor units of FUNDED entries, carried ones excepted
    settled: dict[str, int]  # as PeriodExtras says
    confirmed: dict[str, int]  # as PeriodExtras says
    problem_count: int  # every problem PeriodExtras listed
    problems: list[str]  # kept_problems of them
    verified: bool = True
    # No record of this period, or of any earlier one, has an id whose time is at or after
    # this: its messages are older than the cut, and an id's time is at most max_clock_skew
    # after its first message (core/history.py). A lookup stops here (archive_reader).
    # None in a manifest written before it existed: no early stop.
    ids_below_ms: int | None = None
    # SHA-256 of the period's key filter (`.filter`, core/archive_filter.py): a lookup reads an
    # ids shard only if the filter says "maybe". None in a manifest written before it existed:
    # every lookup that reaches the period reads its shard.
    filter_sha256: str | None = None

    def figures_sha256(self) -> str:
        """The figures the chain covers besides the objects' digests: with them in the chain,
        a manifest edited by hand no longer matches the chain the archive head keeps."""
        figures = {
            "messages": self.messages,
            "id_time_min_ms": self.id_time_min_ms,
            "id_time_max_ms": self.id_time_max_ms,
            "funded": self.funded,
            "settled": self.settled,
            "confirmed": self.confirmed,
            "problem_count": self.problem_count,
            "problems": self.problems,
        }
        if self.ids_below_ms is not None:  # it decides where lookups stop: the chain covers it
            figures["ids_below_ms"] = self.ids_below_ms
        if self.filter_sha256 is not None:  # it decides which lookups read no shard
            figures["filter_sha256"] = self.filter_sha256
        return sha256_hex(_sorted_encoder.encode(figures))

    def expected_chain(self) -> str:
        """Each period's link covers its content, its figures, its place and the link before
        it, so replacing any period breaks the next one's `prev_chain`."""
        text = (
            f"{self.prev_chain}{self.events_sha256}{self.ids_sha256}{self.snapshot_sha256}"
            f"{self.figures_sha256()}{self.partition}:{self.period}:{self.first_seq}:{self.end_seq}"
        )
        return sha256_hex(text.encode())

    def fold_figures(self) -> FoldFigures:
        return FoldFigures(
            settled=self.settled,
            confirmed=self.confirmed,
            problem_count=self.problem_count,
            problems=self.problems,
        )

    def inconsistencies(self) -> list[str]:
        """What in the manifest contradicts the manifest itself (no object read)."""
        found = []
        if self.chain != self.expected_chain():
            found.append("its chain does not match its own fields")
        if not 1 <= self.ids_shards == len(self.ids_shard_sha256) <= ARCHIVE_IDS_SHARDS_MAX:
            found.append(f"ids_shards {self.ids_shards} for {len(self.ids_shard_sha256)} digests")
        if self.ids_sha256 != ids_sha256_of(self.ids_shard_sha256):
            found.append("ids_sha256 is not the digest of its shards' digests")
        if self.problems != kept_problems(self.problems) or self.problem_count < len(self.problems):
            found.append(f"{len(self.problems)} problems listed of {self.problem_count}")
        if self.filter_sha256 is not None and not _SHA256_TEXT.fullmatch(self.filter_sha256):
            found.append("filter_sha256 is not 64 lowercase hex digits")
        below, latest = self.ids_below_ms, self.id_time_max_ms
        if below is not None and latest is not None and latest >= below:
            found.append(f"an id of time {latest} is not below ids_below_ms {below}")
        return found


_sorted_encoder = msgspec.json.Encoder(order="sorted")
_SHA256_TEXT = re.compile(r"[0-9a-f]{64}")
_manifest_decoder = msgspec.json.Decoder(Manifest)


def encode_manifest(manifest: Manifest) -> bytes:
    return msgspec.json.encode(manifest)


def decode_manifest(data: bytes, where: str) -> Manifest:
    try:
        return _manifest_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ArchiveCorrupt(f"{where}: not a manifest ({exc})") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ids_sha256_of(shard_sha256: list[str]) -> str:
    """The digest of a period's ids: of its shards' digests (hex), concatenated in order."""
    return sha256_hex("".join(shard_sha256).encode())
