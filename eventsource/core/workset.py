"""The working set of one group commit: the states one instance read, the changes it decided,
and the writes that commit them as one atomic batch. Pure: the adapter does the reading and
the committing."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from eventsource.core.account import ENTRY_OF_EFFECT, Account, EntryKind
from eventsource.core.errors import DeadLetterReason
from eventsource.core.events import (
    EVENT_OF_STEP,
    AccountChanged,
    AccountSnapshot,
    Entry,
    TransferState,
    encoder,
)
from eventsource.core.history import KEEP_EVERYTHING, History
from eventsource.core.messages import Kind, bundle, items_of
from eventsource.core.model import Transfer
from eventsource.core.money import format_amount
from eventsource.core.protocol import Effect, Step
from eventsource.core.remote import AskedCredit, Verdict
from eventsource.core.subjects import inbox_subject, state_subject
from eventsource.core.trace import child, headers_for, item_id

State = TransferState | Account


@dataclass(frozen=True, slots=True)
class Write:
    """One message of the atomic batch. `expected` guards the subject (0: must be empty)."""

    subject: str
    payload: bytes
    expected: int | None
    key: str | None  # the state key this write sets, None for an outbound protocol message
    headers: dict[str, str] | None = None  # extra NATS headers (trace context) of an outbound


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: DeadLetterReason
    detail: str
    payload: bytes


def account_events(
    entries: dict[str, list[Entry]], current: dict, at_ms: int
) -> list[tuple[str, bytes]]:
    """One AccountChanged per touched account, with every entry of the group: (key, payload)."""
    events = []
    for key, moved in entries.items():
        account = current[key]
        assert isinstance(account, Account)
        event = AccountChanged(state=AccountSnapshot.of(account), entries=moved, at=at_ms)
        events.append((key, encoder.encode(event)))
    return events


def id_conflict(transfer_id: str, request: object) -> DeadLetter:
    """The dead letter of a transfer id already used with other content (never applied)."""
    return DeadLetter(
        DeadLetterReason.ID_CONFLICT,
        f"transfer id {transfer_id} is already used with other content",
        encoder.encode(request),
    )


@dataclass
class WorkSet:
    participant: str
    partition: int
    # key -> (state or None when absent, the ledger sequence it was read at; 0 when absent)
    loaded: dict[str, tuple[State | None, int]]
    known_participants: frozenset[str]
    now_ms: int
    token: str  # unique per commit attempt, names the outbound messages
    _transfer_events: list[tuple[str, bytes]] = field(default_factory=list)
    _current: dict[str, State | None] = field(default_factory=dict)
    _entries: dict[str, list[Entry]] = field(default_factory=dict)
    _outbound: dict[tuple[str, Kind], list] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # Transfer id -> the trace context its inbound item arrived with (core/trace.py).
    traces: dict[str, str] = field(default_factory=dict)
    history: History = KEEP_EVERYTHING
    # The ACK (server time) of the submission being decided; 0: now. Its id's place in time
    # (core/history.py) says whether the decider looked it up in the archive too.
    acked_ms: int = 0
    # A proxy participant (core/remote.py): its remote bank's verdicts by key, None when the
    # participant decides alone; and the new postings this decision still needs a verdict for.
    remote: dict[str, Verdict] | None = None
    awaiting_remote: dict[str, AskedCredit] = field(default_factory=dict)

    def state(self, key: str) -> State | None:
        if key in self._current:
            return self._current[key]
        return self.loaded.get(key, (None, 0))[0]

    def record(self, key: str, step: Step, state: TransferState) -> None:
        event = EVENT_OF_STEP[step](state=state, at=self.now_ms)
        self._transfer_events.append((key, encoder.encode(event)))
        self._current[key] = state

    def move(self, key: str, effect: Effect, ref: str, transfer: Transfer) -> None:
        """Apply a money effect to an account already checked to exist.

        The amount is parsed only for a real effect: a refused transfer may carry an amount
        that never parsed, and it moves no money.
        """
        if effect is Effect.NONE:
            return
        self.apply_entry(key, ENTRY_OF_EFFECT[effect], ref, transfer.minor)

    def apply_entry(self, key: str, kind: EntryKind, ref: str, amount: int) -> None:
        account = self.state(key)
        assert isinstance(account, Account), key
        changed = account.apply(kind, amount)  # may raise a DomainError: nothing is kept then
        self._current[key] = changed
        self._entries.setdefault(key, []).append(
            Entry(kind, ref, format_amount(amount, account.currency))
        )

    def send(self, recipient: str, kind: Kind, item: object) -> None:
        tid = item_id(item)
        parent = self.traces.get(tid) if tid is not None else None
        if parent is not None and getattr(item, "trace", None) is msgspec.UNSET:
            context = child(parent, f"{self.token}:{kind}:{tid}")
            item = msgspec.structs.replace(item, trace=context) if context else item
        self._outbound.setdefault((recipient, kind), []).append(item)

    def dead_letter(self, reason: DeadLetterReason, detail: str, payload: bytes) -> None:
        self.dead_letters.append(DeadLetter(reason, detail, payload))

    def outbound(self) -> list[tuple[str, Kind, object]]:
        """(recipient, kind, item) of every protocol item this group sends."""
        return [(r, k, item) for (r, k), items in self._outbound.items() for item in items]

    @property
    def changed_states(self) -> dict[str, State | None]:
        return dict(self._current)

    def writes(self) -> list[Write]:
        """State events first (each key guarded once, by its first write), then the outbox."""
        writes: list[Write] = []
        guarded: set[str] = set()

        def guard(key: str) -> int | None:
            if key in guarded:
                return None
            guarded.add(key)
            return self.loaded.get(key, (None, 0))[1]

        states = self._transfer_events + account_events(self._entries, self._current, self.now_ms)
        for key, payload in states:
            writes.append(Write(state_subject(self.partition, key), payload, guard(key), key))
        serial = 0
        for (recipient, kind), items in self._outbound.items():
            for message in bundle(self.participant, kind, items):
                serial += 1
                subject = inbox_subject(
                    self.partition, recipient, kind, self.participant, f"{self.token}-{serial}"
                )
                headers = headers_for(items_of(message))
                writes.append(Write(subject, encoder.encode(message), None, None, headers))
        return writes
