"""Bounded history, pure: where a transfer id belongs in time, and so where a submission proves
it is new (docs/PROTOCOL.md section 7, "Permanent idempotency").

The live ledger keeps every transfer whose id's time is within the horizon of the submission's
ACK; older final transfers leave it for the archive. A transfer id is a permanent idempotency key
all the same: an id the live ledger must still hold is checked there, an older one in the archive,
and an old id neither knows is refused ID_EXPIRED (the client makes a new id). For that, ids carry
their time: a ULID or a UUIDv7, read by `id_time_ms`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from eventsource.core.archive_format import id_time_ms


@dataclass(frozen=True, slots=True)
class History:
    """What streams.yaml's `history` says, in milliseconds; `horizon_ms` None keeps everything."""

    horizon_ms: int | None = None
    skew_ms: int = 300_000  # how far a client's clock (in its ids) may be from the servers'
    period_ms: int = 3_600_000  # how much the archiver moves at a time

    @property
    def bounded(self) -> bool:
        return self.horizon_ms is not None


KEEP_EVERYTHING = History()


class IdPlace(enum.StrEnum):
    """Where a submission's id says its transfer must be looked for."""

    LIVE = "live"  # the live ledger holds it, if it exists at all
    OLD = "old"  # the live ledger, else the archive, else it is refused ID_EXPIRED
    FUTURE = "future"  # its time is ahead of the servers' by more than the skew: refused
    UNTIMED = "untimed"  # not a ULID or UUIDv7, with a bounded history: refused


def place_id(transfer_id: str, acked_ms: int, history: History) -> IdPlace:
    """Where the submission ACKed at `acked_ms` (server time) of `transfer_id` belongs."""
    if history.horizon_ms is None:
        return IdPlace.LIVE
    at = id_time_ms(transfer_id)
    if at is None:
        return IdPlace.UNTIMED
    if at > acked_ms + history.skew_ms:
        return IdPlace.FUTURE
    if at < acked_ms - history.horizon_ms + history.skew_ms:
        return IdPlace.OLD
    return IdPlace.LIVE


def archivable_before_ms(now_ms: int, history: History) -> int | None:
    """Final records whose latest event is older than this may leave the live ledger: an id
    placed LIVE at any later moment is younger than any record archived this way (its latest
    event is at most `skew` older than its id's time), so the live ledger answers for it."""
    if history.horizon_ms is None:
        return None
    return now_ms - history.horizon_ms - history.skew_ms
