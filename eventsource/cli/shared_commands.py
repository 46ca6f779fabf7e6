"""What `submit`, `status` and `audit` do with `--store shared`: the same output, read from
the transfer's one record in the shared store."""

from __future__ import annotations

from rich.progress import Progress
from rich.table import Table

from eventsource.adapters.shared_provision import require_shared_store
from eventsource.cli.common import console, nats_connection, print_json
from eventsource.core.errors import DomainError, IdConflict, UsageError
from eventsource.core.messages import cut_items
from eventsource.core.model import TransferRequest, as_recorded, validate_transfer
from eventsource.core.shared_store import SHARED_STREAM
from eventsource.core.trace import new_traceparent
from eventsource.services.audit_shared import SHARED_INVARIANTS, SharedAuditReport, audit_shared
from eventsource.services.client import submit
from eventsource.services.load import push
from eventsource.services.shared_client import (
    as_final_state,
    find_submitter,
    list_shared_accounts,
    read_decision,
    wait_decided,
)
from eventsource.services.workload import Bank, random_transfers
from eventsource.settings import Settings


def _digest(request: TransferRequest) -> str:
    try:
        return validate_transfer(request, request.debtor.participant).digest
    except DomainError:
        return as_recorded(request).digest


async def submit_shared(
    config: Settings, requests: list[TransferRequest], wait: bool, timeout: float
) -> tuple[list, dict, dict]:
    """(ACKs, final states by id, (stream, position) by id), as `submit` reports them."""
    submitters = sorted({r.debtor.participant for r in requests})
    async with nats_connection(config) as nc:
        await require_shared_store(nc)
        acks = []
        for submitter in submitters:
            mine = [r for r in requests if r.debtor.participant == submitter]
            for request in mine:
                found = await read_decision(nc, submitter, request.id)
                if found and found[0].digest != _digest(request):
                    raise IdConflict(
                        f"transfer {request.id}: {IdConflict.cause}: the id is already used "
                        "with other content"
                    )
            for chunk in cut_items(mine):
                acks.append(
                    await submit(
                        nc, 1, submitter, chunk, traceparent=new_traceparent(), shared=True
                    )
                )
        outcomes, positions = {}, {}
        if wait:
            for submitter in submitters:
                ids = [r.id for r in requests if r.debtor.participant == submitter]
                outcomes |= await wait_decided(nc, submitter, ids, timeout=timeout)
                for transfer_id in set(ids) & set(outcomes):
                    found = await read_decision(nc, submitter, transfer_id)
                    if found is not None:
                        positions[transfer_id] = (SHARED_STREAM, found[1])
        return acks, outcomes, positions


async def random_shared(
    config: Settings, count: int, rate: float | None, seed: int, as_json: bool
) -> None:
    async with nats_connection(config) as nc:
        await require_shared_store(nc)
        banks: dict[str, list[str]] = {}
        for snapshot in await list_shared_accounts(nc):
            if not snapshot.closed:
                banks.setdefault(snapshot.participant, []).append(snapshot.account)
        if not banks:
            raise UsageError(
                "no open accounts: open some with `natsbank accounts open --store shared`"
            )
        work = random_transfers([Bank(p, a) for p, a in sorted(banks.items())], count, seed=seed)
        with Progress(console=console, disable=as_json) as progress:
            task = progress.add_task("submitting", total=count)
            report = await push(
                nc, 1, work, rate=rate, progress=lambda n: progress.advance(task, n), shared=True
            )
    summary = {
        "submitted": report.submitted,
        "acked": report.acked,
        "messages": report.messages,
        "seconds": round(report.last_ack - report.first_ack, 3),
    }
    print_json(summary) if as_json else console.print(summary)


async def status_shared(config: Settings, transfer_id: str, participant: str | None):
    """(the record as the submitter's final state, its sequence), or None if unknown."""
    async with nats_connection(config) as nc:
        await require_shared_store(nc)
        submitter = participant or await find_submitter(nc, transfer_id)
        found = await read_decision(nc, submitter, transfer_id) if submitter else None
    return None if found is None else (as_final_state(found[0]), found[1])


async def run_shared_audit(config: Settings, expect_final: bool) -> SharedAuditReport:
    async with nats_connection(config) as nc:
        await require_shared_store(nc)
        return await audit_shared(nc, expect_final=expect_final)


def print_shared_audit(report: SharedAuditReport) -> None:
    table = Table(
        title=f"audit (shared store): {report.events} events, {report.accounts} accounts, "
        f"{report.transfers_acked} ACKed transfers"
    )
    table.add_column("invariant")
    table.add_column("result")
    for name in SHARED_INVARIANTS:
        problems = report.violations.get(name, [])
        table.add_row(
            name,
            "[green]ok[/]"
            if not problems
            else f"[red]{len(problems)} violation(s)[/]: {problems[0]}",
        )
    table.add_row("I6", "[dim]no projection of the shared store[/]")
    console.print(table)
    console.print(
        f"final {report.final}, in flight {report.in_flight}, outcomes {dict(report.outcomes)}, "
        f"funded {report.funded}, balances {report.balances}",
        highlight=False,
    )
