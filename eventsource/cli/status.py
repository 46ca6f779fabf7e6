"""`natsbank status ID`: both sides' current record of one transfer, read exactly."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import typer

from eventsource.cli.common import (
    console,
    nats_connection,
    partitions_of,
    print_json,
    run,
    settings,
)
from eventsource.cli.projections import open_projection, open_store
from eventsource.cli.store import is_shared, store_option
from eventsource.core.errors import NatsbankError, UsageError
from eventsource.core.events import TransferState
from eventsource.core.model import Outcome
from eventsource.core.subjects import ledger_stream, partition_of
from eventsource.services.client import transfer_views
from eventsource.services.views import list_transfers
from projections.read_your_writes import behind, wait_applied


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def describe(state: TransferState) -> str:
    text = f"{state.outcome or 'pending'} ({state.side} phase {state.phase})"
    if state.cause:
        text += f" cause {state.cause}: {state.detail}"
    elif state.outcome is Outcome.CANCELLED:  # "gave up: DEADLINE_PASSED", or p's side of it
        text += f" {state.detail}"
    return text


def state_json(state: TransferState) -> dict:
    return {
        "outcome": state.outcome,
        "phase": state.phase,
        "side": state.side,
        "cause": state.cause,
        "detail": state.detail,
        "amount": state.transfer.amount,
        "currency": state.transfer.currency,
        "debtor": f"{state.transfer.debtor.participant}/{state.transfer.debtor.account}",
        "creditor": f"{state.transfer.creditor.participant}/{state.transfer.creditor.account}",
    } | limits_json(state)


def limits_json(state: TransferState) -> dict:
    """The give-up limits the transfer carries, when it carries any."""
    limits = {
        "deadline_ms": state.transfer.deadline_ms,
        "max_attempts": state.transfer.max_attempts,
    }
    return {name: value for name, value in limits.items() if value is not msgspec.UNSET}


class UnknownTransfer(NatsbankError):
    exit_code = 1


class ProjectionBehind(NatsbankError):
    exit_code = 1


def status(
    transfer_id: str,
    participant: str | None = typer.Option(
        None, "--participant", "-p", help="The submitter (found if omitted)."
    ),
    wait_projection: bool = typer.Option(
        False,
        "--wait-projection",
        help="Return once the projection has applied both records as read here (exit 1 if not "
        "within --timeout), so a query right after sees this outcome.",
    ),
    dsn: str | None = typer.Option(
        None, "--dsn", help="With --wait-projection: PostgreSQL URL (default as `projections`)."
    ),
    sqlite: Path | None = typer.Option(
        None, "--sqlite", help="With --wait-projection: the SQLite directory, one file a bank."
    ),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds --wait-projection waits."),
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """The true current outcome, from the last event on each side's record."""
    config = settings(store=store)
    if not wait_projection and (dsn or sqlite):
        raise UsageError("--dsn and --sqlite go with --wait-projection")
    if is_shared(config):
        _status_shared(config, transfer_id, participant, wait_projection, as_json)
        return

    async def main():
        async with nats_connection(config) as nc:
            partitions = await partitions_of(nc)
            submitter = participant
            if submitter is None:
                found = await list_transfers(nc, partitions, f"*.out.{transfer_id}")
                if not found:
                    raise UnknownTransfer(f"unknown transfer {transfer_id}")
                submitter = next(iter(found)).split(".", 1)[0]
            mine, theirs = await transfer_views(nc, partitions, submitter, transfer_id)
        waited = None
        if wait_projection and mine is not None:
            records = [(submitter, mine[1])]
            if theirs is not None:
                records.append((mine[0].transfer.creditor.participant, theirs[1]))
            waited = await _wait_projection(records, partitions, dsn, sqlite, timeout)
        return mine, theirs, waited

    mine, theirs, waited = run(main)
    if mine is None:
        raise UnknownTransfer(f"unknown transfer {transfer_id}")
    if waited is not None:
        late = waited[0]
        if late:
            raise ProjectionBehind(
                f"the projection did not catch up within {timeout:g} s: " + "; ".join(late)
            )
    if as_json:
        print_json(
            {
                "id": transfer_id,
                "submitter": state_json(mine[0]) | {"sequence": mine[1]},
                "receiver": (state_json(theirs[0]) | {"sequence": theirs[1]}) if theirs else None,
            }
            | ({"projection": {"applied": waited[1]}} if waited else {})
        )
        return
    console.print(
        f"{transfer_id}: {mine[0].transfer.amount} {mine[0].transfer.currency} "
        f"{state_json(mine[0])['debtor']} -> {state_json(mine[0])['creditor']}",
        highlight=False,
    )
    console.print(f"  submitter: {describe(mine[0])}", highlight=False)
    console.print(
        f"  receiver:  {describe(theirs[0]) if theirs else 'not received yet'}", highlight=False
    )
    if waited is not None:
        positions = ", ".join(f"{s} at {seq}" for s, seq in sorted(waited[1].items()))
        console.print(f"  projection: has applied these records ({positions})", highlight=False)


def _status_shared(config, transfer_id: str, participant, wait_projection: bool, as_json: bool):
    """The shared store keeps one record per transfer: it is both sides' view, final at once."""
    from eventsource.cli.shared_commands import status_shared

    if wait_projection:
        raise UsageError("--wait-projection: the shared store has no projection")
    found = run(lambda: status_shared(config, transfer_id, participant))
    if found is None:
        raise UnknownTransfer(f"unknown transfer {transfer_id}")
    state, sequence = found
    if as_json:
        print_json(
            {"id": transfer_id, "store": "shared"} | state_json(state) | {"sequence": sequence}
        )
        return
    console.print(
        f"{transfer_id}: {state.transfer.amount} {state.transfer.currency} "
        f"{state_json(state)['debtor']} -> {state_json(state)['creditor']}\n"
        f"  shared store: {state.outcome}"
        + (f" cause {state.cause}: {state.detail}" if state.cause else ""),
        highlight=False,
    )


async def _wait_projection(
    records: list[tuple[str, int]],
    partitions: int,
    dsn: str | None,
    sqlite: Path | None,
    timeout: float,
) -> tuple[list[str], dict[str, int]]:
    """Wait for each (owner, stream position) record: in the one PostgreSQL projection, or in
    each owner's own SQLite file (a file's position moves only with that bank's events).
    Returns what is still behind, and the lowest applied position of each stream."""
    late: list[str] = []
    applied: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    owners = [None] if sqlite is None else sorted({owner for owner, _ in records})
    for owner in owners:
        store, _ = open_store(dsn, sqlite, owner, None)
        wanted: dict[str, int] = {}
        for record_owner, seq in records:
            if owner in (None, record_owner):
                stream = ledger_stream(partition_of(record_owner, partitions))
                wanted[stream] = max(seq, wanted.get(stream, 0))
        await open_projection(store)
        try:
            got = await wait_applied(store, wanted, max(0.0, deadline - time.monotonic()))
        finally:
            await store.close()
        late += [f"{owner}: {text}" if owner else text for text in behind(wanted, got)]
        for stream, seq in got.items():
            applied[stream] = min(seq, applied.get(stream, seq))
    return late, applied
