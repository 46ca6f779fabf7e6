"""`natsbank bench`: natsbank against PostgreSQL's own TPC-B on the same machine.

The two run one after the other, each alone on the cores: PostgreSQL is stopped before the
nats-server cluster starts. Every figure comes from the run itself (pgbench's report, the
ledger's server timestamps and stream state, the audit); nothing is assumed. With
`--store independent,shared` the shared store runs on the same workload too (benchmark/point.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import signal
from collections.abc import Iterator
from pathlib import Path

from benchmark.archiver import history_for
from benchmark.latency_curve import MAX_SWEEP_PERCENT, run_curve
from benchmark.lines import protocol_lines
from benchmark.options import (
    DEFAULT_LOSSES,
    GENEROUS_FUNDING,
    BenchOptions,
    Hooks,
    LedgerFootprint,
    Point,
)
from benchmark.pairs import pairs, run_baselines, run_other_durabilities
from benchmark.pgbench import TpcbResult
from benchmark.point import run_point
from benchmark.scale import scale_summary
from benchmark.signing_cost import signing_cost
from eventsource.adapters import nats_binary
from eventsource.core.errors import ConfigError
from eventsource.core.faults import FaultPlan
from eventsource.settings import Store, Transport

__all__ = [
    "DEFAULT_LOSSES",
    "GENEROUS_FUNDING",
    "BenchOptions",
    "Hooks",
    "LedgerFootprint",
    "check_options",
    "is_valid",
    "run_bench",
]


def check_options(options: BenchOptions) -> None:
    """Refuse a bad run before pgbench spends its seconds."""
    if not options.modes or not options.losses:
        raise ConfigError("--modes and --loss need at least one value each")
    if any(not 0 <= loss < 1 for loss in options.losses):
        raise ConfigError("loss rates must be in [0, 1)")
    FaultPlan(drop=max(options.losses), duplicate=options.duplicate, delay=options.delay)
    if options.nodes not in (1, 3):
        raise ConfigError(f"--nodes must be 1 or 3, not {options.nodes}")
    if not 1 <= options.instances <= options.processes:
        raise ConfigError("--instances (per participant) must be between 1 and --processes")
    if options.transfers < 1:
        raise ConfigError("--transfers must be at least 1")
    if not options.stores:
        raise ConfigError("--store takes independent, shared or both, comma-separated")
    if options.rate is not None and options.rate <= 0:
        raise ConfigError("--rate must be positive")
    if not options.durabilities:
        raise ConfigError("--durability takes always, default or both")
    for interval in (options.sync_interval, *(d.sync_interval for d in options.durabilities)):
        nats_binary.check_sync_interval(interval)
    _check_rate_sweep(options)
    history_for(options.horizon)


def _check_rate_sweep(options: BenchOptions) -> None:
    if not options.rate_sweep:
        return
    if options.rate is not None:
        raise ConfigError("--rate-sweep measures the peak at full speed first: drop --rate")
    if any(not 0 < p <= MAX_SWEEP_PERCENT for p in options.rate_sweep):
        raise ConfigError(f"--rate-sweep takes percents of the peak in (0, {MAX_SWEEP_PERCENT:g}]")
    if options.point_seconds <= 0:
        raise ConfigError("--point-seconds must be positive")


def run_bench(options: BenchOptions, workdir: Path, hooks: Hooks | None = None) -> dict:
    """The whole bench as a stable dict; `workdir` holds the servers' data and the logs."""
    hooks = hooks or Hooks()
    check_options(options)
    headline = options.durabilities[0]
    at_headline = dataclasses.replace(options, sync_interval=headline.sync_interval)
    first = bench_points(options)[0]
    results: dict[str, TpcbResult] = {}
    with sigterm_as_interrupt():
        if not options.skip_postgres:
            results = run_baselines(options, workdir / "pgdata", hooks)
        runs, commands = _run_sweep(at_headline, workdir, hooks)
        runs += run_other_durabilities(options, first, workdir, hooks)
        curve = (
            run_curve(at_headline, first, runs[0], workdir, hooks) if options.rate_sweep else None
        )
    nats_version = runs[0].pop("server_version")
    for run in runs[1:]:
        run.pop("server_version")
    baselines = {name: _baseline_dict(result) for name, result in results.items()}
    pg_commands = [c for pg in baselines.values() for c in (pg["init_command"], pg["command"])]
    for run in runs:
        pg = baselines.get(run["durability"])
        run["vs_postgres"] = round(run["throughput_per_s"] / pg["tps"], 4) if pg else None
    compared = pairs(options, first, runs, baselines)
    sweep = [run for run in runs if run["durability"] == headline.name]
    return {
        "durability": [d.name for d in options.durabilities],  # the first is the headline
        "pairs": compared,
        "baseline": compared[0]["postgres"],
        "runs": runs,
        "latency_curve": curve,
        "scales": scale_summary(sweep, options.rate) if options.scales else None,
        "horizon": options.horizon,
        "ratio": compared[0]["ratio"],
        "valid": all(run["valid"] for run in runs) and (curve is None or curve["valid"]),
        "commands": [*pg_commands, *commands],
        "protocol_lines": protocol_lines(),
        "signatures": signing_cost(),  # every run above signed and verified each message
        "machine": machine(results.get(headline.name), nats_version),
    }


