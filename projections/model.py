"""What the projector reads from a ledger stream, as flat rows. Pure: no I/O.

Every state event carries the record's snapshot after it, so a row is that snapshot plus the
event's time; applying the events of one key in stream order leaves the row equal to the KV value.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from eventsource.core.errors import ProtocolError
from eventsource.core.events import (
    TransferState,
    account_event_decoder,
    transfer_event_decoder,
)
from eventsource.core.model import Side
from eventsource.core.protocol import Phase
from eventsource.core.subjects import key_of_subject

# The column that records when a record reached each phase.
PHASE_COLUMN = {
    Phase.RESERVED: "reserved_at",
    Phase.SETTLED: "settled_at",
    Phase.DECIDED: "decided_at",
    Phase.CONFIRMED: "confirmed_at",
}


class Undecodable(ProtocolError):
    """A ledger message the projector cannot turn into a row: it goes to the dead letters."""


@dataclass(frozen=True, slots=True)
class AccountRow:
    key: str
    participant: str
    account: str
    currency: str
    balance: str
    pending_debits: str
    pending_credits: str
    closed: bool
    at: int  # unix ms of the event


@dataclass(frozen=True, slots=True)
class TransferRow:
    key: str
    participant: str
    side: str
    transfer_id: str
    counterparty: str
    debtor: str
    creditor: str
    amount: str  # exactly as recorded: a refused transfer may keep an invalid amount as text
    currency: str
    comment: str
    phase: str
    outcome: str | None
    cause: str | None
    detail: str
    at: int

    @property
    def phase_column(self) -> str:
        return PHASE_COLUMN[Phase(self.phase)]


Row = AccountRow | TransferRow


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One state event with its place in the stream: the position the projector records."""

    stream: str
    seq: int
    row: Row


def participant_of_key(key: str) -> str:
    return key.split(".", 1)[0]


def decode_row(subject: str, data: bytes) -> Row:
    """The row of a state event on `$KV.ledger_<k>.<key>`; raises Undecodable."""
    key = key_of_subject(subject)
    if key is None:
        raise Undecodable(f"{subject} is not a state subject")
    parts = key.split(".")
    try:
        if (len(parts) == 3 and parts[1] == "out") or (len(parts) == 4 and parts[1] == "in"):
            return _transfer_row(key, parts, data)
    except msgspec.DecodeError as exc:
        raise Undecodable(f"{key}: {exc}") from None
    return account_row(key, data)


def account_row(key: str, data: bytes) -> AccountRow:
    """The row of an account event on the key `<P>.acct.<A>` (either store); raises
    Undecodable, also for a key of another kind."""
    parts = key.split(".")
    if len(parts) != 3 or parts[1] != "acct":
        raise Undecodable(f"{key} is not an account or transfer key")
    try:
        event = account_event_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise Undecodable(f"{key}: {exc}") from None
    state = event.state
    if (state.participant, state.account) != (parts[0], parts[2]):
        raise Undecodable(f"{key} holds the account {state.participant}/{state.account}")
    return AccountRow(
        key=key,
        participant=state.participant,
        account=state.account,
        currency=state.currency,
        balance=state.balance,
        pending_debits=state.pending_debits,
        pending_credits=state.pending_credits,
        closed=state.closed,
        at=event.at,
    )


def _transfer_row(key: str, parts: list[str], data: bytes) -> TransferRow:
    event = transfer_event_decoder.decode(data)
    state = event.state
    transfer = state.transfer
    side = Side.SUBMITTER if parts[1] == "out" else Side.RECEIVER
    expected_side = parts[0] == (
        transfer.debtor.participant if side is Side.SUBMITTER else transfer.creditor.participant
    )
    if state.side != side or transfer.id != parts[-1] or not expected_side:
        raise Undecodable(f"{key} holds the {state.side} record of transfer {transfer.id}")
    counterparty = transfer.creditor.participant if side is Side.SUBMITTER else parts[2]
    return record_row(key, counterparty, state, event.at)


