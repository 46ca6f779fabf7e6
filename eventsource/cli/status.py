"""`natsbank status ID`: both sides' current record of one transfer, read exactly."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from eventsource.bootstrap import open_ledger
from eventsource.cli.common import console, nats_connection, print_json, run, settings
from eventsource.cli.options import (
    TransferIdArg,
    participant_option,
    seconds_option,
    store_option,
)
from eventsource.cli.projection_db import open_projection, open_projection_db
from eventsource.cli.render import describe, state_json
from eventsource.core.errors import NatsbankError, UsageError
from eventsource.core.permissions import Identity, Role
from eventsource.services.ledger import Record, TransferViews
from projections.read_your_writes import behind, wait_applied

AUDIT = Identity(Role.AUDIT)


def register(app: typer.Typer) -> None:
    app.command("status")(status)


class UnknownTransfer(NatsbankError):
    exit_code = 1


class ProjectionBehind(NatsbankError):
    exit_code = 1


def status(
    transfer_id: TransferIdArg,
    participant: str | None = participant_option("The submitter (found if omitted)."),
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
    timeout: float = seconds_option(30.0, "--timeout", "Seconds --wait-projection waits."),
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """The true current outcome, from the last event on each side's record."""
    config = settings(store=store)
    if not wait_projection and (dsn or sqlite):
        raise UsageError("--dsn and --sqlite go with --wait-projection")

    async def main():
        async with nats_connection(config, AUDIT) as nc:
            ledger = await open_ledger(nc, config.store)
            views = await ledger.views(transfer_id, participant)
        if views is None:
            raise UnknownTransfer(f"unknown transfer {transfer_id}")
        waited = None
        if wait_projection:
            records = [r for r in (views.mine, views.theirs) if r is not None]
            waited = await _wait_projection(records, dsn, sqlite, timeout)
        return views, waited

    views, waited = run(main)
    if waited is not None and waited[0]:
        raise ProjectionBehind(
            f"the projection did not catch up within {timeout:g} s: " + "; ".join(waited[0])
        )
    if as_json:
        print_json(_status_json(transfer_id, views, waited))
    else:
        _print_status(transfer_id, views, waited)


def _status_json(transfer_id: str, views: TransferViews, waited) -> dict:
    mine, theirs = views.mine, views.theirs
    if views.one_record:  # the shared store: one record, both sides' view, final at once
        return (
            {"id": transfer_id, "store": "shared"}
            | state_json(mine.state)
            | {"sequence": mine.sequence}
        )
    return {
        "id": transfer_id,
        "submitter": _record_json(mine),
        "receiver": _record_json(theirs) if theirs else None,
    } | ({"projection": {"applied": waited[1]}} if waited else {})


def _record_json(record: Record) -> dict:
    """A record's state and where it is: its live sequence, or `archived` (sequence 0)."""
    return state_json(record.state) | {
        "sequence": record.sequence,
        "archived": record.sequence == 0,
    }


def _print_status(transfer_id: str, views: TransferViews, waited) -> None:
    state = views.mine.state
    shown = state_json(state)
    console.print(
        f"{transfer_id}: {state.transfer.amount} {state.transfer.currency} "
        f"{shown['debtor']} -> {shown['creditor']}",
        highlight=False,
    )
    if views.one_record:
        console.print(
            f"  shared store: {state.outcome}"
            + (f" cause {state.cause}: {state.detail}" if state.cause else ""),
            highlight=False,
        )
        return
    theirs = views.theirs
    mine = views.mine
    console.print(f"  submitter: {describe(state)}{_archived(mine)}", highlight=False)
    received = describe(theirs.state) + _archived(theirs) if theirs else "not received yet"
    console.print(f"  receiver:  {received}", highlight=False)
    if waited is not None:
        positions = ", ".join(f"{s} at {seq}" for s, seq in sorted(waited[1].items()))
        console.print(f"  projection: has applied these records ({positions})", highlight=False)


def _archived(record: Record) -> str:
    return " (archived)" if record.sequence == 0 else ""


async def _wait_projection(
    records: list[Record],
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
    owners = [None] if sqlite is None else sorted({r.owner for r in records})
    for owner in owners:
        store, _ = open_projection_db(dsn, sqlite, owner, None)
        wanted: dict[str, int] = {}
        for record in records:
            if owner in (None, record.owner):
                wanted[record.stream] = max(record.sequence, wanted.get(record.stream, 0))
        await open_projection(store)
        try:
            got = await wait_applied(store, wanted, max(0.0, deadline - time.monotonic()))
        finally:
            await store.close()
        late += [f"{owner}: {text}" if owner else text for text in behind(wanted, got)]
        for stream, seq in got.items():
            applied[stream] = min(seq, applied.get(stream, seq))
    return late, applied
