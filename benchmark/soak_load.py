"""A soak's steady load, in a process of its own: its pacing never waits for the sampler, which
reads the ledger in the bench's process, and the sampler never waits for it."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

from benchmark.load import push_steady
from benchmark.workload import Bank, random_transfers
from eventsource.adapters.jetstream import connect
from eventsource.bootstrap import open_ledger
from eventsource.core.errors import InfrastructureError
from eventsource.settings import Store

LOAD_START_TIMEOUT_S = 60.0  # for the process to import, connect and begin
LOAD_STOP_TIMEOUT_S = 10.0  # after a terminate, before a kill
LOAD_POLL_S = 0.5  # between looks at a load process that has not started yet


@dataclass(frozen=True)
class LoadPlan:
    url: str
    banks: list[Bank]
    rate: float
    seconds: float
    seed: int
    reject_share: float
    store: Store = Store.INDEPENDENT


@dataclass(frozen=True)
class LoadTotals:
    submitted: int
    acked: int
    messages: int
    seconds: float  # from its first slice to its last ACK


def _run(plan: LoadPlan, started: Event, out: Connection) -> None:
    async def main() -> LoadTotals:
        nc = await connect(plan.url, name="natsbank-soak-load")
        try:
            ledger = await open_ledger(nc, plan.store)

            def make(count: int, index: int):
                seed = plan.seed * 1_000_003 + index  # each slice its own shape
                return random_transfers(
                    plan.banks, count, seed=seed, reject_share=plan.reject_share
                )

            began = time.monotonic()
            started.set()
            report = await push_steady(ledger.submit, make, rate=plan.rate, seconds=plan.seconds)
            return LoadTotals(
                report.submitted, report.acked, report.messages, time.monotonic() - began
            )
        finally:
            await nc.close()

    try:
        out.send(asyncio.run(main()))
    except Exception as exc:  # the parent reports it in one line
        out.send(f"{type(exc).__name__}: {exc}")


class LoadProcess:
    """`start()`, `await started()`, `await finished()`; `stop()` in a `finally`."""

    def __init__(self, plan: LoadPlan) -> None:
        context = multiprocessing.get_context("spawn")  # no inherited event loop or sockets
        self._started = context.Event()
        self._receive, self._send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_run, args=(plan, self._started, self._send), name="natsbank-soak-load"
        )

    def start(self) -> None:
        self._process.start()
        self._send.close()  # so that a child that dies without answering ends `recv`

    async def started(self) -> None:
        deadline = time.monotonic() + LOAD_START_TIMEOUT_S
        while not await asyncio.to_thread(self._started.wait, LOAD_POLL_S):
            if not self._process.is_alive():
                code = self._process.exitcode
                raise InfrastructureError(f"the soak's load exited with code {code} at start")
            if time.monotonic() > deadline:
                limit = LOAD_START_TIMEOUT_S
                raise InfrastructureError(f"the soak's load did not start in {limit} s")

    async def finished(self) -> LoadTotals:
        try:
            answer = await asyncio.to_thread(self._receive.recv)
        except EOFError:
            answer = f"the load process exited with code {self._process.exitcode}"
        await asyncio.to_thread(self._process.join, LOAD_STOP_TIMEOUT_S)
        if isinstance(answer, str):
            raise InfrastructureError(f"the soak's load failed: {answer}")
        return answer

    @property
    def done(self) -> bool:
        return self._receive.poll()

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(LOAD_STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