def _run_sweep(options: BenchOptions, workdir: Path, hooks: Hooks) -> tuple[list[dict], list]:
    """Every point of the sweep at the headline durability, each on a fresh cluster."""
    runs, commands = [], []
    shown: set[Store] = set()
    for point in bench_points(options):
        with_projectors = not runs and point.transport is Transport.JETSTREAM and not point.loss
        scaled = dataclasses.replace(options, transfers=options.transfers * point.scale)
        run, used = run_point(scaled, point, workdir, hooks, with_projectors)
        run["scale"] = point.scale
        run["durability"] = options.durabilities[0].name
        runs.append(run)
        if commands and point.store not in shown:  # its services' flags differ
            commands += [c for c in used if " serve " in c]
        shown.add(point.store)
        commands = commands or used  # the other points differ only in their flags
    return runs, commands


def bench_points(options: BenchOptions) -> list[Point]:
    """The independent store: each transport at each loss rate, then at each scale; the
    shared store at each scale."""
    points: list[Point] = []
    if Store.INDEPENDENT in options.stores:
        points += [
            Point(Store.INDEPENDENT, mode, loss)
            for mode in options.modes
            for loss in options.losses
        ]
        points += [
            Point(Store.INDEPENDENT, mode, 0.0, factor)
            for factor in options.scales
            for mode in options.modes
        ]
    if Store.SHARED in options.stores:
        points += [
            Point(Store.SHARED, Transport.JETSTREAM, 0.0, factor) for factor in (1, *options.scales)
        ]
    return points


def is_valid(report: dict) -> bool:
    return report["valid"]


def _baseline_dict(result: TpcbResult) -> dict:
    return {
        "name": "PostgreSQL pgbench TPC-B",
        "tps": result.tps,
        "latency_avg_ms": result.latency_avg_ms,
        "transactions": result.transactions,
        "failed_transactions": result.failed_transactions,
        "clients": result.clients,
        "threads": result.threads,
        "seconds": result.seconds,
        "scale": result.scale,
        "pgbench_version": result.pgbench_version,
        "command": result.command,
        "init_command": result.init_command,
        "synchronous_commit": result.synchronous_commit,  # as its sessions saw it
        "fsync": result.fsync,
    }


def machine(baseline: TpcbResult | None, nats_version: str) -> dict:
    """The machine and versions a report was measured on."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "nats_server": nats_version,
        "pgbench": baseline.pgbench_version if baseline else None,
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM unwinds like Ctrl-C, so the `finally` blocks stop every server we started."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
