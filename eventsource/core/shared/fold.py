"""Rebuild the shared store from its events and say what breaks an invariant. Pure: feed it
(key, event) pairs in stream order, then call `check_postings`.

Each problem names its invariant in parentheses, e.g. "(I3)", for the audit to file it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

from eventsource.core.account import Account, EntryKind
from eventsource.core.causes import funding_problem
from eventsource.core.errors import DomainError
from eventsource.core.events import (
    AccountChanged,
    AccountClosed,
    AccountEvent,
    AccountOpened,
    AccountSnapshot,
)
from eventsource.core.model import Outcome
from eventsource.core.money import parse_balance
from eventsource.core.shared.layout import (
    POSTING_OF_ENTRY,
    SharedTransferEvent,
    TransferDecision,
    entry_ref,
    transfer_key,
)
from eventsource.core.subjects import account_key


@dataclass
class SharedFold:
    accounts: dict[str, Account] = field(default_factory=dict)
    decisions: dict[str, TransferDecision] = field(default_factory=dict)
    funded: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per currency
    # Transfer entry ref -> the (account key, kind, minor amount) entries that carried it.
    moved: dict[str, list[tuple[str, EntryKind, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    problems: list[str] = field(default_factory=list)
    # I8: the operator keys funding must be signed with (None: not checked, a replay alone).
    operator_keys: tuple[str, ...] | None = None

    def account_event(self, key: str, event: AccountEvent) -> None:
        match event:
            case AccountOpened(state=snapshot):
                if key in self.accounts:
                    self.problems.append(f"{key}: opened twice (I5)")
                folded = Account(snapshot.participant, snapshot.account, snapshot.currency)
            case AccountChanged(entries=entries, signatures=signatures):
                folded = self._require(key)
                for entry in entries:
                    if entry.kind is EntryKind.FUNDED and self.operator_keys is not None:
                        sig, keys = signatures.get(entry.ref), self.operator_keys
                        why = funding_problem(
                            key, folded.currency, entry.ref, entry.amount, sig, keys
                        )
                        self.problems += [why] if why else []
                    folded = self._apply(key, folded, entry.kind, entry.ref, entry.amount)
            case AccountClosed():
                folded = replace(self._require(key), closed=True)
        if AccountSnapshot.of(folded) != event.state:
            self.problems.append(f"{key}: snapshot {event.state} differs from the fold (I5)")
        if folded.balance < 0 or folded.pending_debits or folded.pending_credits:
            self.problems.append(f"{key}: balance {folded.balance} or pending money (I2)")
        self.accounts[key] = folded

    def _apply(self, key: str, account: Account, kind: EntryKind, ref: str, text: str) -> Account:
        amount = parse_balance(text, account.currency)
        if kind is EntryKind.FUNDED:
            self.funded[account.currency] += amount
            posting = lambda a, m: a.apply(EntryKind.FUNDED, m)  # noqa: E731
        elif kind in POSTING_OF_ENTRY:
            self.moved[ref].append((key, kind, amount))
            posting = POSTING_OF_ENTRY[kind]
        else:
            self.problems.append(f"{key}: {kind} {ref} has no place in the shared store (I5)")
            return account
        try:
            return posting(account, amount)
        except DomainError as exc:
            self.problems.append(f"{key}: {kind} {ref} broke a rule: {exc} (I2)")
            return account

    def transfer_event(self, key: str, event: SharedTransferEvent) -> None:
        before = self.decisions.get(key)
        if before is not None:
            # A record is final from its first write; a second one is a second application.
            self.problems.append(f"{key}: recorded again (I3)")
            if before.outcome != event.state.outcome:
                self.problems.append(f"{key}: outcome changed from {before.outcome} (I4)")
        self.decisions[key] = event.state

    def check_postings(self) -> None:
        """An OK record moved its amount exactly once off the debtor and onto the creditor; a
        REJECTED one moved nothing; no money moved without an OK record (I3)."""
        refs = set()
        for key, decision in self.decisions.items():
            t = decision.transfer
            ref = entry_ref(t.debtor.participant, t.id)
            refs.add(ref)
            found = sorted(self.moved.get(ref, []))
            if decision.outcome is Outcome.OK:
                debtor = account_key(t.debtor.participant, t.debtor.account)
                creditor = account_key(t.creditor.participant, t.creditor.account)
                wanted = sorted(
                    [(debtor, EntryKind.DEBITED, t.minor), (creditor, EntryKind.CREDITED, t.minor)]
                )
                if found != wanted:
                    self.problems.append(f"{key}: OK, but its entries are {found} (I3)")
            elif found:
                self.problems.append(f"{key}: {decision.outcome}, but money moved: {found} (I3)")
        for ref in sorted(set(self.moved) - refs):
            submitter, _, transfer_id = ref.partition(".")
            key = transfer_key(submitter, transfer_id)
            self.problems.append(f"{key}: money moved without a record (I3)")

    def _require(self, key: str) -> Account:
        if key not in self.accounts:
            self.problems.append(f"{key}: event before the account was opened (I5)")
            return Account(*key.split(".acct.", 1), currency="EUR")
        return self.accounts[key]
