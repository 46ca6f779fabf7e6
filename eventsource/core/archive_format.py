"""The ledger archive's formats (issue 12): object names, the NDJSON line of one archived
message, what the archiver adds to a period (PeriodExtras), and the times of transfer ids. The
manifest and its hash chain: `core/archive_manifest.py`; the ids shards and the id directory:
`core/archive_ids.py`.

Pure: no I/O. A period is archived as `k<k>/p<period>.events` (gzip NDJSON), its ids shards
`.ids.<shard>` (gzip JSON), `.snapshot` (gzip JSON) and `.manifest` (JSON); the manifest is
written last, so it is the commit point of a period. docs/ARCHIVE.md is the reference for each
field.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING

import msgspec

from eventsource.core.archive_head import encode_snapshot
from eventsource.core.errors import ArchiveCorrupt

if TYPE_CHECKING:
    from eventsource.core.archive_fold import CutFold

_JSON_SPACE = b" \t\r\n"


# --- Object names --------------------------------------------------------------------------
def events_object(partition: int, period: int) -> str:
    return f"k{partition}/p{period:08d}.events"


def ids_object(partition: int, period: int, shard: int) -> str:
    return f"k{partition}/p{period:08d}.ids.{shard:04d}"


def filter_object(partition: int, period: int) -> str:
    return f"k{partition}/p{period:08d}.filter"


def snapshot_object(partition: int, period: int) -> str:
    return f"k{partition}/p{period:08d}.snapshot"


def manifest_object(partition: int, period: int) -> str:
    return f"k{partition}/p{period:08d}.manifest"


def hour_object(partition: int, hour: str) -> str:
    """The id directory's entry for one UTC hour (`YYYYMMDDHH`) or for UNTIMED."""
    return f"k{partition}/ids-by-hour/{hour}"


# --- One archived message ------------------------------------------------------------------
class ArchivedMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A ledger message as archived: what an audit or a replay needs, and nothing of the
    transport (batch headers are dropped)."""

    seq: int
    time_ms: int
    subject: str
    payload: bytes
    headers: dict[str, str] = {}


class _Line(msgspec.Struct, omit_defaults=True):
    # Field order is the key order on the wire: seq, time_ms, subject, data | data_b64, headers.
    seq: int
    time_ms: int
    subject: str
    data: msgspec.Raw = msgspec.Raw()
    data_b64: str | msgspec.UnsetType = msgspec.UNSET
    headers: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


_line_encoder = msgspec.json.Encoder()
_line_decoder = msgspec.json.Decoder(_Line)


def kept_headers(headers: dict[str, str] | None) -> dict[str, str]:
    """Only the headers that mean something after the fact: the dedup id and natsbank's own."""
    if not headers:
        return {}
    return {
        name: value
        for name, value in headers.items()
        if name.lower() == "nats-msg-id" or name.lower().startswith("natsbank-")
    }


def _splices_as_json(payload: bytes) -> bool:
    """The payload goes into the line as it is only if it is one JSON value whose bytes survive:
    no newline (the line would break) and no outer whitespace (a reader would lose it)."""
    if not payload or payload[:1] in _JSON_SPACE or payload[-1:] in _JSON_SPACE:
        return False
    if b"\n" in payload or b"\r" in payload:
        return False
    try:
        msgspec.json.decode(payload)
    except (msgspec.DecodeError, ValueError):
        return False
    return True


def encode_line(message: ArchivedMessage) -> bytes:
    """One NDJSON line, newline included. JSON payloads keep their exact bytes, so a payload
    read back is the payload written, byte for byte; anything else is base64 in `data_b64`."""
    line = _Line(message.seq, message.time_ms, message.subject)
    if _splices_as_json(message.payload):
        line.data = msgspec.Raw(message.payload)
    else:
        line.data_b64 = base64.b64encode(message.payload).decode()
    if message.headers:
        line.headers = dict(message.headers)
    return _line_encoder.encode(line) + b"\n"


def decode_line(line: bytes, where: str) -> ArchivedMessage:
    """The message of one line (without its newline); ArchiveCorrupt names `where` if not."""
    try:
        raw = _line_decoder.decode(line)
        has_data, has_b64 = bool(raw.data), raw.data_b64 is not msgspec.UNSET
        if has_data == has_b64:
            raise ValueError("exactly one of data and data_b64 is required")
        payload = bytes(raw.data) if has_data else base64.b64decode(raw.data_b64, validate=True)
    except (msgspec.DecodeError, ValueError, binascii.Error) as exc:
        raise ArchiveCorrupt(f"{where}: not an archived message ({exc})") from None
    headers = raw.headers if raw.headers is not msgspec.UNSET else {}
    return ArchivedMessage(
        seq=raw.seq, time_ms=raw.time_ms, subject=raw.subject, payload=payload, headers=headers
    )


# --- What the archiver adds to a period ---------------------------------------------------
class PeriodExtras(msgspec.Struct, frozen=True, kw_only=True):
    """What only the archiver's fold of a period knows, given to the store once the period's
    messages went through it: the snapshot the next period starts from, and what it found."""

    snapshot: bytes  # core.archive_head.encode_snapshot: uncompressed JSON
    problems: list[str]  # the violations the fold found; may be empty
    settled: dict[str, int]  # currency -> minor units debited by settled-OK transfers
    confirmed: dict[str, int]  # currency -> minor units credited by confirmed-OK transfers

    @classmethod
    def of(cls, cut: CutFold) -> PeriodExtras:
        fold = cut.fold
        return cls(
            snapshot=encode_snapshot(cut.snapshot()),
            problems=list(fold.problems),
            settled=dict(fold.settled),
            confirmed=dict(fold.confirmed),
        )


# --- Times of transfer ids -----------------------------------------------------------------
_CROCKFORD = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}
_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.I)
# The last millisecond an hour name (YYYYMMDDHH) can hold: 9999-12-31T23:59:59.999Z. ULIDs
# reach year 10889; such a time is no time.
TIME_MS_MAX = 253_402_300_799_999


def id_time_ms(transfer_id: str) -> int | None:
    """The creation time in Unix ms that a ULID (either case) or a UUIDv7 (canonical form)
    carries, else None. Strict: Crockford's aliases (I, L, O) and U are refused."""
    if len(transfer_id) == 26 and transfer_id.isascii():
        digits = [_CROCKFORD.get(c) for c in transfer_id.upper()]
        if None in digits or digits[0] > 7:  # type: ignore[operator]  # 130 bits hold 128
            return None
        time_ms = 0
        for digit in digits[:10]:
            time_ms = time_ms * 32 + digit  # type: ignore[operator]
    elif len(transfer_id) == 36 and _UUID7.fullmatch(transfer_id):
        time_ms = int(transfer_id[:8] + transfer_id[9:13], 16)
    else:
        return None
    return time_ms if time_ms <= TIME_MS_MAX else None
