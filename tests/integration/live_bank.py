"""A bank on a real cluster: streams provisioned, participants registered, accounts funded,
and participant services running in the test's event loop, in either transport mode and
optionally under a fault plan (`live_bank(..., faults=...)`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from nats.aio.client import Client

from benchmark.measure import wait_quiescent
from benchmark.scenario import bootstrap
from benchmark.workload import Bank
from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.jetstream import connect
from eventsource.adapters.registry import layout_of
from eventsource.adapters.topology import Topology
from eventsource.bootstrap import ServeOptions, participant_service
from eventsource.core.faults import NO_FAULTS, FaultPlan
from eventsource.core.history import KEEP_EVERYTHING, History
from eventsource.core.limits import CORE_WINDOW, FETCH_BATCH, SWEEP_INTERVAL_S
from eventsource.core.model import AccountRef, TransferRequest
from eventsource.core.resend import ResendPolicy
from eventsource.services.audit import AuditReport, audit
from eventsource.services.client import Submitted, submit, wait_final
from eventsource.services.independent.ledger import IndependentLedger
from eventsource.services.participant import ParticipantService
from eventsource.settings import Transport

BANKS = [Bank("alpha", ["a1", "a2"]), Bank("beta", ["b1", "b2"]), Bank("gamma", ["g1"])]
MODES = ["jetstream", "core"]


@dataclass
class LiveBank:
    """Handles for a test: the connection, running service instances, and shortcuts."""

    cluster: ClusterInfo
    nc: Client
    partitions: int
    mode: str = "jetstream"
    faults: FaultPlan = NO_FAULTS
    resend_after: float = 1.0
    history: History = KEEP_EVERYTHING  # the live horizon the topology declared
    accepts_old_subjects: bool = True  # inbox.old_subjects, as streams init recorded it
    services: list[tuple[ParticipantService, asyncio.Task]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def participants(self) -> list[str]:
        return [b.participant for b in BANKS]

    @property
    def ledger(self) -> IndependentLedger:
        return IndependentLedger(
            self.nc, self.partitions, self.history, accepts_old_subjects=self.accepts_old_subjects
        )

    def service(
        self,
        participant: str,
        *,
        fetch_batch: int = FETCH_BATCH,
        sweep_interval: float = SWEEP_INTERVAL_S,
        window: int = CORE_WINDOW,
    ) -> ParticipantService:
        """An instance of `participant` in this bank's transport mode, not started."""
        options = ServeOptions(
            transport=Transport(self.mode),
            fetch_batch=fetch_batch,
            faults=self.faults,
            resend=ResendPolicy(first=self.resend_after),
            sweep_interval=sweep_interval,
            window=window,
            instance=str(len(self.services)),
        )
        return participant_service(self.ledger, participant, options)

    def start(self, participant: str, **options) -> ParticipantService:
        """Start an instance in the test's event loop (options as `service`)."""
        service = self.service(participant, **options)
        self.services.append((service, asyncio.create_task(service.run(self.stop))))
        return service

    def start_all(self, instances: int = 1) -> None:
        for _ in range(instances):
            for participant in self.participants:
                self.start(participant)

    async def submit(self, *requests: TransferRequest) -> Submitted:
        return await submit(
            self.nc, self.partitions, requests[0].debtor.participant, list(requests)
        )

    async def wait(self, submitter: str, ids: list[str], timeout: float = 60.0):
        return await wait_final(
            self.nc,
            self.partitions,
            submitter,
            ids,
            timeout=timeout,
            archives=self.ledger.archive_of,
        )

    async def quiet(self, timeout: float = 60.0) -> None:
        consumers = [c for p in self.participants for c in self.ledger.consumers(p)]
        assert await wait_quiescent(self.nc, consumers, timeout=timeout, settle=0.2), (
            "inboxes never drained"
        )

    async def audit(self, patience: float = 60.0) -> AuditReport:
        """The audit once the work has settled: inboxes drained and, in core mode (where
        confirmations travel outside the ledger), until the audit passes or time runs out."""
        await self.quiet()
        deadline = asyncio.get_running_loop().time() + patience
        while True:
            report = await audit(self.nc, self.partitions, expect_final=True, history=self.history)
            if report.ok or self.mode != "core" or asyncio.get_running_loop().time() > deadline:
                return report
            await asyncio.sleep(0.5)


def transfer(
    tid: str, debtor: str, creditor: str, amount: str = "10.00", currency: str = "EUR", **extra
) -> TransferRequest:
    d_participant, d_account = debtor.split("/")
    c_participant, c_account = creditor.split("/")
    return TransferRequest(
        id=tid,
        debtor=AccountRef(d_participant, d_account),
        creditor=AccountRef(c_participant, c_account),
        amount=amount,
        currency=currency,
        **extra,
    )


@contextlib.asynccontextmanager
async def live_bank(
    cluster: ClusterInfo,
    funding: str = "1000.00",
    *,
    mode: str = "jetstream",
    faults: FaultPlan = NO_FAULTS,
    topology: Topology | None = None,
) -> AsyncIterator[LiveBank]:
    partitions = await bootstrap(cluster.url, BANKS, funding=funding, topology=topology)
    nc = await connect(cluster.url)
    history = topology.history.to_history() if topology is not None else KEEP_EVERYTHING
    bank = LiveBank(cluster, nc, partitions, mode=mode, faults=faults, history=history)
    bank.accepts_old_subjects = (await layout_of(nc)).accepts_old_subjects
    await bank.ledger.open_account("gamma", "usd", "USD", "50.00")
    try:
        yield bank
    finally:
        bank.stop.set()
        for _, task in bank.services:  # the test is over: no need to wait out a fetch
            task.cancel()
        if bank.services:
            await asyncio.wait([task for _, task in bank.services], timeout=10)
        await nc.close()
