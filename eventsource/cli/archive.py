"""`natsbank archive run|status`: move what is older than the live horizon into the archive,
and say where each ledger stream's archive stands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

import typer

from eventsource.adapters.log_format import configure_logging
from eventsource.adapters.registry import layout_of
from eventsource.cli.common import (
    console,
    nats_connection,
    on_nats,
    print_json,
    run,
    settings,
    stop_on_signals,
)
from eventsource.core.errors import ConfigError, UsageError
from eventsource.core.limits import (
    ARCHIVE_EVERY_S,
    ARCHIVE_LEASE_MAX_S,
    ARCHIVE_LEASE_MIN_S,
    ARCHIVE_LEASE_S,
    ARCHIVE_PACE_SHARE,
)
from eventsource.core.permissions import Identity, Role
from eventsource.services.archive_rounds import run_archiver
from eventsource.services.archive_status import archive_status
from eventsource.services.archiver import CRASH_POINTS, RunReport

log = logging.getLogger("natsbank.archiver")
app = typer.Typer(
    help="The archive: older final transfers leave the live ledger (streams.yaml history).",
    no_args_is_help=True,
)


ARCHIVER = Identity(Role.ARCHIVER)
AUDIT = Identity(Role.AUDIT)


@app.command("run")
def run_(
    every: float = typer.Option(
        ARCHIVE_EVERY_S,
        "--every",
        help="Seconds between the starts of two rounds (a round "
        "archives every ledger stream as far as what is old enough when it starts).",
    ),
    pace: float | None = typer.Option(
        None,
        "--pace",
        help="Spread a round's work over this share of --every (read at the rate its backlog "
        "asks for, in small runs; faster as the backlog grows, full speed once overdue). "
        f"0: each round at full speed. [default: {ARCHIVE_PACE_SHARE:g}; 0 with --once]",
        show_default=False,
    ),
    once: bool = typer.Option(
        False, "--once", help="One round (at full speed unless --pace is given), then exit."
    ),
    lease: float = typer.Option(
        ARCHIVE_LEASE_S,
        "--lease",
        help="Seconds an archiver's lease on a stream lasts unless renewed: another archiver "
        "takes over a dead one's streams after this long.",
    ),
    crash_at: str | None = typer.Option(None, "--crash-at", hidden=True),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Archive every ledger stream whose lease this process gets (one archiver per stream at a
    time: start as many as you like). Runs until SIGINT or SIGTERM, or with --once until done."""
    if not 0 < every < math.inf or not ARCHIVE_LEASE_MIN_S <= lease <= ARCHIVE_LEASE_MAX_S:
        raise UsageError(
            f"--every must be a number of seconds above 0, --lease between "
            f"{ARCHIVE_LEASE_MIN_S:g} and {ARCHIVE_LEASE_MAX_S:g} seconds"
        )
    if pace is None:
        pace = 0.0 if once else ARCHIVE_PACE_SHARE
    if not 0 <= pace <= 1:  # NaN too
        raise UsageError("--pace must be between 0 (no pacing) and 1 (the whole of --every)")
    if crash_at is not None and crash_at not in CRASH_POINTS:
        raise UsageError(f"--crash-at must be one of {', '.join(CRASH_POINTS)}")
    configure_logging(log_level, "text")
    config = settings()

    async def main() -> None:
        async with nats_connection(config, ARCHIVER) as nc:
            stop = stop_on_signals()
            layout = await _wait_for_horizon(nc, stop, every, once=once)
            if layout is None:
                return
            await run_archiver(
                nc,
                layout.partitions,
                layout.history,
                stop,
                every=every,
                once=once,
                pace=pace,
                lease_s=lease,
                crash_at=crash_at,
                on_run=_say,
            )

    run(main)


async def _wait_for_horizon(nc, stop, every: float, *, once: bool):
    """The recorded layout once it has a live horizon; None if stopped first. A long-running
    archiver (the dev cluster's) starts before `streams init` and waits for it."""
    while not stop.is_set():
        try:
            layout = await layout_of(nc)
            if layout.history.bounded:
                return layout
            problem = "history.horizon is forever (streams.yaml): there is nothing to archive"
        except ConfigError as exc:
            problem = str(exc)
        if once:
            raise ConfigError(problem)
        log.info("%s; looking again in %g s", problem, every)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    return None


def _say(report: RunReport) -> None:
    if report.period is not None:
        console.print(report.describe(), highlight=False)


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Per ledger stream: the archive's head, the live part, and who holds purging back."""
    rows = on_nats(settings(), AUDIT, archive_status)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        console.print(row.describe(), highlight=False)
