"""An account's money, two-phase: reserve then post or void; credits pending until confirmed."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from eventsource.core.errors import (
    AccountIsClosed,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidAmount,
    UnknownAccount,
)
from eventsource.core.money import MAX_MINOR, format_amount
from eventsource.core.protocol import Effect


class EntryKind(enum.StrEnum):
    FUNDED = "FUNDED"
    RESERVED = "RESERVED"
    DEBITED = "DEBITED"
    VOIDED = "VOIDED"
    CREDIT_PENDING = "CREDIT_PENDING"
    CREDITED = "CREDITED"
    CREDIT_VOIDED = "CREDIT_VOIDED"


ENTRY_OF_EFFECT = {
    Effect.RESERVE: EntryKind.RESERVED,
    Effect.POST_DEBIT: EntryKind.DEBITED,
    Effect.VOID: EntryKind.VOIDED,
    Effect.PEND_CREDIT: EntryKind.CREDIT_PENDING,
    Effect.POST_CREDIT: EntryKind.CREDITED,
    Effect.VOID_CREDIT: EntryKind.CREDIT_VOIDED,
}


@dataclass(frozen=True, slots=True)
class Account:
    participant: str
    account: str
    currency: str
    balance: int = 0
    pending_debits: int = 0
    pending_credits: int = 0
    closed: bool = False

    @property
    def available(self) -> int:
        """What may still be reserved; pending credits are not spendable until confirmed."""
        return self.balance - self.pending_debits

    def apply(self, kind: EntryKind, amount: int) -> Account:
        """The account after one entry. Only RESERVED and FUNDED can be refused."""
        if kind is EntryKind.RESERVED:
            if self.closed:
                raise AccountIsClosed(f"account {self.participant}/{self.account} is closed")
            if amount > self.available:
                raise InsufficientFunds(
                    f"available {format_amount(self.available, self.currency)} {self.currency} "
                    f"is less than {format_amount(amount, self.currency)}"
                )
            return replace(self, pending_debits=self.pending_debits + amount)
        if kind is EntryKind.DEBITED:
            return replace(
                self, balance=self.balance - amount, pending_debits=self.pending_debits - amount
            )
        if kind is EntryKind.VOIDED:
            return replace(self, pending_debits=self.pending_debits - amount)
        if kind is EntryKind.CREDIT_PENDING:
            self._check_headroom(amount)
            return replace(self, pending_credits=self.pending_credits + amount)
        if kind is EntryKind.CREDITED:
            return replace(
                self, balance=self.balance + amount, pending_credits=self.pending_credits - amount
            )
        if kind is EntryKind.CREDIT_VOIDED:
            return replace(self, pending_credits=self.pending_credits - amount)
        if kind is EntryKind.FUNDED:
            if self.closed:
                raise AccountIsClosed(f"account {self.participant}/{self.account} is closed")
            self._check_headroom(amount)
            return replace(self, balance=self.balance + amount)
        raise ValueError(f"unknown entry kind {kind}")

    def _check_headroom(self, amount: int) -> None:
        # Balances must stay int64 for every reader, whatever its language.
        if self.balance + self.pending_credits + amount > MAX_MINOR:
            raise InvalidAmount("the account balance would exceed 2^63-1 minor units")


def snapshot_problem(account: Account, key: str) -> str | None:
    """Why no fold of entries can have produced `account` as the state of the account key
    `<P>.acct.<A>` (a forged or corrupt snapshot: issue 13), or None. A service never decides
    on such a state: its reader quarantines the account."""
    participant, _, name = key.split(".", 2)
    if (account.participant, account.account) != (participant, name):
        return f"names account {account.participant}/{account.account}, not {participant}/{name}"
    if min(account.balance, account.pending_debits, account.pending_credits) < 0:
        return "holds a negative amount"
    if account.available < 0:
        return "has less than zero available (an overdraft, I2)"
    if account.balance + account.pending_credits > MAX_MINOR:
        return "exceeds 2^63-1 minor units"
    return None


def require_open(account: object, currency: str, name: str) -> Account:
    """The account a transfer names, if it exists, is open and holds the transfer's currency."""
    if not isinstance(account, Account):
        raise UnknownAccount(f"unknown account {name!r}")
    if account.closed:
        raise AccountIsClosed(f"account {name!r} is closed")
    if account.currency != currency:
        raise CurrencyMismatch(f"account {name!r} holds {account.currency}, not {currency}")
    return account
