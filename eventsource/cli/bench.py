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
    DEFAULT_LOSSES,
    BenchOptions,
    Hooks,
    check_options,
    is_valid,
    run_bench,
)
from benchmark.faults import ProcessFaults
from benchmark.projection import ProjectorChoice
from benchmark.soak import DEFAULT_HORIZON, DEFAULT_SAMPLE_EVERY, SoakOptions, check_soak, run_soak
from eventsource.cli import edge
from eventsource.cli.bench_report import (
    parse_losses,
    parse_scales,
    parse_stores,
    print_report,
    write_chart,
)
from eventsource.cli.common import console, err_console, print_json
from eventsource.cli.soak_report import print_soak_report, write_soak_chart
from eventsource.settings import Transport

_BENCH_CHART = Path("natsbank-bench.png")
_SOAK_CHART = Path("natsbank-soak.png")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    modes: list[Transport] = typer.Option(
        [Transport.JETSTREAM, Transport.CORE],
        "--mode",
        help="Transport mode(s); repeat for several.",
    ),
    losses: str = typer.Option(
        ",".join(f"{x:g}" for x in DEFAULT_LOSSES),
        "--loss",
        help="Comma-separated shares of protocol messages dropped; one run per mode and rate.",
    ),
    duplicate: float = typer.Option(0.0, "--duplicate", help="Share duplicated, every run."),
    delay: float = typer.Option(0.0, "--delay", help="Share delayed up to --max-delay s."),
    max_delay: float = typer.Option(0.5, "--max-delay"),
    resend_after: float = typer.Option(
        2.0,
        "--resend-after",
        help="Seconds before a resend: core mode's resend clock and JetStream's ack wait.",
    ),
    kill_service_every: float | None = typer.Option(
        None, "--kill-service-every", help="kill -9 a random service process every ~S seconds."
    ),
    kill_node_at: float | None = typer.Option(
        None, "--kill-node-at", help="kill -9 a random nats-server node S seconds in."
    ),
    node_down: float = typer.Option(5.0, "--node-down", help="Seconds before it restarts."),
    receiver_down: float | None = typer.Option(
        None, "--receiver-down", help="The last participant starts S seconds late."
    ),
    scales: str = typer.Option(
        "",
        "--scale",
        help="Comma-separated factors, e.g. 10,100: each mode again at 0% loss with "
        "--transfers x factor, to see whether throughput and memory stay flat; with --rate "
        "offered at that same rate (N x lasts N times longer), else all at once.",
    ),
    settle_timeout: float | None = typer.Option(
        None,
        "--settle-timeout",
        help="Seconds to wait for the last transfer; then it is lost. "
        "Default: 900, or 1 per 100 transfers if more.",
    ),
    chart: Path | None = typer.Option(
        _BENCH_CHART,
        "--chart",
        help="PNG of the sweep (with 2+ runs); with --soak, of the "
        f"samples over time ({_SOAK_CHART}), and its report as JSON beside it.",
    ),
    transfers: int = typer.Option(20000, "--transfers", "-n", min=1, help="Transfers per run."),
    participants: int = typer.Option(4, "--participants", min=2, max=26),
    processes: int = typer.Option(2, "--processes", min=1, max=8, help="Service processes."),
    instances: int = typer.Option(
        1,
        "--instances",
        min=1,
        max=8,
        help="Instances of each participant, spread over the processes (2+: they share work).",
    ),
    nodes: int = typer.Option(3, "--nodes", help="1 or 3 nats-server nodes."),
    rate: float | None = typer.Option(
        None,
        "--rate",
        help="Target transfers/s; full speed if not given.",
        callback=edge.checked(edge.rate, "--rate"),
    ),
    sync_interval: str | None = typer.Option(
        None, "--sync-interval", help="nats-server fsync interval, e.g. 'always'; default 2m."
    ),
    pg_seconds: int = typer.Option(15, "--pg-seconds", min=1, help="pgbench -T."),
    pg_scale: int = typer.Option(10, "--pg-scale", min=1, help="pgbench -i -s."),
    pg_clients: int = typer.Option(8, "--pg-clients", min=1, help="pgbench -c."),
    skip_postgres: bool = typer.Option(
        False, "--skip-postgres", help="No baseline (quick runs); the ratio is then null."
    ),
    projector: ProjectorChoice = typer.Option(
        ProjectorChoice.NONE,
        "--projector",
        help="After the headline run (measured without it): a projector into this database, "
        "catching up the ledger, then following as many transfers again at full speed.",
    ),
    seed: int = typer.Option(1, "--seed", help="Shape of the random workload."),
    stores: str = typer.Option(
        "independent",
        "--store",
        help="Comma-separated: independent (each mode at each loss rate) and/or shared (all "
        "accounts in one stream, one atomic step per transfer; once per scale, at 0% loss).",
    ),
    soak: str | None = typer.Option(
        None,
        "--soak",
        help="Instead of the sweep: offer --rate transfers/s for this long (30m, 90s) on one "
        "cluster, sample every --sample-every, and judge whether each series stays flat.",
    ),
    horizon: str | None = typer.Option(
        None,
        "--horizon",
        help="streams.yaml's history.horizon (period half of it); finite starts one "
        f"`natsbank archive run` beside each run; 'forever' keeps everything live. Default: "
        f"{DEFAULT_HORIZON} with --soak, else forever.",
    ),
    sample_every: str = typer.Option(
        DEFAULT_SAMPLE_EVERY, "--sample-every", help="With --soak: the sample interval."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Measure natsbank's modes under message loss against PostgreSQL pgbench TPC-B, and audit.

    Every run (a mode at a loss rate) gets a fresh cluster; pgbench runs first, alone."""
    options = BenchOptions(
        modes=tuple(dict.fromkeys(modes)),
        losses=parse_losses(losses),
        duplicate=duplicate,
        delay=delay,
        max_delay=max_delay,
        resend_after=resend_after,
        scales=parse_scales(scales),
        settle_timeout=settle_timeout,
        process_faults=ProcessFaults(
            kill_service_every=kill_service_every,
            kill_node_at=kill_node_at,
            node_down=node_down,
            receiver_down=receiver_down,
        ),
        transfers=transfers,
        participants=participants,
        instances=instances,
        processes=processes,
        nodes=nodes,
        rate=rate,
        sync_interval=sync_interval,
        seed=seed,
        pg_seconds=pg_seconds,
        pg_scale=pg_scale,
        pg_clients=pg_clients,
        pg_threads=min(2, pg_clients),  # pgbench refuses more threads than clients
        skip_postgres=skip_postgres,
        projector=projector,
        stores=parse_stores(stores),
        horizon=horizon or "forever",
    )
    if soak is not None:
        soaking = SoakOptions(
            duration=soak,
            rate=rate,
            horizon=horizon or DEFAULT_HORIZON,
            sample_every=sample_every,
            bench=options,
        )
        _soak(soaking, _SOAK_CHART if chart == _BENCH_CHART else chart, as_json)
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
    if chart is not None and len(report["runs"]) > 1:
        report["chart"] = str(write_chart(report, chart))
    if as_json:
        print_json(report)
    else:
        print_report(report)
    if not valid:
        raise typer.Exit(1)


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
