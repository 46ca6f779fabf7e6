"""`natsbank bench --projector`: the read side's figures, in a phase of their own.

The headline natsbank run has no projector beside it. Afterwards, on the same cluster and with
the same services, each chosen backend gets a real `natsbank projections run` process on a
fresh database, and is measured twice:

- catch-up: it starts with the whole headline ledger behind it, so how fast it applies that
  backlog is its throughput alone (events/s);
- live: another run of transfers is pushed at full speed while it follows, and its lag is
  sampled: events not yet applied (its consumers' pending and unacked counts) and seconds
  behind (the age of the oldest state event it has not acked; it acks after each commit).
  Then the time it needs to catch up after the last transfer was final.

At the end its rows must equal the state (I6) and the events it applied must equal the state
events in the ledger. Nothing here asserts a time: these are figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from benchmark.scenario import drive, run_sync, start_projector, stop_services
from benchmark.workload import Bank
from eventsource.adapters.jetstream import connect
from eventsource.adapters.postgres import EmbeddedPostgres
from eventsource.adapters.tasks import stop_task
from eventsource.core.errors import InfrastructureError
from eventsource.core.subjects import ledger_stream, state_prefix
from projections.compare import differences_once_caught_up
from projections.consumers import consumer_name
from projections.source import LedgerSource
from projections.store import ProjectionDb

SAMPLE_EVERY = 0.2
PATIENCE = 120.0  # seconds a projector may take to catch up (more for a big ledger)


class ProjectorChoice(enum.StrEnum):
    NONE = "none"
    POSTGRES = "postgres"
    SQLITE = "sqlite"
    BOTH = "both"

    @property
    def backends(self) -> list[str]:
        return {"none": [], "both": ["postgres", "sqlite"]}.get(self.value, [self.value])


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    behind: int | None  # state events not yet applied; None before every consumer exists
    seconds: float  # age of the oldest state event not yet applied, 0 when none


def measure_projectors(
    choice: ProjectorChoice,
    url: str,
    banks: list[Bank],
    partitions: int,
    *,
    transfers: int,
    seed: int,
    reject_share: float,
    workdir: Path,
    phase=lambda text: None,
) -> list[dict]:
    """One measured phase per backend of `choice`, one after the other (each alone)."""
    results = []
    for index, backend in enumerate(choice.backends):
        phase(f"projector into {backend}: catch up the ledger, then follow {transfers} transfers")
        target = workdir / f"projection-{backend}"
        with contextlib.ExitStack() as stack:
            if backend == "postgres":
                server = stack.enter_context(EmbeddedPostgres(target / "data"))
                dsn, sqlite = server.dsn, None
            else:
                dsn, sqlite = None, target
            stats_file = workdir / f"projector-{backend}-stats.json"
            procs = start_projector(
                url, dsn, workdir / "logs" / backend, sqlite=sqlite, stats=stats_file
            )
            try:
                figures = run_sync(
                    _follow(url, banks, partitions, backend, transfers, seed + 1 + index,
                            reject_share)
                )  # fmt: skip
                found = run_sync(_projection_differences(url, partitions, _store(dsn, sqlite)))
            except TimeoutError as exc:
                raise InfrastructureError(f"projector into {backend}: {exc}") from None
            finally:
                stop_services(procs)
            stats = _read_stats(stats_file)
        results.append(
            figures
            | {
                "events_applied": stats.get("applied"),
                "dead_letters": stats.get("dead_letters"),
                # transactions, and how many of those batches were fetched while the one
                # before was committing (the pipeline at work)
                "batches": stats.get("batches"),
                "batches_overlapped": stats.get("overlapped"),
                "i6_ok": not found,
                "i6_differences": found[:5],
                "command": shlex.join(procs[0].args),  # type: ignore[arg-type]
                "valid": not found
                and figures["audit_ok"]
                and stats.get("applied") == figures["ledger_state_events"],
            }
        )
    return results


async def _follow(
    url: str,
    banks: list[Bank],
    partitions: int,
    backend: str,
    transfers: int,
    seed: int,
    reject_share: float,
) -> dict:
    nc = await connect(url)
    try:
        backlog = await state_events(nc, partitions)
        samples: list[Sample] = []
        sampling = asyncio.create_task(_sample(nc, backend, partitions, samples))
        try:
            catch_up = await _until_caught_up(samples, since=0.0, events=backlog)
            live_start = time.monotonic()
            result = await drive(
                url, banks, transfers, seed=seed, reject_share=reject_share,
            )  # fmt: skip
            final_at = live_start + result.measurement.seconds
            caught_at = await _until_caught_up(samples, since=final_at, events=transfers * 5)
        finally:
            await stop_task(sampling)
        total = await state_events(nc, partitions)
    finally:
        await nc.close()
    live = [s for s in samples if live_start <= s.at <= final_at and s.behind is not None]
    return {
        "backend": backend,
        "ledger_state_events": total,
        "catch_up": _catch_up(samples, catch_up),
        "live": {
            "transfers": transfers,
            "transfers_per_s": round(result.measurement.throughput, 1),
            "events": total - backlog,
            "events_per_s": round((total - backlog) / max(caught_at - live_start, 1e-9), 1),
            "lag_events_max": max((s.behind or 0 for s in live), default=0),
            "lag_events_p99": _p99([s.behind or 0 for s in live]),
            "lag_seconds_max": round(max((s.seconds for s in live), default=0.0), 3),
            "lag_seconds_p99": round(_p99([s.seconds for s in live]), 3),
            "samples": len(live),
            "catch_up_after_final_s": round(max(0.0, caught_at - final_at), 3),
        },
        "audit_ok": result.audit.ok and not result.measurement.unfinished,
    }


async def _sample(nc: Client, name: str, partitions: int, samples: list[Sample]) -> None:
    while True:
        with contextlib.suppress(Exception):  # a slow answer only means a missing sample
            samples.append(await lag(nc, name, partitions))
        await asyncio.sleep(SAMPLE_EVERY)


async def lag(nc: Client, name: str, partitions: int) -> Sample:
    """How far projection `name` is behind the ledger, from its consumers (no database)."""
    js = nc.jetstream()
    behind, seconds = 0, 0.0
    for k in range(partitions):
        stream = ledger_stream(k)
        try:
            info = await js.consumer_info(stream, consumer_name(name, k))
        except NotFoundError:
            return Sample(time.monotonic(), None, 0.0)
        # The ack floor is as of this answer: the age of the oldest unapplied event counts to
        # here (an upper bound by the answer's transit), not to the end of the read below.
        observed = time.time()
        waiting = (info.num_pending or 0) + (info.num_ack_pending or 0)
        if not waiting and not info.delivered.stream_seq:
            # Measured on R3: a consumer just created may report 0 pending before it has
            # counted its backlog; the ledger always holds state events, so it has not started.
            return Sample(time.monotonic(), None, 0.0)
        behind += waiting
        if waiting:
            oldest = await js.get_msg(
                stream, info.ack_floor.stream_seq + 1, subject=f"{state_prefix(k)}>", next=True
            )
            if oldest.time is not None:
                seconds = max(seconds, observed - oldest.time.timestamp())
    return Sample(time.monotonic(), behind, seconds)


async def _until_caught_up(samples: list[Sample], *, since: float, events: int) -> float:
    """The time of the first sample after `since` with nothing behind."""
    limit = max(PATIENCE, events / 1000)
    deadline = time.monotonic() + limit
    seen = 0
    while time.monotonic() < deadline:
        for sample in samples[seen:]:
            if sample.at >= since and sample.behind == 0:
                return sample.at
        seen = len(samples)
        await asyncio.sleep(SAMPLE_EVERY / 2)
    raise TimeoutError(f"did not catch up within {limit:.0f} s")


def _catch_up(samples: list[Sample], caught_at: float) -> dict:
    """From the first sample where the projector is bound and has work, to caught up."""
    started = next((s for s in samples if s.behind), None)
    if started is None or started.at >= caught_at:
        return {"events": 0, "seconds": 0.0, "events_per_s": None}
    seconds = caught_at - started.at
    return {
        "events": started.behind,
        "seconds": round(seconds, 3),
        "events_per_s": round((started.behind or 0) / seconds, 1),
    }


async def state_events(nc: Client, partitions: int) -> int:
    """State events in the ledger (outbox messages aside): an ephemeral consumer counts them."""
    js = nc.jetstream()
    total = 0
    for k in range(partitions):
        config = ConsumerConfig(
            filter_subject=f"{state_prefix(k)}>",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=10.0,
        )
        info = await js.add_consumer(ledger_stream(k), config)
        total += info.num_pending or 0
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(ledger_stream(k), info.name)
    return total


def _store(dsn: str | None, sqlite: Path | None) -> ProjectionDb:
    if sqlite is not None:
        from projections.sqlite import SqliteDb

        return SqliteDb(sqlite)
    from projections.postgres import PostgresDb

    return PostgresDb(dsn)  # type: ignore[arg-type]


async def _projection_differences(
    url: str, partitions: int, store: ProjectionDb, patience: float = 30.0
) -> list[str]:
    """I6, once the projector has caught up (retried for `patience`: a straggling step)."""
    nc = await connect(url)
    await store.open()
    try:
        return await differences_once_caught_up(
            nc, LedgerSource(partitions), store, patience=patience
        )
    finally:
        await store.close()
        await nc.close()


def _read_stats(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _p99(values: list) -> float:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
