"""The ledger archive's formats (issue 12): object names, the NDJSON line of one archived
message, the ids object, the manifest and its hash chain, and the times of transfer ids.

Pure: no I/O. A period is archived as three objects, `k<k>/p<period>.events` (gzip NDJSON),
`.ids` (gzip JSON) and `.manifest` (JSON); the manifest is written last, so it is the commit
point of a period. docs/ARCHIVE.md is the reference for each field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from eventsource.core.errors import ArchiveCorrupt
from eventsource.core.limits import ARCHIVE_DIRECTORY_HOURS_MAX

ZERO_CHAIN = "0" * 64  # prev_chain of period 0
UNTIMED = "untimed"  # the directory entry of ids without a usable time
_JSON_SPACE = b" \t\r\n"


# --- Object names --------------------------------------------------------------------------
def events_object(partition: int, period: int) -> str:
    return f"k{partition}/p{period:08d}.events"


def ids_object(partition: int, period: int) -> str:
    return f"k{partition}/p{period:08d}.ids"


def manifest_object(partition: int, period: int) -> str:
    return f"k{partition}/p{period:08d}.manifest"


def hour_object(partition: int, hour: str) -> str:
    """The id directory's entry for one UTC hour (`YYYYMMDDHH`) or for UNTIMED."""
    return f"k{partition}/ids-by-hour/{hour}"


def is_hour_name(hour: str) -> bool:
    return hour == UNTIMED or (len(hour) == 10 and hour.isascii() and hour.isdigit())


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


# --- The ids object ------------------------------------------------------------------------
# State key of a final transfer record -> [digest, outcome or null, id time in ms or null].
IdEntry = tuple[str, str | None, int | None]
_ids_encoder = msgspec.json.Encoder(order="sorted")  # the same ids give the same bytes
_ids_decoder = msgspec.json.Decoder(dict[str, tuple[str, str | None, int | None]])


def encode_ids(ids: dict[str, IdEntry]) -> bytes:
    return _ids_encoder.encode(ids)


def decode_ids(data: bytes, where: str) -> dict[str, IdEntry]:
    try:
        return _ids_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ArchiveCorrupt(f"{where}: not an ids object ({exc})") from None


# --- The manifest and the chain ------------------------------------------------------------
class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What one period holds and the link to the period before. Written only after both
    objects were read back and matched their digests, hence `verified`."""

    partition: int
    period: int
    first_seq: int
    end_seq: int
    messages: int
    events_sha256: str  # of the uncompressed NDJSON bytes
    ids_sha256: str  # of the uncompressed ids JSON bytes
    prev_chain: str
    chain: str
    id_time_min_ms: int | None
    id_time_max_ms: int | None
    archived_at_ms: int
    funded: dict[str, int]  # currency -> minor units of FUNDED entries in the period
    verified: bool = True

    def expected_chain(self) -> str:
        return chain_of(
            self.prev_chain,
            self.events_sha256,
            self.ids_sha256,
            self.partition,
            self.period,
            self.first_seq,
            self.end_seq,
        )


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


def chain_of(
    prev_chain: str,
    events_sha256: str,
    ids_sha256: str,
    partition: int,
    period: int,
    first_seq: int,
    end_seq: int,
) -> str:
    """Each period's link covers its content, its place and the link before it, so replacing
    any period breaks the next one's `prev_chain`."""
    text = f"{prev_chain}{events_sha256}{ids_sha256}{partition}:{period}:{first_seq}:{end_seq}"
    return sha256_hex(text.encode())


# --- Directory entries ---------------------------------------------------------------------
_periods_decoder = msgspec.json.Decoder(list[int])


def encode_periods(periods: Iterable[int]) -> bytes:
    return msgspec.json.encode(sorted(set(periods)))


def decode_periods(data: bytes, where: str) -> list[int]:
    try:
        return _periods_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ArchiveCorrupt(f"{where}: not a list of periods ({exc})") from None


# --- Times of transfer ids -----------------------------------------------------------------
_CROCKFORD = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}
_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.I)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
