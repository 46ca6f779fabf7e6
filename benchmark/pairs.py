"""natsbank against pgbench at equal durability: one pgbench run per durability (benchmark/
durability.py), the first point of the sweep again at each durability after the headline one,
and a pair per durability with its own ratio and the commands that reproduce it."""

from __future__ import annotations

import dataclasses
import shlex
import shutil
from pathlib import Path

from benchmark.durability import ALWAYS, DEFAULT, Durability
from benchmark.options import BenchOptions, Hooks, Point
from benchmark.pgbench import TpcbResult, run_tpcb
from benchmark.point import run_point
from eventsource.adapters.postgres import EmbeddedPostgres


def run_baselines(options: BenchOptions, data_dir: Path, hooks: Hooks) -> dict[str, TpcbResult]:
    """pgbench once per durability on one server, each on freshly created tables."""
    results = {}
    try:
        with EmbeddedPostgres(data_dir) as server:
            for durability in options.durabilities:
                hooks.phase(
                    f"PostgreSQL: pgbench TPC-B, scale {options.pg_scale}, {options.pg_clients} "
                    f"clients, {options.pg_seconds} s, {durability.postgres_fsync}"
                )
                results[durability.name] = run_tpcb(
                    server,
                    clients=options.pg_clients,
                    threads=options.pg_threads,
                    seconds=options.pg_seconds,
                    scale=options.pg_scale,
                    synchronous_commit=durability.synchronous_commit,
                )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # scale 10 is about 160 MB
    return results


def run_other_durabilities(
    options: BenchOptions, point: Point, workdir: Path, hooks: Hooks
) -> list[dict]:
    """The first point again at each durability after the headline one, on a fresh cluster."""
    runs = []
    for durability in options.durabilities[1:]:
        hooks.phase(f"natsbank at durability {durability.name}: {durability.nats_fsync}")
        again = dataclasses.replace(options, sync_interval=durability.sync_interval)
        run, _ = run_point(again, point, workdir, hooks, tag=durability.name)
        run["scale"] = point.scale
        run["durability"] = durability.name
        runs.append(run)
    return runs


def pairs(
    options: BenchOptions,
    point: Point,
    runs: list[dict],
    baselines: dict[str, dict],
) -> list[dict]:
    """One pair per durability, the headline first; each natsbank run carries its ratio."""
    found = []
    for durability in options.durabilities:
        index = next(i for i, run in enumerate(runs) if run["durability"] == durability.name)
        pg = baselines.get(durability.name)
        commands = [reproduce(options, point, durability)]
        if pg:
            commands += [pg["init_command"], pg["command"]]
        found.append(_pair(durability, runs[index], index, pg, commands))
    return found


def _pair(
    durability: Durability, run: dict, run_index: int, pg: dict | None, commands: list[str]
) -> dict:
    return {
        "durability": durability.name,
        "natsbank": {
            "name": run["name"],
            "run": run_index,  # in the report's runs
            "sync_interval": run["sync_interval"],
            "fsync": durability.nats_fsync,
            "throughput_per_s": run["throughput_per_s"],
            "p50_ms": run["p50_ms"],
            "p99_ms": run["p99_ms"],
            "valid": run["valid"],
        },
        "postgres": pg,
        "ratio": round(run["throughput_per_s"] / pg["tps"], 4) if pg else None,
        "commands": commands,
    }


def reproduce(options: BenchOptions, point: Point, durability: Durability) -> str:
    """`natsbank bench` for this pair alone: its pgbench run and its natsbank point."""
    if durability in (ALWAYS, DEFAULT):
        chosen = ["--durability", durability.name]
    else:
        chosen = ["--sync-interval", str(durability.sync_interval)]
    args = [
        "natsbank", "bench", *chosen,
        "--mode", str(point.transport), "--loss", f"{point.loss:g}", "--store", str(point.store),
        "--transfers", str(options.transfers), "--nodes", str(options.nodes),
        "--processes", str(options.processes), "--instances", str(options.instances),
        "--participants", str(options.participants), "--seed", str(options.seed),
        "--pg-seconds", str(options.pg_seconds), "--pg-scale", str(options.pg_scale),
        "--pg-clients", str(options.pg_clients),
    ]  # fmt: skip
    if options.rate:
        args += ["--rate", f"{options.rate:g}"]
    if options.skip_postgres:
        args.append("--skip-postgres")
    return shlex.join(args)
