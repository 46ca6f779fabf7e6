"""`natsbank audit` (I1-I7; I6 needs a projection) and `replay` (I5: re-fold the events)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import typer
from rich.table import Table

from eventsource.cli.common import (
    console,
    nats_connection,
    partitions_of,
    print_json,
    run,
    settings,
)
from eventsource.cli.store import is_shared, store_option
from eventsource.core.errors import UsageError
from eventsource.services.audit import INVARIANTS
from eventsource.services.audit import audit as run_audit


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
    app.command("replay")(replay)


def audit(
    expect_final: bool = typer.Option(
        False, "--expect-final", help="Count transfers still in flight as violations (I4)."
    ),
    dsn: str | None = typer.Option(None, "--dsn", help="Check I6 against this PostgreSQL."),
    sqlite: Path | None = typer.Option(None, "--sqlite", help="Check I6 against SQLite files."),
    participant: str | None = typer.Option(None, "--participant", help="Its projection only."),
    patience: float = typer.Option(
        30.0, "--projection-wait", help="Seconds to let the projector catch up (I6)."
    ),
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """Check the invariants over the whole ledger and the KV buckets, and with --dsn or
    --sqlite I6 against a projection. Exit 1 on a violation."""
    config = settings(store=store)
    if is_shared(config):
        _audit_shared(config, expect_final, dsn or sqlite, as_json)
        return

    async def main():
        async with nats_connection(config) as nc:
            partitions = await partitions_of(nc)
            report = await run_audit(nc, partitions, expect_final=expect_final)
            if dsn is not None or sqlite is not None:
                await _check_projection(nc, partitions, report, dsn, sqlite, participant, patience)
            return report

    report = run(main)
    if as_json:
        print_json(report.as_dict())
    else:
        _print(report)
    if not report.ok:
        raise typer.Exit(1)


async def _check_projection(nc, partitions, report, dsn, sqlite, participant, patience) -> None:
    """I6 at quiescence: give the projector `patience` seconds to catch up, then compare."""
    from eventsource.cli.projections import open_store
    from projections.compare import differences, expected_rows

    store, name = open_store(dsn, sqlite, participant, None)
    await store.open()
    try:
        deadline = time.monotonic() + patience
        while True:
            found = differences(
                await expected_rows(nc, partitions), await store.state(), participant
            )
            if not found or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        await store.close()
    report.projection = name
    report.violations["I6"].extend(found)


def replay(as_json: bool = typer.Option(False, "--json")) -> None:
    """Rebuild accounts and transfers from the events and compare them with the KV state."""
    config = settings()

    async def main():
        async with nats_connection(config) as nc:
            return await run_audit(nc, await partitions_of(nc), expect_final=False)

    report = run(main)
    differences = report.violations.get("I5", [])
    if as_json:
        print_json(
            {"events": report.events, "accounts": report.accounts, "differences": differences}
        )
    else:
        console.print(
            f"replayed {report.events} events into {report.accounts} accounts; "
            f"{len(differences)} difference(s) from the KV state"
        )
        for line in differences[:50]:
            console.print(f"  {line}", highlight=False)
    if differences:
        raise typer.Exit(1)


def _audit_shared(config, expect_final: bool, projection, as_json: bool) -> None:
    from eventsource.cli.shared_commands import print_shared_audit, run_shared_audit

    if projection:
        raise UsageError("--dsn/--sqlite: the shared store has no projection (I6)")
    report = run(lambda: run_shared_audit(config, expect_final))
    print_json(report.as_dict()) if as_json else print_shared_audit(report)
    if not report.ok:
        raise typer.Exit(1)


def _print(report) -> None:
    table = Table(
        title=f"audit: {report.events} events, {report.accounts} accounts, "
        f"{report.transfers_acked} ACKed transfers"
    )
    table.add_column("invariant")
    table.add_column("result")
    for name in INVARIANTS:
        problems = report.violations.get(name, [])
        if name == "I6" and report.projection is None:
            table.add_row(name, "[dim]not checked (give --dsn or --sqlite)[/]")
            continue
        table.add_row(
            name,
            "[green]ok[/]"
            if not problems
            else f"[red]{len(problems)} violation(s)[/]: {problems[0]}",
        )
    console.print(table)
    console.print(
        f"final {report.final}, in flight {report.in_flight}, "
        f"outcomes {dict(report.outcomes)}, funded {report.funded}, "
        f"balances {report.balances}",
        highlight=False,
    )
