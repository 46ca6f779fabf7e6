"""`natsbank audit` (I1-I8; I6 needs a projection) and `replay` (I5: re-fold the events)."""

from __future__ import annotations

from pathlib import Path

import typer

from eventsource.bootstrap import projection_source
from eventsource.cli.common import console, on_ledger, print_json, settings
from eventsource.cli.options import participant_option, seconds_option, store_option
from eventsource.cli.projection_db import open_projection_db
from eventsource.cli.render import print_audit
from eventsource.core.permissions import Identity, Role
from eventsource.services.ledger import Ledger
from projections.compare import differences_once_caught_up

AUDIT = Identity(Role.AUDIT)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
    app.command("replay")(replay)


def audit(
    expect_final: bool = typer.Option(
        False, "--expect-final", help="Count transfers still in flight as violations (I4)."
    ),
    dsn: str | None = typer.Option(None, "--dsn", help="Check I6 against this PostgreSQL."),
    sqlite: Path | None = typer.Option(None, "--sqlite", help="Check I6 against SQLite files."),
    participant: str | None = participant_option("Its projection only."),
    patience: float = seconds_option(
        30.0, "--projection-wait", "Seconds to let the projector catch up (I6)."
    ),
    full: bool = typer.Option(
        False,
        "--full",
        help="Also verify every archived period again: its digests, its chain, the fold of its "
        "events (streaming, one period at a time).",
    ),
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """Check the invariants over the live ledger (from the archive's cut, with a live horizon)
    and the KV buckets, and with --dsn or --sqlite I6 against a projection. Exit 1 on a
    violation."""
    config = settings(store=store)

    async def check(ledger: Ledger):
        report = await ledger.audit(expect_final=expect_final, full=full)
        if dsn is not None or sqlite is not None:
            await _check_projection(ledger, report, dsn, sqlite, participant, patience)
        return report

    report = on_ledger(config, AUDIT, check)
    print_json(report.as_dict()) if as_json else print_audit(report)
    if not report.ok:
        raise typer.Exit(1)


async def _check_projection(ledger, report, dsn, sqlite, participant, patience) -> None:
    """I6 at quiescence: give the projector `patience` seconds to catch up, then compare."""
    db, name = open_projection_db(dsn, sqlite, participant, None)
    await db.open()
    try:
        source = projection_source(ledger, participant)
        found = await differences_once_caught_up(
            ledger.nc, source, db, patience=patience, participant=participant
        )
    finally:
        await db.close()
    report.projection = name
    report.violations["I6"].extend(found)


def replay(
    as_json: bool = typer.Option(False, "--json"), store: str | None = store_option()
) -> None:
    """Rebuild accounts and transfers from the events and compare them with the KV state."""
    config = settings(store=store)

    report = on_ledger(config, AUDIT, lambda ledger: ledger.audit(expect_final=False))
    found = report.violations.get("I5", [])
    if as_json:
        print_json({"events": report.events, "accounts": report.accounts, "differences": found})
    else:
        console.print(
            f"replayed {report.events} events into {report.accounts} accounts; "
            f"{len(found)} difference(s) from the KV state"
        )
        for line in found[:50]:
            console.print(f"  {line}", highlight=False)
    if found:
        raise typer.Exit(1)
