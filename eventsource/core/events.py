"""Ledger events: what each step records. One union per kind of ledger subject, one decoder each.

Every event carries the state *after* it (a snapshot). The KV buckets are fed from these subjects
by the server, so the latest event on a subject is the current state; `replay` re-folds the events
through the protocol table and the account rules and checks every snapshot (I5).
"""

from __future__ import annotations

import msgspec

from eventsource.core.account import Account, EntryKind
from eventsource.core.errors import RejectionCause
from eventsource.core.model import Outcome, Side, Transfer
from eventsource.core.money import format_amount, parse_balance
from eventsource.core.protocol import Phase, Step


class TransferState(msgspec.Struct, frozen=True, kw_only=True):
    """One side's view of one transfer."""

    transfer: Transfer
    digest: str
    side: Side
    phase: Phase
    outcome: Outcome | None = None
    cause: RejectionCause | None = None
    detail: str = ""

    @property
    def final(self) -> bool:
        return self.phase in (Phase.SETTLED, Phase.CONFIRMED)


class TransferEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    state: TransferState
    at: int  # unix milliseconds, from the deciding service's clock


class FundsReserved(TransferEvent, tag=Step.FUNDS_RESERVED.value):
    pass


class TransferRefused(TransferEvent, tag=Step.TRANSFER_REFUSED.value):
    pass


class TransferSettled(TransferEvent, tag=Step.TRANSFER_SETTLED.value):
    pass


class PostingAccepted(TransferEvent, tag=Step.POSTING_ACCEPTED.value):
    pass


class PostingDeclined(TransferEvent, tag=Step.POSTING_DECLINED.value):
    pass


class OutcomeConfirmed(TransferEvent, tag=Step.OUTCOME_CONFIRMED.value):
    pass


class TransferCancelled(TransferEvent, tag=Step.TRANSFER_CANCELLED.value):
    pass


class CreditCancelled(TransferEvent, tag=Step.CREDIT_CANCELLED.value):
    pass


class CancelRecorded(TransferEvent, tag=Step.CANCEL_RECORDED.value):
    pass


AnyTransferEvent = (
    FundsReserved
    | TransferRefused
    | TransferSettled
    | PostingAccepted
    | PostingDeclined
    | OutcomeConfirmed
    | TransferCancelled
    | CreditCancelled
    | CancelRecorded
)
EVENT_OF_STEP: dict[Step, type[TransferEvent]] = {
    Step(cls.__struct_config__.tag): cls  # type: ignore[misc]
    for cls in (
        FundsReserved,
        TransferRefused,
        TransferSettled,
        PostingAccepted,
        PostingDeclined,
        OutcomeConfirmed,
        TransferCancelled,
        CreditCancelled,
        CancelRecorded,
    )
}


class AccountSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    participant: str
    account: str
    currency: str
    balance: str
    pending_debits: str
    pending_credits: str
    closed: bool = False

    @classmethod
    def of(cls, account: Account) -> AccountSnapshot:
        money = account.currency
        return cls(
            participant=account.participant,
            account=account.account,
            currency=money,
            balance=format_amount(account.balance, money),
            pending_debits=format_amount(account.pending_debits, money),
            pending_credits=format_amount(account.pending_credits, money),
            closed=account.closed,
        )

    def to_account(self) -> Account:
        money = self.currency
        return Account(
            participant=self.participant,
            account=self.account,
            currency=money,
            balance=parse_balance(self.balance, money),
            pending_debits=parse_balance(self.pending_debits, money),
            pending_credits=parse_balance(self.pending_credits, money),
            closed=self.closed,
        )


class Entry(msgspec.Struct, frozen=True, array_like=True):
    """One money movement on an account; `ref` is a transfer id or a funding reference."""

    kind: EntryKind
    ref: str
    amount: str


class AccountEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    state: AccountSnapshot
    at: int


class AccountOpened(AccountEvent, tag="AccountOpened"):
    pass


class AccountChanged(AccountEvent, tag="AccountChanged", omit_defaults=True):
    entries: list[Entry]
    # The operator's signature of each FUNDED entry, by its ref (core/signing.funding_bytes);
    # absent from every other change: their cause is a transfer record (invariant I8).
    signatures: dict[str, str] = {}


class AccountClosed(AccountEvent, tag="AccountClosed"):
    pass


AnyAccountEvent = AccountOpened | AccountChanged | AccountClosed

transfer_event_decoder = msgspec.json.Decoder(AnyTransferEvent)
account_event_decoder = msgspec.json.Decoder(AnyAccountEvent)
encoder = msgspec.json.Encoder()
