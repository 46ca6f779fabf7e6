"""When the submitter gives up on a transfer (DESIGN.md section 5), pure: the give-up time of a
RESERVED record, and a clock of the records waiting for theirs.

The limits travel with the transfer (`deadline_ms`, `max_attempts`) and the clock starts at the
admission (the `FundsReserved` event's `at`), so any instance, also after a restart, computes
the same give-up time from the ledger alone. What an attempt is depends on the transport:

- core mode: one send of the posting, the first and each resend of the resend clock; counted
  by `core/resend.py`'s schedule, so only the deadline is timed here;
- JetStream mode: the server delivers the posting and the submitter never resends it, so
  `max_attempts` N means the time core mode's clock takes to make N sends (its backoff without
  jitter): n gives up when the (N+1)-th send would be due.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import msgspec

from eventsource.core.events import TransferState
from eventsource.core.model import Side
from eventsource.core.protocol import Phase
from eventsource.core.resend import ResendPolicy
from eventsource.core.saga import GiveUpReason


def give_up_at(
    state: TransferState, reserved_at_ms: int, policy: ResendPolicy, *, counts_sends: bool
) -> tuple[int, GiveUpReason] | None:
    """(unix ms, reason) at which n gives up on this record, or None if it never does.
    `counts_sends`: core mode, where the resend clock counts the attempts itself."""
    if state.side is not Side.SUBMITTER or state.phase is not Phase.RESERVED:
        return None
    transfer = state.transfer
    limits: list[tuple[int, GiveUpReason]] = []
    if transfer.deadline_ms is not msgspec.UNSET:
        limits.append((reserved_at_ms + transfer.deadline_ms, GiveUpReason.DEADLINE_PASSED))
    if transfer.max_attempts is not msgspec.UNSET and not counts_sends:
        window = round(policy.window(transfer.max_attempts) * 1000)
        limits.append((reserved_at_ms + window, GiveUpReason.ATTEMPTS_EXHAUSTED))
    return min(limits) if limits else None


@dataclass(frozen=True, slots=True)
class Due:
    key: str
    reason: GiveUpReason


class DeadlineClock:
    """The records waiting for their give-up time; `due` hands each out until it is forgotten
    (the give-up committed, or the outcome came first)."""

    def __init__(self) -> None:
        self._at: dict[str, tuple[int, GiveUpReason]] = {}
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._at)

    def __contains__(self, key: str) -> bool:
        return key in self._at

    def watch(self, key: str, at_ms: int, reason: GiveUpReason) -> None:
        if self._at.get(key, (None,))[0] == at_ms:
            return
        self._at[key] = (at_ms, reason)
        heapq.heappush(self._heap, (at_ms, key))

    def forget(self, key: str) -> None:
        self._at.pop(key, None)

    def due(self, now_ms: int, retry_after_ms: int = 1000) -> list[Due]:
        """Records whose time has come. Each stays watched, due again `retry_after_ms` later,
        until forgotten: a give-up whose commit failed is tried again."""
        ready: list[Due] = []
        while self._heap and self._heap[0][0] <= now_ms:
            at, key = heapq.heappop(self._heap)
            current = self._at.get(key)
            if current is None or current[0] != at:
                continue  # forgotten, or watched again at another time
            ready.append(Due(key, current[1]))
        for entry in ready:
            self.watch(entry.key, now_ms + retry_after_ms, entry.reason)
        return ready
