"""A pure in-memory network of participants that drives the protocol steps without NATS.

Each bank is one participant with its own ledger partition. A step loads state the way the
participant service does (`keys_to_load`, then `account_keys_of`), decides with `apply_message`
over a WorkSet, and commits: every write's guard is checked as JetStream's
expected-last-subject-sequence would check it, the state is re-read from the event payloads
(not taken from the WorkSet), and the outbound protocol messages go in flight.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from eventsource.core.account import Account, EntryKind
from eventsource.core.dispatch import account_keys_of, apply_message, check_message, keys_to_load
from eventsource.core.events import (
    AccountChanged,
    AccountOpened,
    AccountSnapshot,
    Entry,
    TransferState,
    account_event_decoder,
    encoder,
    transfer_event_decoder,
)
from eventsource.core.fold import Fold
from eventsource.core.messages import KIND_OF, InboxMessage, SubmitTransfers, inbox_decoder
from eventsource.core.model import AccountRef, TransferRequest
from eventsource.core.money import format_amount
from eventsource.core.saga import GiveUpReason, give_up
from eventsource.core.subjects import (
    account_key,
    outgoing_key,
    parse_inbox_subject,
    state_subject,
    submission_subject,
)
from eventsource.core.workset import DeadLetter, State, WorkSet


class StaleGuard(Exception):
    """A write's expected sequence does not match its subject: the server refuses the batch."""


def request(
    transfer_id: str,
    amount: str | int | float = "10.00",
    *,
    debtor: tuple[str, str] = ("n", "alice"),
    creditor: tuple[str, str] = ("p", "bob"),
    currency: str = "EUR",
    comment: str = "",
) -> TransferRequest:
    return TransferRequest(
        id=transfer_id,
        debtor=AccountRef(*debtor),
        creditor=AccountRef(*creditor),
        amount=amount,
        currency=currency,
        comment=comment,
    )


def decode_event_state(key: str, payload: bytes) -> State:
    if ".acct." in key:
        return account_event_decoder.decode(payload).state.to_account()
    return transfer_event_decoder.decode(payload).state


