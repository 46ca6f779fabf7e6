"""Core-NATS mode's resend clock, pure: which protocol item each record is still waiting on an
answer for, and when to resend it.

The submitter resends a posting until it has the result; the receiver resends a result until it
has the confirmation; a submitter that gave up resends the CANCEL until the receiver acknowledges
it (a `result` CANCELLED). Each resend pushes that item's next time further out (exponential backoff
with jitter), so a tick only resends what is due, never everything outstanding. JetStream mode
needs none of this: the outbox is committed with the state and the server redelivers.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from eventsource.core.events import TransferState
from eventsource.core.messages import Confirm, InboxMessage, Kind, Posting, Postings, Result
from eventsource.core.model import Outcome, Side
from eventsource.core.protocol import Phase
from eventsource.core.saga import cancel_confirm


@dataclass(frozen=True, slots=True)
class ResendPolicy:
    first: float = 2.0  # seconds before the first resend: above the normal round trip
    factor: float = 2.0
    cap: float = 30.0  # never give up, but never resend more often than this once backed off
    jitter: float = 0.25  # +-25%: instances that restarted together do not resend in step

    def delay(self, attempts: int, rng: random.Random) -> float:
        return self.base(attempts) * (1 + rng.uniform(-self.jitter, self.jitter))

    def base(self, attempts: int) -> float:
        return min(self.cap, self.first * self.factor ** min(attempts, 64))

    def window(self, sends: int) -> float:
        """Seconds from the first send until send number `sends + 1` is due, without jitter."""
        return sum(self.base(i) for i in range(sends))

    def sends_within(self, elapsed: float, most: int = 1000) -> int:
        """How many sends the clock makes in `elapsed` seconds from the first (no jitter),
        counted up to `most`."""
        sends, window = 1, self.base(0)
        while window <= elapsed and sends < most:
            window += self.base(sends)
            sends += 1
        return sends


DEFAULT_RESEND = ResendPolicy()
T = TypeVar("T")


@dataclass(slots=True)
class Awaited:
    """A record waiting for an answer: resend `item` (of `kind`) to `peer` until it comes."""

    key: str
    peer: str
    kind: Kind
    item: Posting | Result | Confirm
    attempts: int = 0  # resends so far; the first send is not counted
    due: float = 0.0


def awaited(state: TransferState) -> tuple[str, Kind, Posting | Result | Confirm] | None:
    """What a record in this state waits for: (peer, kind, item to resend), or None.

    A cancelled submitter record waits for p's acknowledgement of the CANCEL (a `result`
    CANCELLED): without it a CANCEL lost with the posting would leave p without a record (I7).
    """
    transfer = state.transfer
    if state.side is Side.SUBMITTER and state.phase is Phase.RESERVED:
        return (
            transfer.creditor.participant,
            Kind.POSTING,
            Posting(transfer=transfer, digest=state.digest),
        )
    if state.side is Side.SUBMITTER and state.outcome is Outcome.CANCELLED:
        return transfer.creditor.participant, Kind.CONFIRM, cancel_confirm(state)
    if state.side is Side.RECEIVER and state.phase is Phase.DECIDED:
        assert state.outcome is not None
        result = Result(
            id=transfer.id,
            digest=state.digest,
            outcome=state.outcome,
            cause=state.cause,
            detail=state.detail,
        )
        return transfer.debtor.participant, Kind.RESULT, result
    return None


def answers(state: object, result: Result | None) -> bool:
    """Whether an inbound item (a `result`, or a confirm when None) ends the record's wait.
    Only a `result` CANCELLED acknowledges a CANCEL; a late OK or REJECTED is answered with
    the CANCEL again and the wait goes on."""
    if not isinstance(state, TransferState):
        return False
    if state.outcome is Outcome.CANCELLED and state.side is Side.SUBMITTER:
        return result is not None and result.outcome is Outcome.CANCELLED
    return awaited(state) is None


def refused_posting(state: TransferState) -> Posting:
    """The posting that tells the receiver of a transfer the submitter refused itself (I7)."""
    assert state.cause is not None
    return Posting(
        transfer=state.transfer, digest=state.digest, refused=state.cause, detail=state.detail
    )


def within_bound(
    received: Sequence[tuple[T, InboxMessage]],
    unconfirmed_from: Callable[[str], int],
    per_peer: int,
) -> tuple[list[tuple[T, InboxMessage]], Counter[str]]:
    """The messages (each with its tag: where it came from) with each sender's postings cut,
    in order, to the room its bound leaves: at most `per_peer` incoming records of one sender
    may wait for its confirmation, and `unconfirmed_from(sender)` already do. Returns what to
    decide, and per sender the postings left undecided (shed: the sender's resend clock sends
    them again). A duplicate of a decided posting adds no record but takes room like a new
    one; other kinds always pass."""
    kept: list[tuple[T, InboxMessage]] = []
    taken: Counter[str] = Counter()
    shed: Counter[str] = Counter()
    for tag, message in received:
        if not isinstance(message, Postings):
            kept.append((tag, message))
            continue
        sender, postings = message.sender, message.postings
        room = max(0, per_peer - unconfirmed_from(sender) - taken[sender])
        fits = postings[:room]
        taken[sender] += len(fits)
        if len(fits) < len(postings):
            shed[sender] += len(postings) - len(fits)
            if fits:
                kept.append((tag, Postings(sender=sender, postings=fits)))
        else:
            kept.append((tag, message))
    return kept, shed


class ResendSchedule:
    """What one instance waits on, by record key. It also counts the two kinds of wait apart:
    `outgoing()`, this participant's own postings and CANCELs waiting for an answer (the
    window), and `unconfirmed_from(peer)`, incoming records waiting for `peer`'s confirm."""

    def __init__(self, policy: ResendPolicy = DEFAULT_RESEND, seed: int | None = None) -> None:
        self.policy = policy
        self._rng = random.Random(seed)
        self._items: dict[str, Awaited] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._serial = 0
        self._outgoing = 0
        self._unconfirmed: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._items)

    def outgoing(self) -> int:
        """Records of transfers this participant submitted, waiting for the receiver's answer
        (a posting's result, a CANCEL's acknowledgement)."""
        return self._outgoing

    def unconfirmed_from(self, peer: str) -> int:
        """Incoming records of `peer`'s transfers, waiting for its confirmation."""
        return self._unconfirmed[peer]

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def expect(
        self,
        key: str,
        peer: str,
        kind: Kind,
        item: Posting | Result | Confirm,
        now: float,
        attempts: int = 0,
    ) -> None:
        """Wait for an answer to `item`; a key already waited on for the same kind keeps its
        clock (a posting given up for its CANCEL starts a new one)."""
        current = self._items.get(key)
        if current is not None and current.kind is kind:
            return
        if current is not None:
            self._count(current, -1)
        entry = Awaited(key, peer, kind, item, attempts)
        self._items[key] = entry
        self._count(entry, 1)
        self._schedule(entry, now)

    def settle(self, key: str) -> bool:
        """The answer came: stop resending. Returns whether the key was waited on."""
        entry = self._items.pop(key, None)
        if entry is None:
            return False
        self._count(entry, -1)
        return True

    def _count(self, entry: Awaited, step: int) -> None:
        if entry.kind is Kind.RESULT:  # a receiver's record: its result waits for a confirm
            self._unconfirmed[entry.peer] += step
            if self._unconfirmed[entry.peer] <= 0:
                del self._unconfirmed[entry.peer]
        else:  # a posting or a CANCEL this participant sent
            self._outgoing += step

    def due(self, now: float, limit: int | None = None) -> list[Awaited]:
        """Items whose time has come, each moved to its next, later time."""
        ready: list[Awaited] = []
        while self._heap and self._heap[0][0] <= now and (limit is None or len(ready) < limit):
            at, _, key = heapq.heappop(self._heap)
            entry = self._items.get(key)
            if entry is None or entry.due != at:
                continue  # settled, or rescheduled: a stale heap entry
            entry.attempts += 1
            self._schedule(entry, now)
            ready.append(entry)
        return ready

    def next_due(self) -> float | None:
        while self._heap:
            at, _, key = self._heap[0]
            entry = self._items.get(key)
            if entry is not None and entry.due == at:
                return at
            heapq.heappop(self._heap)
        return None

    def _schedule(self, entry: Awaited, now: float) -> None:
        entry.due = now + self.policy.delay(entry.attempts, self._rng)
        self._serial += 1
        heapq.heappush(self._heap, (entry.due, self._serial, entry.key))
