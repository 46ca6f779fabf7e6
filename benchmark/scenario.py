"""A whole run on a local cluster, shared by `demo` and `bench`: bootstrap, open and fund
accounts, start real service processes, push a workload, wait, measure, audit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.load import push
from benchmark.measure import Measurement, settle
from benchmark.workload import Bank, random_transfers, standard_banks
from eventsource.adapters.jetstream import connect
from eventsource.adapters.topology import Topology
from eventsource.bootstrap import open_ledger
from eventsource.services.audit_report import AuditReport
from eventsource.settings import Store

WARM_UP_SEED = 7919  # the warm-up's workload differs from the measured run's


@dataclass
class ScenarioResult:
    transfers: int
    acked: int
    measurement: Measurement
    audit: AuditReport
    quiescent: bool
    wall_seconds: float
    extra: dict = field(default_factory=dict)


def start_services(
    url: str,
    participants: list[str],
    instances: int,
    log_dir: Path,
    *,
    serve_args: tuple[str, ...] = (),
) -> list[subprocess.Popen]:
    """Each instance is a real `natsbank serve` process serving every participant.
    `serve_args`: e.g. ("--mode", "core", "--faults", "drop=0.1,seed=3")."""
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(instances):
        log = open(log_dir / f"serve-{i}.log", "ab")  # noqa: SIM115 - owned by the process
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "eventsource.cli",
                    "serve",
                    *participants,
                    "--log-level",
                    "WARNING",
                    *serve_args,
                ],
                env={**os.environ, "NATS_URL": url},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        log.close()
    return procs


def start_layout(
    url: str,
    participants: list[str],
    processes: int,
    instances: int,
    log_dir: Path,
    *,
    serve_args: tuple[str, ...] = (),
) -> list[subprocess.Popen]:
    """`processes` service processes; each participant runs in `instances` of them (round
    robin). One instance per participant avoids two instances contending on its accounts."""
    if not 1 <= instances <= processes:
        raise ValueError("instances per participant must be between 1 and the process count")
    served: list[list[str]] = [[] for _ in range(processes)]
    for index, participant in enumerate(participants):
        for replica in range(instances):
            served[(index + replica) % processes].append(participant)
    procs = []
    for number, names in enumerate(served):
        if names:
            procs.extend(
                start_services(url, names, 1, log_dir / f"p{number}", serve_args=serve_args)
            )
    return procs


def start_projector(
    url: str,
    dsn: str | None,
    log_dir: Path,
    *,
    sqlite: Path | None = None,
    stats: Path | None = None,
    store: Store = Store.INDEPENDENT,
) -> list[subprocess.Popen]:
    """A real `natsbank projections run` process of `store` into PostgreSQL at `dsn` (or
    SQLite files in `sqlite`); with `stats`, it writes its counts there as JSON when it stops."""
    log_dir.mkdir(parents=True, exist_ok=True)
    target = ["--dsn", dsn] if sqlite is None else ["--sqlite", str(sqlite)]
    extra = ["--store", store.value] + ([] if stats is None else ["--stats", str(stats)])
    with open(log_dir / "projector.log", "ab") as log:
        return [
            subprocess.Popen(
                [sys.executable, "-m", "eventsource.cli", "projections", "run", *target, *extra],
                env={**os.environ, "NATS_URL": url},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ]


async def check_projection(
    url: str, partitions: int, dsn: str, patience: float = 60.0, store: Store = Store.INDEPENDENT
) -> list[str]:
    """I6: wait (up to `patience`) until the PostgreSQL projection equals `store`'s state."""
    from projections.compare import differences_once_caught_up
    from projections.postgres import PostgresDb
    from projections.shared.source import SharedSource
    from projections.source import LedgerSource

    source = SharedSource() if store is Store.SHARED else LedgerSource(partitions)
    nc = await connect(url)
    db = PostgresDb(dsn, "public")
    deadline = time.monotonic() + patience
    try:
        while True:
            try:
                await db.open()
                break
            except Exception:  # the projector may still be creating the schema
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        left = max(0.0, deadline - time.monotonic())
        return await differences_once_caught_up(nc, source, db, patience=left)
    finally:
        await db.close()
        await nc.close()


def stop_services(procs: list[subprocess.Popen], timeout: float = 10.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def bootstrap(
    url: str,
    banks: list[Bank],
    *,
    currency: str = "EUR",
    funding: str = "100000.00",
    partitions: int = 1,
    topology: Topology | None = None,
    store: Store = Store.INDEPENDENT,
) -> int:
    """Provision the store, register the banks, open and fund their accounts; returns the
    partition count. `topology` replaces the default layout (and its `partitions`)."""
    nc = await connect(url)
    try:
        topology = topology or Topology(partitions=partitions)
        ledger = await open_ledger(nc, store, provisioned=False)
        await ledger.provision(topology)
        for bank in banks:
            await ledger.register(topology, bank.participant)
            for account in bank.accounts:
                await ledger.open_account(bank.participant, account, currency, funding)
        return ledger.partitions
    finally:
        await nc.close()


async def drive(
    url: str,
    banks: list[Bank],
    count: int,
    *,
    store: Store = Store.INDEPENDENT,
    seed: int = 1,
    rate: float | None = None,
    reject_share: float = 0.05,
    progress=None,
    settle_timeout: float | None = None,
    per_message: int = 50,
    on_quiet: Callable[[], None] | None = None,
) -> ScenarioResult:
    nc = await connect(url)
    try:
        ledger = await open_ledger(nc, store)
        work = random_transfers(banks, count, seed=seed, reject_share=reject_share)
        started = time.monotonic()
        report = await push(
            ledger.submit,
            work,
            rate=rate,
            progress=progress,
            per_message=per_message,
            mint_ids=True,
        )
        ids = set(report.acked_ids)
        del work  # at 100x the workload is gigabytes the settle and the audit need room for
        measurement = await settle(
            ledger,
            [b.participant for b in banks],
            ids,
            timeout=settle_timeout or max(120.0, count / 100),
            on_quiet=on_quiet,
        )
        quiet = not measurement.unfinished
        wall = time.monotonic() - started
        checked = await ledger.audit(expect_final=True)
        return ScenarioResult(count, report.acked, measurement, checked, quiet, wall)
    finally:
        await nc.close()


async def warm_up(
    url: str,
    banks: list[Bank],
    seconds: float,
    rate: float,
    *,
    store: Store = Store.INDEPENDENT,
    seed: int = 1,
    reject_share: float = 0.05,
) -> tuple[int, int]:
    """`seconds` of the same load at `rate`, unmeasured, settled until every ACKed transfer is
    final: a run measured after it finds the servers and services at their steady state (page
    cache, heaps, state caches, the archiver's rounds). Returns how many it ACKed (they are
    history too) and how many of those did not end. No audit: the measured run's reads them."""
    nc = await connect(url)
    try:
        ledger = await open_ledger(nc, store)
        count = max(1, round(seconds * rate))
        work = random_transfers(banks, count, seed=seed + WARM_UP_SEED, reject_share=reject_share)
        report = await push(ledger.submit, work, rate=rate, mint_ids=True)
        ids = set(report.acked_ids)
        del work
        measurement = await settle(
            ledger, [b.participant for b in banks], ids, timeout=max(120.0, count / 100)
        )
        return report.acked, len(measurement.unfinished)
    finally:
        await nc.close()


def default_banks(participants: int = 4, accounts: int = 5) -> list[Bank]:
    return standard_banks(participants, accounts)


def run_sync(coro):
    return asyncio.run(coro)
