"""Rebuild state from events, re-checking every step against the protocol table and the
account rules (I5). Pure: feed it (key, event) pairs in stream order."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from eventsource.core.account import Account, EntryKind
from eventsource.core.causes import (
    Facts,
    facts_of,
    funding_problem,
    owed_entry,
    record_key_of,
    record_problem,
)
from eventsource.core.errors import DomainError
from eventsource.core.events import (
    AccountChanged,
    AccountClosed,
    AccountEvent,
    AccountOpened,
    AccountSnapshot,
    TransferEvent,
    TransferState,
)
from eventsource.core.model import Outcome
from eventsource.core.money import parse_balance
from eventsource.core.protocol import Effect, IllegalTransition, Phase, Step, transition
from eventsource.core.saga import receiver_cancel_step


@dataclass
class Fold:
    accounts: dict[str, Account] = field(default_factory=dict)
    transfers: dict[str, TransferState] = field(default_factory=dict)
    funded: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per currency
    # Entry refs already applied per account and kind: a second one is a double effect (I3).
    applied: set = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    # Money the protocol moved, per currency: debits posted at submitters (settled OK) and
    # credits posted at receivers (confirmed OK). The difference is the money in flight (I1).
    settled: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    confirmed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # I8 (core/causes.py): the operator keys funding must be signed with, and the entries the
    # latest transfer steps owe (paid by the account events of the same commit).
    # None: funding signatures are not checked (a replay of events alone); the audit, the
    # archiver and `audit --full` always give the registered keys (maybe none).
    operator_keys: tuple[str, ...] | None = None
    owed: dict = field(default_factory=dict)
    # A fold seeded at an archive cut may begin inside an atomic batch: its account events are
    # live, the transfer events before them archived (final records are not seeded). Until the
    # first transfer event after an account event, an entry without a known record is excused.
    at_cut: bool = False
    _cut_accounts: bool = False

    # A fold that starts at an archive cut (core/archive_*.py) is seeded with the state every
    # account and unfinished record had there; a carried event repeats a state unchanged.
    def seed_account(self, key: str, snapshot: AccountSnapshot) -> None:
        self.accounts[key] = snapshot.to_account()
        self.at_cut = True

    def seed_transfer(self, key: str, state: TransferState) -> None:
        self.transfers[key] = self._kept(state)
        self.at_cut = True

    def carried(self, key: str, event: AccountEvent | TransferEvent) -> None:
        """An event the archiver carried forward: the state must be the one folded so far."""
        if isinstance(event, AccountEvent):
            account = self.accounts.get(key)
            if account is None or AccountSnapshot.of(account) != event.state:
                self.problems.append(f"{key}: a carried account state differs from the fold (I5)")
            return
        before = self.transfers.get(key)
        if before is None or self._differs(before, event.state):
            self.problems.append(f"{key}: a carried record differs from the fold (I5)")

    def account_event(self, key: str, event: AccountEvent) -> None:
        snapshot = event.state
        self._cut_accounts = self.at_cut
        match event:
            case AccountOpened():
                if key in self.accounts:
                    self.problems.append(f"{key}: opened twice")
                folded = Account(snapshot.participant, snapshot.account, snapshot.currency)
            case AccountChanged(entries=entries, signatures=signatures):
                folded = self._require(key)
                for entry in entries:
                    amount = parse_balance(entry.amount, folded.currency)
                    self._justify(key, entry, amount, folded.currency, signatures)
                    mark = self._entry_mark(key, entry.kind, entry.ref)
                    if mark in self.applied:
                        self.problems.append(f"{key}: {entry.kind} {entry.ref} applied twice (I3)")
                    self.applied.add(mark)
                    if entry.kind is EntryKind.FUNDED:
                        self.funded[folded.currency] += amount
                    try:
                        folded = folded.apply(entry.kind, amount)
                    except DomainError as exc:
                        self.problems.append(f"{key}: {entry.kind} {entry.ref} broke a rule: {exc}")
            case AccountClosed():
                folded = self._require(key)
                folded = Account(
                    folded.participant,
                    folded.account,
                    folded.currency,
                    folded.balance,
                    folded.pending_debits,
                    folded.pending_credits,
                    closed=True,
                )
        if AccountSnapshot.of(folded) != snapshot:
            self.problems.append(f"{key}: snapshot {snapshot} differs from the fold (I5)")
        if folded.available < 0:
            self.problems.append(f"{key}: available is negative (I2)")
        self.accounts[key] = folded

    def transfer_event(self, key: str, event: TransferEvent) -> None:
        state = event.state
        self.at_cut = self.at_cut and not self._cut_accounts
        before = self.transfers.get(key)
        step = Step(type(event).__struct_config__.tag)
        outcome = state.outcome if step is not Step.FUNDS_RESERVED else None
        effect = Effect.NONE
        try:
            phase, effect = transition(state.side, before.phase if before else None, step, outcome)
        except IllegalTransition as exc:
            self.problems.append(f"{key}: {exc} (I4)")
            phase = state.phase
        if (owed := owed_entry(facts_of(state), effect, key)) is not None:
            self.owed[self._entry_mark(*owed)] = state.transfer.minor
        if phase is not state.phase:
            self.problems.append(f"{key}: recorded phase {state.phase}, table says {phase} (I5)")
        if before is not None:
            if self._content_changed(before, state):
                self.problems.append(f"{key}: content changed (I3)")
            cancelled = step in (Step.CREDIT_CANCELLED, Step.CANCEL_RECORDED)
            if cancelled and before.phase is Phase.DECIDED:
                # p's decided outcome is provisional: the CANCEL replaces it, by the right step.
                if step is not receiver_cancel_step(before):
                    self.problems.append(f"{key}: {step} after a decided {before.outcome} (I3)")
            elif before.outcome is not None and before.outcome != state.outcome:
                self.problems.append(f"{key}: outcome changed from {before.outcome} (I4)")
        self._count_moved(step, state)
        self.transfers[key] = self._kept(state)

    def _justify(self, key: str, entry, amount: int, currency: str, signatures) -> None:
        """I8: the entry has a cause (core/causes.py)."""
        kind, ref = entry.kind, entry.ref
        if kind is EntryKind.FUNDED:
            if self.operator_keys is None:
                return
            sig = signatures.get(ref)
            problem = funding_problem(key, currency, ref, entry.amount, sig, self.operator_keys)
        else:
            paid = self.owed.pop(self._entry_mark(key, kind, ref), None)
            if paid is not None:
                problem = None if paid == amount else f"{key}: {kind} {ref} amount differs (I8)"
            else:
                record = record_key_of(key, kind, ref)
                found = self.transfers.get(record) if record else None
                facts = self._facts(found) if found is not None else None
                excused = facts is None and self.at_cut  # its record lies below the cut
                problem = None if excused else record_problem(facts, key, kind, ref, amount)
        if problem is not None:
            self.problems.append(problem)

    def _facts(self, record) -> Facts:
        return facts_of(record)

    def _count_moved(self, step: Step, state: TransferState) -> None:
        moved = {Step.TRANSFER_SETTLED: self.settled, Step.OUTCOME_CONFIRMED: self.confirmed}
        if state.outcome is not Outcome.OK or step not in moved:
            return
        try:
            moved[step][state.transfer.currency] += state.transfer.minor
        except DomainError as exc:
            self.problems.append(f"{state.transfer.id}: moved an invalid amount: {exc} (I1)")

    def _differs(self, before, state: TransferState) -> bool:
        return self._content_changed(before, state) or (before.phase, before.outcome) != (
            state.phase,
            state.outcome,
        )

    # What to keep per entry and per transfer record: everything here; CompactFold overrides
    # these to fold ledgers of millions of transfers in little memory.
    def _entry_mark(self, key: str, kind: EntryKind, ref: str) -> object:
        return (key, kind, ref)

    def _kept(self, state: TransferState):
        return state

    def _content_changed(self, before, state: TransferState) -> bool:
        return before.digest != state.digest

    def _require(self, key: str) -> Account:
        if key not in self.accounts:
            self.problems.append(f"{key}: event before the account was opened")
            return Account(*key.split(".acct.", 1), currency="EUR")
        return self.accounts[key]
