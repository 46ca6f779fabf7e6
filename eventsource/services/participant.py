"""One instance of a participant: its inbox consumers feed the group-commit engine. The same
class serves every store and transport; `bootstrap.py` chooses the parts.

Several instances of one participant share its durable consumers (and, in core mode, its queue
group): the server hands each fetch to one of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.subscriptions import unsubscribe_quietly
from eventsource.core.deadlines import Due
from eventsource.core.faults import FaultInjector
from eventsource.core.limits import (
    FETCH_BATCH,
    FETCH_WAIT_S,
    GROUP_FAILURE_PAUSE_S,
    REBIND_PAUSE_S,
    WINDOW_PAUSE_S,
)
from eventsource.core.messages import GiveUp, GiveUps
from eventsource.core.signing import Signer
from eventsource.services.engine import Decider, GroupCommit
from eventsource.services.metrics import NO_OBSERVER, Observer
from eventsource.services.signatures import MessageVerifier
from eventsource.services.stats import ServiceStats
from eventsource.services.stopwatch import Stage, Stopwatch
from eventsource.services.submission_gate import SubmissionGate
from eventsource.services.transport import Carrier
from eventsource.settings import Store, Transport

log = logging.getLogger("natsbank.service")


class ParticipantService:
    def __init__(
        self,
        nc: Client,
        participant: str,
        *,
        store: Store,
        transport: Transport,
        decider: Decider,
        carrier: Carrier,
        consumers: Sequence[tuple[str, str]],
        faults: FaultInjector,
        gate: SubmissionGate,
        give_ups=None,
        fetch_batch: int = FETCH_BATCH,
        observer: Observer = NO_OBSERVER,
        signer: Signer | None = None,
        verifier: MessageVerifier | None = None,
    ) -> None:
        self.nc = nc
        self.participant = participant
        self.store = store
        self.transport = transport
        self.carrier = carrier
        self.decider = decider
        self.consumers = list(consumers)  # (stream, durable) of each inbox consumer served
        self.faults = faults
        self.gate = gate  # submissions in ACK order
        self.give_ups = give_ups  # the give-up clock (GiveUpWatch), where the store has one
        self.fetch_batch = fetch_batch
        self.stats = ServiceStats()
        self.stopwatch = Stopwatch()
        self.bound: set[str] = set()  # durables this instance is bound to
        self.engine = GroupCommit(
            nc,
            participant,
            decider,
            carrier,
            stats=self.stats,
            observer=observer,
            on_committed=self._committed,
            signer=signer,
            verifier=verifier,
            stopwatch=self.stopwatch,
        )

    async def run(self, stop: asyncio.Event) -> None:
        self.engine.stop = stop
        if self.give_ups is not None:
            # Before taking new work (core mode: the ledger read that rebuilds what it awaits).
            await self.give_ups.catch_up_and_give_up(self.give_up, self.carrier.adopt)
        async with asyncio.TaskGroup() as tasks:
            for stream, durable in self.consumers:
                tasks.create_task(self._consume(stream, durable, stop))
            if self.give_ups is not None:
                tasks.create_task(self.give_ups.run(self.give_up, stop))
            tasks.create_task(self.carrier.run(self.process, self.fetch_batch, stop, self.give_up))

    async def process(self, msgs: list[Msg]) -> None:
        await self.engine.process(msgs)

    async def give_up(self, due: list[Due]) -> None:
        """Decide and commit the give-ups like an inbox message (core/saga.py `give_up`)."""
        gives = [GiveUp(d.key.rsplit(".", 1)[-1], d.reason) for d in due]
        await self.engine.commit_commands(GiveUps(give_ups=gives))

    def _committed(self, decision) -> None:
        if self.give_ups is not None:
            self.stats.given_up += self.give_ups.observe(decision)

    async def _consume(self, stream: str, durable: str, stop: asyncio.Event) -> None:
        js = self.nc.jetstream()
        sub = None
        while not stop.is_set():
            try:
                if sub is None:
                    sub = await js.pull_subscribe_bind(durable, stream=stream)
                    self.bound.add(durable)
                if not self.carrier.admits():
                    self.stats.window_full += 1
                    await asyncio.sleep(WINDOW_PAUSE_S)
                    continue
                with self.stopwatch.timing(Stage.FETCH):
                    msgs = await sub.fetch(self.fetch_batch, timeout=FETCH_WAIT_S)
            except TimeoutError:
                continue
            except Exception as exc:  # server restart, leader change: re-create the subscription
                log.warning("fetch from %s failed (%s); retrying", durable, exc)
                await unsubscribe_quietly(sub)
                sub = None
                self.bound.discard(durable)
                await asyncio.sleep(REBIND_PAUSE_S)
                continue
            self.stats.redelivered += sum(1 for m in msgs if m.metadata.num_delivered > 1)
            try:
                admitted = await self.gate.admit(await self.carrier.received(msgs))
                await self.process(admitted)
            except Exception:  # a bug must not stop the participant: unacked work comes back
                log.exception("processing a group failed; its messages will be redelivered")
                await asyncio.sleep(GROUP_FAILURE_PAUSE_S)
        await unsubscribe_quietly(sub)
        self.bound.discard(durable)

    def quarantined(self) -> set[str]:
        """Records this instance found undecodable (never decided on; see core/quarantine.py)."""
        found = self.decider.quarantined() | self.carrier.quarantined()
        if self.give_ups is not None:
            found |= self.give_ups.quarantined()
        return found

    def figures(self) -> dict:
        """This instance's counters, for `serve --stats-dir`, the metrics and the benchmark."""
        return {
            "participant": self.participant,
            "store": self.store.value,
            "transport": self.transport.value,
            **{k: v for k, v in vars(self.stats).items() if k != "started"},
            "faults": {str(k): v for k, v in self.faults.counts.items()},
            "quarantined_records": len(self.quarantined()),
            "gate_waits": self.gate.waits,
            "gate_returned": self.gate.returned,
            "time_s": self.stopwatch.figures(),
            **self.carrier.figures(),
            **self.decider.figures(),
        }
