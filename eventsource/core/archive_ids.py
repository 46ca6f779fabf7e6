"""Where an archived final record is found, pure: a period's ids shards (the state key of each
record whose latest event in the period is final -> its digest, outcome, id time and that final
event) and the id directory (a UTC hour -> the periods holding ids made in it).

A period's records are split by `crc32(key) % shards` into about ARCHIVE_IDS_PER_SHARD per
shard, so a lookup reads one small object whatever the size of the period.
"""

from __future__ import annotations

import base64
import binascii
import math
import zlib
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

from eventsource.core.archive_format import TIME_MS_MAX
from eventsource.core.errors import ArchiveCorrupt, ArchiveError
from eventsource.core.limits import (
    ARCHIVE_DIRECTORY_HOURS_MAX,
    ARCHIVE_IDS_PER_SHARD,
    ARCHIVE_IDS_SHARDS_MAX,
)

UNTIMED = "untimed"  # the directory entry of ids without a usable time
EVENT_BASE64 = "base64"  # an entry's 5th element: its event is base64, not UTF-8 text
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- The ids shards ------------------------------------------------------------------------
class IdEntry(msgspec.Struct, frozen=True, array_like=True):
    """`[digest, outcome or null, id time in ms or null, event]`, and a 5th element
    "base64" only when the event's bytes are not UTF-8 (a final event always decodes as JSON,
    so that never happens unless the ledger holds something natsbank did not write)."""

    digest: str
    outcome: str | None
    time_ms: int | None
    event: str  # the final event's payload, as its UTF-8 text (base64 if `encoding` says so)
    encoding: Literal["utf-8", "base64"] = "utf-8"

    @classmethod
    def of(cls, digest: str, outcome: str | None, time_ms: int | None, payload: bytes) -> IdEntry:
        try:
            return cls(digest, outcome, time_ms, payload.decode())
        except UnicodeDecodeError:
            return cls(digest, outcome, time_ms, base64.b64encode(payload).decode(), EVENT_BASE64)

    def payload(self, where: str) -> bytes:
        """The final event's payload, byte for byte as the ledger held it."""
        if self.encoding == "utf-8":
            return self.event.encode()
        try:
            return base64.b64decode(self.event, validate=True)
        except binascii.Error:
            raise ArchiveCorrupt(f"{where}: an entry's base64 event does not decode") from None

    def as_array(self) -> tuple:
        head = (self.digest, self.outcome, self.time_ms, self.event)
        return head if self.encoding == "utf-8" else (*head, self.encoding)


_ids_encoder = msgspec.json.Encoder(order="sorted")  # the same ids give the same bytes
_ids_decoder = msgspec.json.Decoder(dict[str, IdEntry])


def encode_ids(ids: dict[str, IdEntry]) -> bytes:
    return _ids_encoder.encode({key: entry.as_array() for key, entry in ids.items()})


def decode_ids(data: bytes, where: str) -> dict[str, IdEntry]:
    try:
        return _ids_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ArchiveCorrupt(f"{where}: not an ids shard ({exc})") from None


def ids_shard_count(records: int) -> int:
    shards = max(1, math.ceil(records / ARCHIVE_IDS_PER_SHARD))
    if shards > ARCHIVE_IDS_SHARDS_MAX:
        raise ArchiveError(
            f"{records} final records need more than {ARCHIVE_IDS_SHARDS_MAX} shards"
        )
    return shards


def ids_shard_of(key: str, shards: int) -> int:
    """The shard of a state key: the same in every process (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(key.encode()) % shards


def split_ids(ids: dict[str, IdEntry]) -> list[dict[str, IdEntry]]:
    """The ids by shard, `ids_shard_count(len(ids))` of them (the first may be empty)."""
    shards: list[dict[str, IdEntry]] = [{} for _ in range(ids_shard_count(len(ids)))]
    for key, entry in ids.items():
        shards[ids_shard_of(key, len(shards))][key] = entry
    return shards


# --- The id directory ----------------------------------------------------------------------
_periods_decoder = msgspec.json.Decoder(list[int])


def is_hour_name(hour: str) -> bool:
    return hour == UNTIMED or (len(hour) == 10 and hour.isascii() and hour.isdigit())


def encode_periods(periods: Iterable[int]) -> bytes:
    return msgspec.json.encode(sorted(set(periods)))


def decode_periods(data: bytes, where: str) -> list[int]:
    try:
        return _periods_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ArchiveCorrupt(f"{where}: not a list of periods ({exc})") from None


def hour_bucket(time_ms: int) -> str:
    """The UTC hour of a time, `YYYYMMDDHH`: the name of its id directory entry."""
    if not 0 <= time_ms <= TIME_MS_MAX:
        raise ValueError(f"time {time_ms} ms has no hour name")
    return (_EPOCH + timedelta(milliseconds=time_ms)).strftime("%Y%m%d%H")


def directory_hours(
    times: Iterable[int | None], hours_max: int = ARCHIVE_DIRECTORY_HOURS_MAX
) -> set[str]:
    """The directory entries a period adds itself to: the hours of its ids, at most `hours_max`
    (the busiest), and UNTIMED for ids without a time or beyond those hours. A lookup reads
    the id's hour and UNTIMED, so every id is found either way."""
    counts: Counter[str] = Counter()
    untimed = False
    for time_ms in times:
        if time_ms is None:
            untimed = True
        else:
            counts[hour_bucket(time_ms)] += 1
    busiest = sorted(counts, key=lambda hour: (-counts[hour], hour))[:hours_max]
    hours = set(busiest)
    if untimed or len(counts) > hours_max:
        hours.add(UNTIMED)
    return hours
