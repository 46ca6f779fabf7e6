"""The shared store's one step, decided purely: a group of submissions in, one atomic batch out.

A transfer is OK (debit and credit in the same batch) or REJECTED with the same causes as the
independent store. A transfer id already recorded is answered from its record and never
applied again (I3); the same id with other content is an ID_CONFLICT dead letter.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from eventsource.core.account import Account, EntryKind, require_open
from eventsource.core.errors import DeadLetterReason, DomainError, RejectionCause
from eventsource.core.events import Entry, encoder
from eventsource.core.model import (
    Outcome,
    Transfer,
    TransferRequest,
    admitted,
    is_token,
)
from eventsource.core.money import format_amount
from eventsource.core.quarantine import Quarantined
from eventsource.core.shared.layout import (
    TransferApplied,
    TransferDecision,
    TransferRejected,
    credit,
    debit,
    entry_ref,
    shared_subject,
    transfer_key,
)
from eventsource.core.subjects import account_key
from eventsource.core.workset import DeadLetter, Write, account_events, id_conflict

SharedState = Account | TransferDecision


@dataclass
class SharedGroup:
    """What one instance read (key -> (state or None, sequence read at; 0 when absent)) and
    what it decided from it."""

    participant: str  # the submitter
    loaded: dict[str, tuple[SharedState | None, int]]
    known_participants: Collection[str]
    now_ms: int
    _current: dict[str, SharedState] = field(default_factory=dict)
    _records: list[tuple[str, bytes]] = field(default_factory=list)
    _entries: dict[str, list[Entry]] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    traces: dict[str, str] = field(default_factory=dict)  # none: nothing travels onwards

    def state(self, key: str) -> SharedState | None:
        if key in self._current:
            return self._current[key]
        return self.loaded.get(key, (None, 0))[0]

    @property
    def changed_states(self) -> dict[str, SharedState]:
        return dict(self._current)

    def writes(self) -> list[Write]:
        """Records first, then one event per touched account; every key guarded once."""
        states = self._records + account_events(self._entries, self._current, self.now_ms)
        return [Write(shared_subject(key), data, self._expected(key), key) for key, data in states]

    def _expected(self, key: str) -> int:
        return self.loaded.get(key, (None, 0))[1]


def decide_transfer(group: SharedGroup, request: TransferRequest) -> TransferDecision | None:
    """Apply one submitted transfer to the group; return its (possibly earlier) decision, or
    None for an id conflict."""
    n = group.participant
    transfer, refusal = admitted(request, n)
    key = transfer_key(n, transfer.id)
    stuck = [
        state
        for k in (key, *_account_keys(transfer))
        if isinstance(state := group.state(k), Quarantined)
    ]
    if stuck:
        detail = "; ".join(q.describe() for q in stuck)
        group.dead_letters.append(
            DeadLetter(DeadLetterReason.QUARANTINED, detail, encoder.encode(request))
        )
        return None
    existing = group.state(key)
    if isinstance(existing, TransferDecision):
        if existing.digest == transfer.digest:
            return existing  # a duplicate: answered from the stored decision
        group.dead_letters.append(id_conflict(transfer.id, request))
        return None
    if refusal is None:
        try:
            _post(group, transfer)
        except DomainError as exc:
            refusal = exc
    if refusal is None:
        decision = TransferDecision(transfer=transfer, digest=transfer.digest, outcome=Outcome.OK)
        event: TransferApplied | TransferRejected = TransferApplied(state=decision, at=group.now_ms)
    else:
        decision = TransferDecision(
            transfer=transfer,
            digest=transfer.digest,
            outcome=Outcome.REJECTED,
            cause=refusal.cause,
            detail=refusal.detail,
        )
        event = TransferRejected(state=decision, at=group.now_ms)
    group._records.append((key, encoder.encode(event)))
    group._current[key] = decision
    return decision


def _post(group: SharedGroup, transfer: Transfer) -> None:
    """Debit and credit together, or neither: both new states are computed before either is
    kept, so a refused credit leaves the debtor untouched."""
    receiver = transfer.creditor.participant
    if receiver not in group.known_participants:
        raise DomainError(f"unknown participant {receiver!r}", RejectionCause.UNKNOWN_PARTICIPANT)
    debtor_key = account_key(transfer.debtor.participant, transfer.debtor.account)
    creditor_key = account_key(receiver, transfer.creditor.account)
    debtor = require_open(group.state(debtor_key), transfer.currency, transfer.debtor.account)
    creditor = require_open(group.state(creditor_key), transfer.currency, transfer.creditor.account)
    amount = transfer.minor
    debited, credited = debit(debtor, amount), credit(creditor, amount)
    ref = entry_ref(transfer.debtor.participant, transfer.id)
    text = format_amount(amount, transfer.currency)
    for key, changed, kind in (
        (debtor_key, debited, EntryKind.DEBITED),
        (creditor_key, credited, EntryKind.CREDITED),
    ):
        group._current[key] = changed
        group._entries.setdefault(key, []).append(Entry(kind, ref, text))


def _account_keys(transfer: Transfer) -> list[str]:
    return [
        account_key(ref.participant, ref.account)
        for ref in (transfer.debtor, transfer.creditor)
        if is_token(ref.participant) and is_token(ref.account)
    ]


def keys_of(submitter: str, requests: list[TransferRequest]) -> tuple[set[str], set[str]]:
    """(transfer records, normally new; accounts) that deciding `requests` reads."""
    records, accounts = set(), set()
    for request in requests:
        if is_token(request.id):
            records.add(transfer_key(submitter, request.id))
        for ref in (request.debtor, request.creditor):
            if is_token(ref.participant) and is_token(ref.account):
                accounts.add(account_key(ref.participant, ref.account))
    return records, accounts
