"""Invariant I8, every movement has a cause: pure checks the fold runs on each account entry.

An account entry is justified
- FUNDED: by the operator's signature over its funding bytes (core/signing.py), or
- any other kind: by a transfer record on the right side (the submitter's `<N>.out.<ID>` for
  RESERVED, DEBITED and VOIDED; the receiver's `<P>.in.<N>.<ID>` for the credit kinds), whose
  step in the same commit had exactly that effect on exactly that account, for the same amount.

A step that moves money leaves an `Owed` movement when its event is folded; the account event of
the same atomic batch (written after the transfer events) must pay it. When nothing is owed
(the record's event lies below an archive cut, so the fold was seeded with its state) the
record's current state must be the one the entry's kind follows (`EXPECTED`).
"""

from __future__ import annotations

from dataclasses import dataclass

from eventsource.core.account import ENTRY_OF_EFFECT, EntryKind
from eventsource.core.errors import DomainError
from eventsource.core.model import Outcome, Side
from eventsource.core.protocol import Effect, Phase
from eventsource.core.signing import SignatureProblem, funding_bytes, verify
from eventsource.core.subjects import account_key, incoming_key, outgoing_key

# Entry kind -> (side, phase after the step, outcomes after it) of the record behind it.
EXPECTED: dict[EntryKind, tuple[Side, Phase, frozenset]] = {
    EntryKind.RESERVED: (Side.SUBMITTER, Phase.RESERVED, frozenset({None})),
    EntryKind.DEBITED: (Side.SUBMITTER, Phase.SETTLED, frozenset({Outcome.OK})),
    EntryKind.VOIDED: (
        Side.SUBMITTER,
        Phase.SETTLED,
        frozenset({Outcome.REJECTED, Outcome.CANCELLED}),
    ),
    EntryKind.CREDIT_PENDING: (Side.RECEIVER, Phase.DECIDED, frozenset({Outcome.OK})),
    EntryKind.CREDITED: (Side.RECEIVER, Phase.CONFIRMED, frozenset({Outcome.OK})),
    EntryKind.CREDIT_VOIDED: (Side.RECEIVER, Phase.CONFIRMED, frozenset({Outcome.CANCELLED})),
}


@dataclass(frozen=True, slots=True)
class Facts:
    """What I8 reads of a transfer record: its side, phase, outcome, and the account and amount
    its side moves."""

    side: Side
    phase: Phase
    outcome: Outcome | None
    account: str  # the side's own account key, `<P>.acct.<A>`
    currency: str
    minor: int


def owed_entry(facts: Facts, effect: Effect, record_key: str) -> tuple[str, EntryKind, str] | None:
    """(account key, entry kind, ref) that a step with `effect` must write; None for none."""
    if effect is Effect.NONE:
        return None
    transfer_id = record_key.rsplit(".", 1)[1]
    if facts.side is Side.SUBMITTER:
        return facts.account, ENTRY_OF_EFFECT[effect], transfer_id
    sender = record_key.split(".")[2]  # `<P>.in.<N>.<ID>`
    return facts.account, ENTRY_OF_EFFECT[effect], f"{sender}.{transfer_id}"


def record_key_of(account: str, kind: EntryKind, ref: str) -> str | None:
    """The record an entry on `account` (`<P>.acct.<A>`) of `kind` must come from."""
    participant = account.split(".acct.", 1)[0]
    if EXPECTED[kind][0] is Side.SUBMITTER:
        return outgoing_key(participant, ref)
    sender, _, transfer_id = ref.partition(".")
    if not transfer_id:
        return None
    return incoming_key(participant, sender, transfer_id)


def record_problem(facts: Facts | None, account: str, kind: EntryKind, ref: str, amount: int):
    """Why the record's state does not justify the entry, or None."""
    what = f"{account}: {kind} {ref}"
    if facts is None:
        return f"{what} has no transfer record behind it: money moved without a cause (I8)"
    side, phase, outcomes = EXPECTED[kind]
    if facts.side is not side or facts.account != account:
        return f"{what} is not on the account its record {side} moves (I8)"
    if facts.phase is not phase or facts.outcome not in outcomes:
        return f"{what} does not follow its record ({facts.phase}, {facts.outcome}) (I8)"
    if facts.minor != amount:
        return f"{what} moves {amount} minor units, its record {facts.minor} (I8)"
    return None


def funding_problem(
    account: str, currency: str, ref: str, amount: str, signature: str | None, operators
) -> str | None:
    """Why a FUNDED entry is not signed by an operator key, or None."""
    participant, name = account.split(".acct.", 1)
    data = funding_bytes(participant, name, currency, ref, amount)
    why = "no operator key is registered" if not operators else "no signature"
    for public_key in operators:
        try:
            verify(public_key, data, signature)
            return None
        except SignatureProblem as exc:
            why = str(exc)
    return f"{account}: FUNDED {ref} {amount} {currency} is not the operator's: {why} (I8)"


def facts_of(state) -> Facts:
    """The facts of a full TransferState (CompactFold keeps them in its marks instead)."""
    transfer = state.transfer
    own = transfer.debtor if state.side is Side.SUBMITTER else transfer.creditor
    try:
        minor = transfer.minor
    except DomainError:  # a refused transfer may carry an unparseable amount; it moves nothing
        minor = 0
    return Facts(
        side=state.side,
        phase=state.phase,
        outcome=state.outcome,
        account=account_key(own.participant, own.account),
        currency=transfer.currency,
        minor=minor,
    )
