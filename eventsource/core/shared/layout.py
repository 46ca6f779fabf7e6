"""The shared-store variant (`--store shared`): every participant's accounts in ONE stream, the
KV bucket `shared` (stream `KV_shared`), so a transfer is one atomic step.

One batch debits the debtor, credits the creditor (each account guarded by its expected
sequence) and writes the transfer record `<N>.xfer.<ID>` (expected sequence 0: the id is a
permanent idempotency key). There is no pending state, no compensation and no CANCEL; the
record is the final outcome from the moment it exists. Submissions still land on a JetStream
inbox in the same stream (`nb.shared.to.<N>.submit.<N>.<token>`: the sender token is the bank
itself, as on the independent store's inbox), whose PubAck is the ACK.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from eventsource.core.account import Account, EntryKind, snapshot_problem
from eventsource.core.errors import RejectionCause
from eventsource.core.events import account_event_decoder
from eventsource.core.model import Outcome, Transfer
from eventsource.core.subjects import PREFIX, KeySpace

SHARED_BUCKET = "shared"
SHARED_STREAM = f"KV_{SHARED_BUCKET}"
_STATE_PREFIX = f"$KV.{SHARED_BUCKET}."
_INBOX_PREFIX = f"{PREFIX}.{SHARED_BUCKET}.to."


def shared_subjects(participants: Iterable[str] = ()) -> list[str]:
    """The shared state, and the submission inboxes of the registered participants only."""
    return [f"{_STATE_PREFIX}>", *(f"{_INBOX_PREFIX}{p}.>" for p in sorted(set(participants)))]


def shared_space() -> KeySpace:
    return KeySpace(SHARED_STREAM, _STATE_PREFIX)


def shared_subject(key: str) -> str:
    return f"{_STATE_PREFIX}{key}"


def key_of_shared_subject(subject: str) -> str | None:
    """The state key of a shared-store subject, or None for an inbox subject."""
    return subject[len(_STATE_PREFIX) :] if subject.startswith(_STATE_PREFIX) else None


def transfer_key(submitter: str, transfer_id: str) -> str:
    return f"{submitter}.xfer.{transfer_id}"


def is_transfer_key(key: str) -> bool:
    return key.split(".", 2)[1] == "xfer"


def submit_subject(submitter: str, token: str) -> str:
    return f"{_INBOX_PREFIX}{submitter}.submit.{submitter}.{token}"


def submit_filter(submitter: str) -> str:
    return f"{_INBOX_PREFIX}{submitter}.submit.>"


def shared_consumer(participant: str) -> str:
    return f"shared_{participant}"


def parse_submit_subject(subject: str) -> tuple[str, str | None] | None:
    """(N, sender token) of `nb.shared.to.<N>.submit.<S>.<token>` (sender None on the old form
    `nb.shared.to.<N>.submit.<token>`), or None if the subject is not a submission."""
    parts = subject.split(".")
    if len(parts) not in (6, 7) or not subject.startswith(_INBOX_PREFIX) or parts[4] != "submit":
        return None
    return parts[3], parts[5] if len(parts) == 7 else None


def submitter_of_submit_subject(subject: str) -> str | None:
    """N of a submission subject (either form), or None if the subject is not one."""
    parsed = parse_submit_subject(subject)
    return None if parsed is None else parsed[0]


def entry_ref(submitter: str, transfer_id: str) -> str:
    """Both account entries of a transfer carry this ref; ids are unique per submitter."""
    return f"{submitter}.{transfer_id}"


class TransferDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The one record of a transfer in the shared store: final from its first write."""

    transfer: Transfer
    digest: str
    outcome: Outcome
    cause: RejectionCause | None = None
    detail: str = ""


class SharedTransferEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    state: TransferDecision
    at: int


class TransferApplied(SharedTransferEvent, tag="TransferApplied"):
    pass


class TransferRejected(SharedTransferEvent, tag="TransferRejected"):
    pass


shared_transfer_decoder = msgspec.json.Decoder(TransferApplied | TransferRejected)


def decode_shared_state(key: str, data: bytes) -> Account | TransferDecision:
    if is_transfer_key(key):
        return shared_transfer_decoder.decode(data).state
    account = account_event_decoder.decode(data).state.to_account()
    problem = snapshot_problem(account, key)
    if problem is not None:  # quarantined by the reader (decode_stored)
        raise ValueError(f"its account snapshot {problem}")
    return account


def debit(account: Account, amount: int) -> Account:
    """Take money off at once. The account rules are the independent store's: reserving then
    posting in one go refuses a closed account and an overdraft with the same causes."""
    return account.apply(EntryKind.RESERVED, amount).apply(EntryKind.DEBITED, amount)


def credit(account: Account, amount: int) -> Account:
    """Add money at once (the int64 headroom check of a pending credit, then the posting)."""
    return account.apply(EntryKind.CREDIT_PENDING, amount).apply(EntryKind.CREDITED, amount)


# In the shared store a DEBITED or CREDITED entry is a direct posting (no pending step).
POSTING_OF_ENTRY = {EntryKind.DEBITED: debit, EntryKind.CREDITED: credit}


def apply_shared_entry(account: Account, kind: EntryKind, amount: int) -> Account:
    """One entry of a shared-store account event (its service's re-fold of a snapshot)."""
    if kind is EntryKind.FUNDED:
        return account.apply(kind, amount)
    if kind in POSTING_OF_ENTRY:
        return POSTING_OF_ENTRY[kind](account, amount)
    raise ValueError(f"{kind} has no place in the shared store")
