"""A bank's client flow, for any store: refuse what is known bad, submit (the PubAck is the
ACK), and optionally wait for the outcomes and where they sit in the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field

from eventsource.core.errors import DomainError, IdConflict
from eventsource.core.events import TransferState
from eventsource.core.messages import cut_items
from eventsource.core.model import TransferRequest, as_recorded, validate_transfer
from eventsource.core.trace import new_traceparent
from eventsource.services.client import Submitted
from eventsource.services.ledger import Ledger


@dataclass
class SubmitReport:
    acks: list[Submitted] = field(default_factory=list)
    outcomes: dict[str, TransferState] = field(default_factory=dict)  # id -> final state
    positions: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (stream, seq)


def digest_of(request: TransferRequest) -> str:
    """The digest the service will record: of the validated transfer, or of the refused one."""
    try:
        return validate_transfer(request, request.debtor.participant).digest
    except DomainError:
        return as_recorded(request).digest


def precheck(request: TransferRequest) -> None:
    """Refuse what can be known bad before publishing, with its cause."""
    try:
        validate_transfer(request, request.debtor.participant)
    except DomainError as exc:
        raise DomainError(f"transfer {request.id}: {exc.cause}: {exc}", exc.cause) from None


async def submit_transfers(
    ledger: Ledger, requests: list[TransferRequest], *, wait: bool, timeout: float
) -> SubmitReport:
    """One submission per submitter and chunk (one trace each); with `wait`, the outcomes."""
    report = SubmitReport()
    submitters = sorted({r.debtor.participant for r in requests})
    for submitter in submitters:
        mine = [r for r in requests if r.debtor.participant == submitter]
        await _refuse_conflicts(ledger, submitter, mine)
        for chunk in cut_items(mine):
            report.acks.append(await ledger.submit(submitter, chunk, new_traceparent()))
    if not wait:
        return report
    for submitter in submitters:
        ids = [r.id for r in requests if r.debtor.participant == submitter]
        report.outcomes |= await ledger.wait_final(submitter, ids, timeout)
    for request in requests:  # read-your-writes: `projections wait --position` waits for it
        if request.id in report.outcomes:
            record = await ledger.record(request.debtor.participant, request.id)
            if record is not None:
                report.positions[request.id] = (record.stream, record.sequence)
    return report


async def _refuse_conflicts(
    ledger: Ledger, submitter: str, requests: list[TransferRequest]
) -> None:
    for request in requests:
        found = await ledger.record(submitter, request.id)
        if found and found.state.digest != digest_of(request):
            raise IdConflict(
                f"transfer {request.id}: {IdConflict.cause}: the id is already used with other "
                "content"
            )