def sql_text(value: str) -> str:
    """`value` as a projection stores it. A refused request is recorded with its text as sent
    (an invalid amount, a comment, account names), and SQL text cannot hold NUL (PostgreSQL
    refuses it): a NUL becomes U+FFFD, in every backend and in the I6 comparison alike."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def record_row(key: str, counterparty: str, state: TransferState, at: int) -> TransferRow:
    """The row of one side's record `state` (the owner is the key's first token); the text a
    request brought as `sql_text`."""
    transfer = state.transfer
    debtor, creditor = transfer.debtor, transfer.creditor
    return TransferRow(
        key=key,
        participant=participant_of_key(key),
        side=state.side.value,
        transfer_id=transfer.id,
        counterparty=sql_text(counterparty),
        debtor=sql_text(f"{debtor.participant}/{debtor.account}"),
        creditor=sql_text(f"{creditor.participant}/{creditor.account}"),
        amount=sql_text(transfer.amount),
        currency=sql_text(transfer.currency),
        comment=sql_text(transfer.comment),
        phase=state.phase.value,
        outcome=state.outcome.value if state.outcome else None,
        cause=state.cause.value if state.cause else None,
        detail=sql_text(state.detail),
        at=at,
    )


# The columns of an upsert (both backends), in this order; times are unix ms (PostgreSQL turns
# them into timestamptz in its statement). The key comes first.
ACCOUNT_COLUMNS = (
    "key", "participant", "account", "currency", "balance", "pending_debits", "pending_credits",
    "closed", "updated_at", "stream", "seq",
)  # fmt: skip
TRANSFER_COLUMNS = (
    "key", "participant", "side", "transfer_id", "counterparty", "debtor", "creditor", "amount",
    "currency", "comment", "phase", "outcome", "cause", "detail",
    "reserved_at", "settled_at", "decided_at", "confirmed_at", "updated_at", "stream", "seq",
)  # fmt: skip
PHASE_COLUMNS = ("reserved_at", "settled_at", "decided_at", "confirmed_at")
# The columns an upsert never changes: what the key names.
ACCOUNT_IDENTITY = ("key", "participant", "account")
TRANSFER_IDENTITY = ("key", "participant", "side", "transfer_id", "counterparty")


def on_conflict_update(table: str, columns: tuple[str, ...], identity: tuple[str, ...]) -> str:
    """The ON CONFLICT clause of an upsert into `table`, the same SQL in PostgreSQL and SQLite:
    a row never goes back to an older snapshot (`seq <`), and a phase time once set stays."""
    sets = ", ".join(
        f"{c} = COALESCE({table}.{c}, EXCLUDED.{c})"
        if c in PHASE_COLUMNS
        else f"{c} = EXCLUDED.{c}"
        for c in columns
        if c not in identity
    )
    return f"ON CONFLICT (key) DO UPDATE SET {sets} WHERE {table}.seq < EXCLUDED.seq"


ACCOUNT_ON_CONFLICT = on_conflict_update("accounts", ACCOUNT_COLUMNS, ACCOUNT_IDENTITY)
TRANSFER_ON_CONFLICT = on_conflict_update("transfers", TRANSFER_COLUMNS, TRANSFER_IDENTITY)
# Where a transfer upsert's four phase times are (`merged_per_key` merges them).
TRANSFER_PHASE_ARGS = slice(14, 18)


def account_args(event: LedgerEvent) -> tuple:
    """An account event's upsert, in ACCOUNT_COLUMNS order."""
    row = event.row
    return (
        row.key, row.participant, row.account, row.currency, row.balance, row.pending_debits,
        row.pending_credits, row.closed, row.at, event.stream, event.seq,
    )  # fmt: skip


def transfer_args(event: LedgerEvent) -> tuple:
    """A transfer event's upsert, in TRANSFER_COLUMNS order: only its own phase time is set."""
    row = event.row
    column = row.phase_column
    phases = tuple(row.at if c == column else None for c in PHASE_COLUMNS)
    return (
        row.key, row.participant, row.side, row.transfer_id, row.counterparty, row.debtor,
        row.creditor, row.amount, row.currency, row.comment, row.phase, row.outcome, row.cause,
        row.detail, *phases, row.at, event.stream, event.seq,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Upserts:
    """A batch's events above the stored position as upserts, one per key (stream order kept
    within a key), and the time stamped on the last of them (None if none is left)."""

    accounts: list[tuple]
    transfers: list[tuple]
    applied: int  # events above the position
    last_at: int | None


def upserts_above(events: list[LedgerEvent], stored: int) -> Upserts:
    """What applying `events` after position `stored` writes: events at or below it are
    skipped (applied already); the rest coalesced per key (`last_per_key`, `merged_per_key`)."""
    todo = [e for e in events if e.seq > stored]
    accounts = [account_args(e) for e in todo if isinstance(e.row, AccountRow)]
    transfers = [transfer_args(e) for e in todo if isinstance(e.row, TransferRow)]
    return Upserts(
        last_per_key(accounts),
        merged_per_key(transfers),
        len(todo),
        max((e.row.at for e in todo), default=None),
    )


def last_per_key(rows: list[tuple]) -> list[tuple]:
    """Account upserts of one batch (key first, in stream order): the last per key. Each upsert
    replaces the row with a later snapshot, so applying only the last gives the same row."""
    return list({row[0]: row for row in rows}.values())


def merged_per_key(rows: list[tuple]) -> list[tuple]:
    """Transfer upserts of one batch (key first, in stream order): one per key, the last one's
    values with each phase time the first one given. The upsert keeps a phase time once set
    (`COALESCE(old, new)`), so one merged upsert gives the row all of them would."""
    phases = TRANSFER_PHASE_ARGS
    merged: dict[object, tuple] = {}
    for row in rows:
        earlier = merged.get(row[0])
        if earlier is not None:
            times = tuple(
                old if old is not None else new
                for old, new in zip(earlier[phases], row[phases], strict=True)
            )
            row = row[: phases.start] + times + row[phases.stop :]
        merged[row[0]] = row
    return list(merged.values())
