"""`natsbank bench`: PostgreSQL's pgbench TPC-B, then natsbank, on this machine; one table."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import typer
from rich.progress import Progress

from benchmark.bench import (
    BenchOptions,
    Hooks,
    check_options,
    is_valid,
    run_bench,
)
from benchmark.projection import ProjectorChoice
from benchmark.soak import DEFAULT_HORIZON, SoakOptions, check_soak, run_soak
from eventsource.cli import bench_flags as flags
from eventsource.cli.bench_curve import write_curve_chart
from eventsource.cli.bench_report import print_report, write_chart
from eventsource.cli.common import console, err_console, print_json
from eventsource.cli.soak_report import print_soak_report, write_soak_chart
from eventsource.settings import Transport


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    modes: list[Transport] = flags.MODES,
    losses: str = flags.LOSSES,
    duplicate: float = flags.DUPLICATE,
    delay: float = flags.DELAY,
    max_delay: float = flags.MAX_DELAY,
    resend_after: float = flags.RESEND_AFTER,
    kill_service_every: float | None = flags.KILL_SERVICE_EVERY,
    kill_node_at: float | None = flags.KILL_NODE_AT,
    node_down: float = flags.NODE_DOWN,
    receiver_down: float | None = flags.RECEIVER_DOWN,
    scales: str = flags.SCALES,
    settle_timeout: float | None = flags.SETTLE_TIMEOUT,
    chart: Path | None = flags.CHART,
    transfers: int = flags.TRANSFERS,
    participants: int = flags.PARTICIPANTS,
    processes: int = flags.PROCESSES,
    instances: int = flags.INSTANCES,
    nodes: int = flags.NODES,
    rate: float | None = flags.RATE,
    warmup: str = flags.WARMUP,
    sync_interval: str | None = flags.SYNC_INTERVAL,
    durability: str | None = flags.DURABILITY,
    rate_sweep: str = flags.RATE_SWEEP,
    point_seconds: float = flags.POINT_SECONDS,
    pg_seconds: int = flags.PG_SECONDS,
    pg_scale: int = flags.PG_SCALE,
    pg_clients: int = flags.PG_CLIENTS,
    skip_postgres: bool = flags.SKIP_POSTGRES,
    projector: ProjectorChoice = flags.PROJECTOR,
    seed: int = flags.SEED,
    stores: str = flags.STORES,
    soak: str | None = flags.SOAK,
    horizon: str | None = flags.HORIZON,
    sample_every: str = flags.SAMPLE_EVERY,
    as_json: bool = flags.AS_JSON,
    remote_bank: str = flags.REMOTE_BANK,
    remote_delay: str = flags.REMOTE_DELAY,
    remote_loss: float = flags.REMOTE_LOSS,
    remote_duplicate: float = flags.REMOTE_DUPLICATE,
    remote_reject: float = flags.REMOTE_REJECT,
    remote_timeout: float = flags.REMOTE_TIMEOUT,
    remote_decide_after: float = flags.REMOTE_DECIDE_AFTER,
) -> None:
    """Measure natsbank's modes under message loss against PostgreSQL pgbench TPC-B, and audit.

    Every run (a mode at a loss rate) gets a fresh cluster; pgbench runs first, alone."""
    params = dict(locals())  # every flag by name, before any other local exists
    options = flags.bench_options(params)
    if soak is not None:
        _soak(_soak_options(options, params), _soak_chart(chart), as_json)
        return
    check_options(options)
    workdir = Path(tempfile.mkdtemp(prefix="natsbank-bench-"))
    valid = False
    try:
        with Progress(console=console, disable=as_json, transient=True) as progress:
            report = run_bench(options, workdir, _hooks(progress, transfers, quiet=as_json))
        report["commands"].insert(0, shlex.join(["natsbank", *sys.argv[1:]]))
        valid = is_valid(report)
    finally:
        logs = workdir / "logs"
        if valid or not logs.exists():
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            err_console.print(f"service logs kept in {logs}", highlight=False)
    _charts(report, chart)
    if as_json:
        print_json(report)
    else:
        print_report(report)
    if not valid:
        raise typer.Exit(1)


def _charts(report: dict, chart: Path | None) -> None:
    """The loss sweep's PNG (with 2+ runs at the headline durability) at `chart`, and the
    latency curve's beside it."""
    if chart is None:
        return
    headline = report["durability"][0]
    if sum(run["durability"] == headline for run in report["runs"]) > 1:
        report["chart"] = str(write_chart(report, chart))
    if report["latency_curve"]:
        curve = chart.with_name(f"{chart.stem}-latency.png")
        report["latency_curve"]["chart"] = str(write_curve_chart(report, curve))


def _soak_options(options: BenchOptions, params: dict) -> SoakOptions:
    return SoakOptions(
        duration=params["soak"],
        rate=params["rate"],
        horizon=params["horizon"] or DEFAULT_HORIZON,
        sample_every=params["sample_every"],
        bench=options,
    )


def _soak_chart(chart: Path | None) -> Path | None:
    return flags.SOAK_CHART if chart == flags.BENCH_CHART else chart


def _soak(options: SoakOptions, chart: Path | None, as_json: bool) -> None:
    """The soak: its progress one line per sample (on stderr with --json), the report as JSON
    beside the chart, and exit 1 unless every transfer ended and both audits were clean."""
    check_soak(options)
    shown = err_console if as_json else console
    workdir = Path(tempfile.mkdtemp(prefix="natsbank-soak-"))
    valid = False
    try:
        report = run_soak(options, workdir, Hooks(phase=lambda t: shown.print(t, highlight=False)))
        report["commands"].insert(0, shlex.join(["natsbank", *sys.argv[1:]]))
        valid = report["valid"]
    finally:
        logs = workdir / "logs"
        if valid or not logs.exists():
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            err_console.print(f"service logs kept in {logs}", highlight=False)
    if chart is not None:
        report["chart"] = str(write_soak_chart(report, chart))
        report["json"] = str(chart.with_suffix(".json"))
        Path(report["json"]).write_text(json.dumps(report, indent=1) + "\n")
    if as_json:
        print_json(report)
    else:
        print_soak_report(report)
    if not valid:
        raise typer.Exit(1)


def _hooks(progress: Progress, total: int, *, quiet: bool) -> Hooks:
    task = None

    def acked(count: int) -> None:
        nonlocal task
        if task is None:
            task = progress.add_task("transfers ACKed", total=total)
        progress.advance(task, count)

    def phase(text: str) -> None:
        nonlocal task
        if task is not None:  # a new run: a new bar
            progress.remove_task(task)
            task = None
        if not quiet:
            progress.console.print(text, highlight=False)

    return Hooks(phase=phase, acked=acked)
