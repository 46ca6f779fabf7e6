"""What a `natsbank bench` run is asked to do, and how it reports as it goes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmark.durability import ALWAYS, DEFAULT, Durability
from benchmark.faults import NO_PROCESS_FAULTS, ProcessFaults
from benchmark.projection import ProjectorChoice
from eventsource.core.remote import NO_REMOTE, RemotePlan
from eventsource.settings import Store, Transport

# Far above what a few hundred thousand transfers of at most 100.99 can move out of an account,
# yet below the 999,999,999.00 that the workload asks for when it wants INSUFFICIENT_FUNDS.
GENEROUS_FUNDING = "10000000.00"


DEFAULT_LOSSES = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3)


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    modes: tuple[Transport, ...] = (Transport.JETSTREAM, Transport.CORE)
    losses: tuple[float, ...] = DEFAULT_LOSSES  # share of protocol messages dropped, per point
    duplicate: float = 0.0  # and duplicated / delayed, at every point
    delay: float = 0.0
    max_delay: float = 0.5
    resend_after: float = 2.0  # core resend clock = JetStream ack wait, doubling to 30 s
    scales: tuple[int, ...] = ()  # then each mode at 0% loss with transfers x factor
    # A transfer not final by then counts as lost; None: 900 s, or 1 s per 100 transfers.
    settle_timeout: float | None = None
    process_faults: ProcessFaults = NO_PROCESS_FAULTS
    transfers: int = 20000
    participants: int = 4
    accounts: int = 5
    processes: int = 2
    instances: int = 1  # instances per participant, spread over the processes
    nodes: int = 3
    rate: float | None = None
    # Seconds of the same load at `rate` before each run's measured transfers, unmeasured: the
    # run is measured at the servers' steady state; its transfers are history too.
    warmup_s: float = 0.0
    # The run's points use each durability's interval; this one only the soak's (None: 2 min).
    sync_interval: str | None = None
    # Each against pgbench at the same durability; the first is the headline, and the sweep
    # (modes, losses, scales, stores) runs at it; the others run the first point again.
    durabilities: tuple[Durability, ...] = (ALWAYS, DEFAULT)
    # Percents of the first point's peak, offered one after the other at the headline durability.
    rate_sweep: tuple[float, ...] = ()
    point_seconds: float = 20.0  # how long each offered rate lasts
    reject_share: float = 0.02
    seed: int = 1
    pg_seconds: int = 15
    pg_scale: int = 10
    pg_clients: int = 8
    pg_threads: int = 2
    skip_postgres: bool = False
    projector: ProjectorChoice = ProjectorChoice.NONE  # measured after the headline run
    stores: tuple[Store, ...] = (Store.INDEPENDENT,)  # and/or shared: once per scale, 0% loss
    horizon: str = "forever"  # streams.yaml's live horizon; finite: an archiver runs beside
    # Every receiver a proxy to a simulated remote bank (core/remote.py); off by default.
    remote: RemotePlan = NO_REMOTE


@dataclass(frozen=True)
class Point:
    """One measured configuration. The shared store sends no protocol messages: its points
    run over JetStream (its submissions' inbox) at 0% loss."""

    store: Store
    transport: Transport
    loss: float
    scale: int = 1

    @property
    def label(self) -> str:
        return "shared store" if self.store is Store.SHARED else str(self.transport)


@dataclass
class Hooks:
    """How the run reports while it goes: a phase line, and transfers ACKed so far."""

    phase: Callable[[str], None] = lambda text: None
    acked: Callable[[int], None] | None = None


@dataclass(frozen=True)
class LedgerFootprint:
    replicas: int
    messages: int
    bytes: int
    subjects: int  # live distinct subjects (the servers' in-memory index)
    server_version: str
