"""A bank's client flow, for any store: refuse what is known bad, submit (the PubAck is the
ACK), optionally wait for the outcomes and where they sit in the ledger, and say for each
submitted line what happened to it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from eventsource.core.errors import DomainError, IdConflict, ProtocolError, UsageError
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


class Verdict(enum.StrEnum):
    """What happened to one submitted line, as far as the client knows."""

    ACKED = "ACKED"  # stored in the inbox; no outcome was waited for
    OK = "OK"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    ID_CONFLICT = "ID_CONFLICT"  # the ledger holds the id with other content: never applied
    NO_OUTCOME = "NO_OUTCOME"  # waited, and no final outcome in time


@dataclass(frozen=True)
class LineResult:
    """One line of a submission: its ACK, and with --wait the record the ledger holds for its id."""

    request: TransferRequest
    ack: Submitted
    verdict: Verdict
    state: TransferState | None = None  # the ledger's record of the id (another content's too)
    position: tuple[str, int] | None = None  # where the final outcome sits (stream, sequence)
    repeats: int | None = None  # index of an earlier line with this very transfer


def digest_of(request: TransferRequest) -> str:
    """The digest the service will record: of the validated transfer, or of the refused one."""
    try:
        return validate_transfer(request, request.debtor.participant).digest
    except DomainError:
        return as_recorded(request).digest


def precheck(request: TransferRequest, where: str = "") -> None:
    """Refuse what can be known bad before publishing: a rule with its cause (DomainError), an
    id that cannot be a key at all (UsageError). `where` says which line, when there are lines."""
    at = f"{where}: " if where else ""
    try:
        validate_transfer(request, request.debtor.participant)
    except DomainError as exc:
        raise DomainError(f"{at}transfer {request.id}: {exc.cause}: {exc}", exc.cause) from None
    except ProtocolError as exc:
        raise UsageError(f"{at}{exc}") from None


def repeated_lines(requests: list[TransferRequest], where: list[str]) -> list[int | None]:
    """For each request, the index of an earlier one with the same id, or None. The same id with
    the same content is one transfer; with other content, the later line is refused before
    anything is published (IdConflict naming both lines), as the ledger would refuse it."""
    first: dict[str, int] = {}
    repeats: list[int | None] = []
    for index, request in enumerate(requests):
        earlier = first.setdefault(request.id, index)
        if earlier == index:
            repeats.append(None)
            continue
        if digest_of(request) != digest_of(requests[earlier]):
            raise IdConflict(
                f"{where[index]}: transfer {request.id}: {IdConflict.cause}: {where[earlier]} "
                "uses this id with other content; nothing was submitted"
            )
        repeats.append(earlier)
    return repeats


async def submit_transfers(
    ledger: Ledger, requests: list[TransferRequest], *, wait: bool, timeout: float
) -> SubmitReport:
    """One submission per submitter and chunk (one trace each); with `wait`, the outcomes.
    Requests must have distinct ids (`repeated_lines`). An id the ledger already holds with
    other content refuses the whole submission before anything is published."""
    report = SubmitReport()
    submitters = sorted({r.debtor.participant for r in requests})
    for submitter in submitters:
        await _refuse_conflicts(ledger, submitter, _of(requests, submitter))
    for submitter in submitters:
        for chunk in cut_items(_of(requests, submitter)):
            report.acks.append(await ledger.submit(submitter, chunk, new_traceparent()))
    if not wait:
        return report
    for submitter in submitters:
        ids = [r.id for r in _of(requests, submitter)]
        report.outcomes |= await ledger.wait_final(submitter, ids, timeout)
    for request in requests:  # read-your-writes: `projections wait --position` waits for it
        if request.id in report.outcomes:
            record = await ledger.record(request.debtor.participant, request.id)
            if record is not None:
                report.positions[request.id] = (record.stream, record.sequence)
    return report


def line_results(
    requests: list[TransferRequest], repeats: list[int | None], report: SubmitReport, wait: bool
) -> list[LineResult]:
    """What happened to each line, the same for every output mode."""
    ack_of = {i: ack for ack in report.acks for i in ack.ids}
    results = []
    for request, repeat in zip(requests, repeats, strict=True):
        state = report.outcomes.get(request.id)
        if not wait:
            verdict = Verdict.ACKED
        elif state is None or state.outcome is None:
            verdict = Verdict.NO_OUTCOME
        elif state.digest != digest_of(request):  # another content got the id first (a race)
            verdict = Verdict.ID_CONFLICT
        else:
            verdict = Verdict(state.outcome)
        position = report.positions.get(request.id) if verdict is not Verdict.ID_CONFLICT else None
        results.append(LineResult(request, ack_of[request.id], verdict, state, position, repeat))
    return results


def _of(requests: list[TransferRequest], submitter: str) -> list[TransferRequest]:
    return [r for r in requests if r.debtor.participant == submitter]


async def _refuse_conflicts(
    ledger: Ledger, submitter: str, requests: list[TransferRequest]
) -> None:
    for request in requests:
        found = await ledger.record(submitter, request.id)
        if found and found.state.digest != digest_of(request):
            raise IdConflict(
                f"transfer {request.id}: {IdConflict.cause}: the id is already used with other "
                "content; nothing was submitted"
            )
