"""Whether an account's snapshot is what its own entries fold to, pure (issue 13: a service never
trusts a snapshot that its own fold of the entries does not reproduce).

Every account event carries the state after it, and a service decides on the last one. Before
it trusts a snapshot it did not write itself, its reader (adapters/snapshot_verify.py) feeds
this fold the key's events in stream order, from a starting point:

- the first live event of the subject: an `AccountOpened` starts from an empty account; any
  other event (the history before it was archived: a bounded history) is taken as it says;
- or a state the service already trusts, at a known sequence: one it verified earlier, or wrote
  itself after a commit (its own fold); then only the events after it are folded.

Only arithmetic is checked here: each entry applied with the store's account rules, closing,
and the last snapshot compared field by field. Whether an entry has a cause (a transfer record,
a signed funding) is the audit's invariant I8.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from eventsource.core.account import Account, EntryKind
from eventsource.core.errors import NatsbankError
from eventsource.core.events import (
    AccountChanged,
    AccountClosed,
    AccountEvent,
    AccountOpened,
    AccountSnapshot,
)
from eventsource.core.money import parse_balance

ApplyEntry = Callable[[Account, EntryKind, int], Account]


def apply_entry(account: Account, kind: EntryKind, amount: int) -> Account:
    """The independent store's rules: two-phase entries (core/account.py)."""
    return account.apply(kind, amount)


_FIELDS = ("balance", "pending_debits", "pending_credits")
_OTHER_FIELDS = ("participant", "account", "currency", "closed")


@dataclass
class AccountRefold:
    """The fold of one account key's events; `problem` once something does not add up."""

    key: str
    apply: ApplyEntry = apply_entry
    folded: Account | None = None  # None: no starting point yet
    problem: str | None = None

    @classmethod
    def trusted(cls, key: str, account: Account, apply: ApplyEntry = apply_entry) -> AccountRefold:
        """Starting from a state the service already trusts (verified, or its own write)."""
        return cls(key, apply, account)

    def add(self, event: AccountEvent, seq: int, *, carried: bool = False) -> None:
        """The next event on the key, in stream order. A carried copy (the archiver copied the
        event before it forward, unchanged) changes nothing."""
        if self.problem is not None:
            return
        if self.folded is None:
            snapshot = event.state
            if isinstance(event, AccountOpened):
                self.folded = Account(snapshot.participant, snapshot.account, snapshot.currency)
            else:  # the first live event after an archive cut: its state is the start
                self.folded = snapshot.to_account()
            return
        if carried:
            return
        match event:
            case AccountOpened():
                self.problem = f"its account is opened again at sequence {seq}"
            case AccountChanged(entries=entries):
                for entry in entries:
                    self._entry(entry.kind, entry.ref, entry.amount, seq)
            case AccountClosed():
                self.folded = replace(self.folded, closed=True)

    def _entry(self, kind: EntryKind, ref: str, text: str, seq: int) -> None:
        assert self.folded is not None
        where = f"its entry {kind} {ref} at sequence {seq}"
        try:
            amount = parse_balance(text, self.folded.currency)
            if amount <= 0:
                self.problem = f"{where} moves a non-positive amount {text}"
                return
            self.folded = self.apply(self.folded, kind, amount)
        except (NatsbankError, ValueError) as exc:
            self.problem = f"{where} breaks a rule: {str(exc)[:200]}"

    def verdict(self, last: AccountEvent) -> str | None:
        """Why `last`'s snapshot (the last event added, or the state started from when none was)
        is not the fold, or None: it is."""
        if self.problem is not None:
            return self.problem
        if self.folded is None:
            return None
        return snapshot_difference(last.state, self.folded)


def snapshot_difference(snapshot: AccountSnapshot, folded: Account) -> str | None:
    """What `snapshot` says that the fold does not, or None when they agree."""
    fold = AccountSnapshot.of(folded)
    if fold == snapshot:
        return None
    differ = [f for f in _FIELDS if getattr(snapshot, f) != getattr(fold, f)]
    if not differ:  # the account's names, its currency or whether it is closed
        differ = [f for f in _OTHER_FIELDS if getattr(snapshot, f) != getattr(fold, f)]
    said = ", ".join(f"{f.replace('_', ' ')} {getattr(snapshot, f)}" for f in differ)
    made = ", ".join(f"{f.replace('_', ' ')} {getattr(fold, f)}" for f in differ)
    return f"its snapshot says {said}, its entries fold to {made}"