@dataclass
class Bank:
    name: str
    partition: int
    states: dict[str, tuple[State | None, int]] = field(default_factory=dict)
    last_sequence: int = 0
    events: list[tuple[str, bytes]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def account(self, name: str) -> Account:
        state = self.states[account_key(self.name, name)][0]
        assert isinstance(state, Account)
        return state

    def accounts(self) -> dict[str, Account]:
        return {k: s for k, (s, _) in self.states.items() if isinstance(s, Account)}

    def transfers(self) -> dict[str, TransferState]:
        return {k: s for k, (s, _) in self.states.items() if isinstance(s, TransferState)}

    def entries(self) -> Counter[tuple[str, EntryKind, str]]:
        """How many times each (account key, entry kind, ref) was written to the ledger."""
        seen: Counter[tuple[str, EntryKind, str]] = Counter()
        for key, payload in self.events:
            event = account_event_decoder.decode(payload) if ".acct." in key else None
            if isinstance(event, AccountChanged):
                seen.update((key, entry.kind, entry.ref) for entry in event.entries)
        return seen

    def append(self, key: str, payload: bytes) -> None:
        self.last_sequence += 1
        self.states[key] = (decode_event_state(key, payload), self.last_sequence)
        self.events.append((key, payload))

    def commit(self, ws: WorkSet) -> list[tuple[str, bytes]]:
        """Apply one atomic batch, or refuse all of it; return the outbound messages."""
        writes = ws.writes()
        guarded: set[str] = set()
        for write in writes:
            if write.key is None:
                assert write.expected is None, write
                continue
            assert write.subject == state_subject(self.partition, write.key)
            if write.expected is None:
                assert write.key in guarded, f"first write of {write.key} is not guarded"
                continue
            assert write.key not in guarded, f"{write.key} is guarded twice in one batch"
            guarded.add(write.key)
            if write.expected != self.states.get(write.key, (None, 0))[1]:
                raise StaleGuard(write.key)
        assert guarded == set(ws.changed_states), "every changed state has a write, and only those"
        outbound = []
        for write in writes:
            if write.key is None:
                self.last_sequence += 1
                outbound.append((write.subject, write.payload))
            else:
                self.append(write.key, write.payload)
        for key, state in ws.changed_states.items():
            assert self.states[key][0] == state, f"the last event on {key} is not its new state"
        self.dead_letters.extend(ws.dead_letters)
        return outbound


@dataclass
class Network:
    banks: dict[str, Bank]
    known: frozenset[str]
    in_flight: list[tuple[str, bytes]] = field(default_factory=list)
    funded: Counter[str] = field(default_factory=Counter)
    clock: int = 0

    @classmethod
    def of(cls, *names: str) -> Network:
        banks = {name: Bank(name, i) for i, name in enumerate(names)}
        return cls(banks=banks, known=frozenset(names))

    def open_account(self, bank: str, account: str, currency: str, minor: int = 0) -> None:
        """Open an account and fund it, as the accounts service does: the only source of money."""
        key = account_key(bank, account)
        opened = Account(bank, account, currency)
        self.bank(bank).append(
            key, encoder.encode(AccountOpened(state=AccountSnapshot.of(opened), at=0))
        )
        if minor:
            funded = opened.apply(EntryKind.FUNDED, minor)
            entry = Entry(EntryKind.FUNDED, f"fund-{key}", format_amount(minor, currency))
            event = AccountChanged(state=AccountSnapshot.of(funded), entries=[entry], at=0)
            self.bank(bank).append(key, encoder.encode(event))
            self.funded[currency] += minor

    def bank(self, name: str) -> Bank:
        return self.banks[name]

    def submit(self, bank: str, *requests: TransferRequest) -> None:
        """A client publishes a submit message to its bank's inbox."""
        self.clock += 1
        message = SubmitTransfers(transfers=list(requests))
        subject = submission_subject(self.bank(bank).partition, bank, f"client-{self.clock}")
        self.in_flight.append((subject, encoder.encode(message)))

    def kinds(self) -> list[str]:
        return [subject.split(".")[4] for subject, _ in self.in_flight]

    def decide(
        self,
        name: str,
        payloads: list[bytes],
        *,
        optimistic: bool = False,
        remote: dict | None = None,
    ) -> WorkSet:
        """Load what the messages name, like the service, and decide them in one WorkSet.

        `optimistic` takes the keys that are normally new as absent without reading them, as
        the service does on a cache miss; the commit's guards must then catch a wrong guess.
        """
        bank = self.bank(name)
        messages: list[InboxMessage] = [inbox_decoder.decode(payload) for payload in payloads]
        keys: set[str] = set()
        new: set[str] = set()
        for message in messages:
            check_message(message, name)
            likely_new, named = keys_to_load(name, message)
            keys |= named
            new |= likely_new
        loaded = {key: bank.states.get(key, (None, 0)) for key in keys | new}
        if optimistic:
            loaded |= {key: (None, 0) for key in new - keys}
        ws = self._workset(name, loaded)
        ws.remote = remote  # a proxy's verdicts of its remote bank (core/remote.py)
        for message in messages:
            apply_message(ws, message)
        return ws

    def _workset(self, name: str, loaded: dict[str, tuple[State | None, int]]) -> WorkSet:
        """A WorkSet over `loaded` plus the own accounts its transfer records point to."""
        bank = self.bank(name)
        more = account_keys_of(name, [state for state, _ in loaded.values()]) - set(loaded)
        self.clock += 1
        return WorkSet(
            participant=name,
            partition=bank.partition,
            loaded=loaded | {key: bank.states.get(key, (None, 0)) for key in more},
            known_participants=self.known,
            now_ms=self.clock,
            token=f"c{self.clock}",
        )

    def give_up(
        self, name: str, transfer_id: str, reason: GiveUpReason = GiveUpReason.DEADLINE_PASSED
    ) -> bool:
        """n's deadline fires: decide the give-up over fresh state and commit it (saga.py)."""
        key = outgoing_key(name, transfer_id)
        ws = self._workset(name, {key: self.bank(name).states.get(key, (None, 0))})
        gave_up = give_up(ws, transfer_id, reason)
        self.in_flight.extend(self.bank(name).commit(ws))
        return gave_up

    def step(self, name: str, payloads: list[bytes], *, optimistic: bool = False) -> WorkSet:
        """Decide and commit; a batch refused for a stale guess is decided again, fresh."""
        ws = self.decide(name, payloads, optimistic=optimistic)
        try:
            outbound = self.bank(name).commit(ws)
        except StaleGuard:
            assert optimistic, "a decision from fresh state was refused by its own guards"
            ws = self.decide(name, payloads)
            outbound = self.bank(name).commit(ws)
        self.in_flight.extend(outbound)
        return ws

    def deliver(
        self, picks: list[int], *, keep: frozenset[int] = frozenset(), optimistic: bool = False
    ) -> WorkSet:
        """Deliver the picked in-flight messages (one recipient) as one group; `keep` stay in
        flight to be delivered again later."""
        chosen = [self.in_flight[i] for i in picks]
        recipients = {recipient_of(subject) for subject, _ in chosen}
        assert len(recipients) == 1, recipients
        for i in sorted(set(picks) - keep, reverse=True):
            del self.in_flight[i]
        for subject, payload in chosen:
            kind = KIND_OF[type(inbox_decoder.decode(payload))]
            assert subject.split(".")[4] == kind.value, subject
        return self.step(
            recipients.pop(), [payload for _, payload in chosen], optimistic=optimistic
        )

    def deliver_next(self) -> WorkSet:
        return self.deliver([0])

    def drain(self, limit: int = 10_000) -> None:
        for _ in range(limit):
            if not self.in_flight:
                return
            self.deliver_next()
        raise AssertionError("the protocol did not come to rest")


def fold_events(events: list[tuple[str, bytes]], fold: Fold | None = None) -> Fold:
    """Re-fold ledger events in stream order, as `replay` and `audit` do."""
    fold = fold if fold is not None else Fold()
    for key, payload in events:
        if ".acct." in key:
            fold.account_event(key, account_event_decoder.decode(payload))
        else:
            fold.transfer_event(key, transfer_event_decoder.decode(payload))
    return fold


def fold_network(net: Network) -> Fold:
    fold = Fold()
    for bank in net.banks.values():
        fold_events(bank.events, fold)
    return fold


def recipient_of(subject: str) -> str:
    where = parse_inbox_subject(subject)
    assert where is not None, subject
    return where.recipient
