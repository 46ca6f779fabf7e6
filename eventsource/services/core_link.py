"""Core-NATS mode's transport for one participant instance: postings, results and confirms are
plain core messages in a queue group, and the endpoints replay on timers until answered.

The state is the same ledger as in JetStream mode (submissions still arrive on the JetStream
inbox, so the ACK is unchanged); only the three protocol messages change transport. What an
instance waits on lives in memory and is rebuilt from the ledger at start and by a periodic
sweep, which also adopts what a dead instance of the same participant left waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.stream_reader import read_messages
from eventsource.core.events import (
    TransferRefused,
    TransferState,
    encoder,
    transfer_event_decoder,
)
from eventsource.core.faults import Fate, FaultInjector
from eventsource.core.messages import (
    Confirms,
    InboxMessage,
    Kind,
    Posting,
    Results,
    bundle,
    items_of,
)
from eventsource.core.replay import (
    DEFAULT_REPLAY,
    ReplayPolicy,
    ReplaySchedule,
    awaited,
    refused_posting,
)
from eventsource.core.steps import receiver_must_know
from eventsource.core.subjects import (
    core_filter,
    core_queue,
    core_subject,
    incoming_key,
    is_account_key,
    key_of_subject,
    ledger_stream,
    outgoing_key,
    parse_inbox_subject,
    state_subject,
)
from eventsource.core.trace import headers_for
from eventsource.core.workset import WorkSet, Write

log = logging.getLogger("natsbank.core")
TICK = 0.1  # seconds between looks at the replay clock
REPLAY_BATCH = 5000  # items resent per tick at most; the rest wait for the next tick


@dataclass
class CoreStats:
    published: int = 0  # protocol messages handed to NATS (first sends and replays)
    replayed_items: int = 0
    replayed_messages: int = 0
    adopted: int = 0  # records found waiting by a ledger scan


class CoreLink:
    def __init__(
        self,
        nc: Client,
        participant: str,
        home: int,
        faults: FaultInjector,
        *,
        policy: ReplayPolicy = DEFAULT_REPLAY,
        sweep_interval: float = 60.0,
        registered: Callable[[set[str]], Awaitable[frozenset[str]]],
    ) -> None:
        self.nc = nc
        self.participant = participant
        self.home = home
        self.faults = faults
        self.schedule = ReplaySchedule(policy, seed=hash((faults.plan.seed, participant)))
        self.sweep_interval = sweep_interval
        self.registered = registered
        self.stats = CoreStats()
        self._held: set[asyncio.Task] = set()  # delayed sends in flight
        self.listening = asyncio.Event()  # set once the queue subscription is in place
        self._swept_to: int | None = None  # the ledger sequence the next sweep starts from

    async def run(
        self, process: Callable[[list[Msg]], Awaitable[None]], batch: int, stop: asyncio.Event
    ) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._listen(process, batch, stop))
            tasks.create_task(self._replay(stop))
            tasks.create_task(self._sweep(stop))

    async def _listen(self, process, batch: int, stop: asyncio.Event) -> None:
        queue: asyncio.Queue[Msg] = asyncio.Queue()

        async def enqueue(msg: Msg) -> None:
            queue.put_nowait(msg)

        p = self.participant
        sub = await self.nc.subscribe(
            core_filter(p), queue=core_queue(p), cb=enqueue, pending_msgs_limit=1_000_000
        )
        await self.nc.flush()
        self.listening.set()
        try:
            while not stop.is_set():
                try:
                    msgs = [await asyncio.wait_for(queue.get(), 1.0)]
                except TimeoutError:
                    continue
                while len(msgs) < batch and not queue.empty():
                    msgs.append(queue.get_nowait())
                try:
                    await process(msgs)
                except Exception:  # the peers replay what this group lost
                    log.exception("processing a core group failed; the peers will replay it")
        finally:
            await sub.unsubscribe()

    def outbox(self, writes: list[Write]) -> tuple[list[Write], list[Write]]:
        """(what the atomic batch commits, what travels as core messages after the commit)."""
        return [w for w in writes if w.key is not None], [w for w in writes if w.key is None]

    async def delivered(self, ws: WorkSet, outbox: list[Write], group: list[InboxMessage]) -> None:
        """After a commit: send the outbox, then update what this instance waits on."""
        for write in outbox:
            where = parse_inbox_subject(write.subject)
            assert where is not None
            await self._send(core_subject(where[1], Kind(where[2])), write.payload, write.headers)
        now = time.monotonic()
        for key in ws.loaded.keys() | ws.changed_states.keys():
            state = ws.state(key)
            wait = awaited(state) if isinstance(state, TransferState) else None
            if wait is not None and not is_account_key(key):
                self.schedule.expect(key, *wait, now)
        for recipient, kind, item in ws.outbound():
            if kind is Kind.POSTING and isinstance(item, Posting) and item.refused is not None:
                key = outgoing_key(self.participant, item.transfer.id)
                self.schedule.expect(key, recipient, kind, item, now)
        for message in group:
            for key in self._answered(message):
                state = ws.state(key)
                if isinstance(state, TransferState) and awaited(state) is None:
                    self.schedule.settle(key)

    def _answered(self, message: InboxMessage) -> list[str]:
        p = self.participant
        if isinstance(message, Results):
            return [outgoing_key(p, r.id) for r in message.results]
        if isinstance(message, Confirms):
            return [incoming_key(p, message.sender, c.id) for c in message.confirms]
        return []

    async def _send(self, subject: str, payload: bytes, headers: dict | None = None) -> None:
        fate, delay = self.faults.fate()
        if fate is Fate.DROP:
            return
        copies = 2 if fate is Fate.DUPLICATE else 1
        if fate is Fate.DELAY:
            task = asyncio.create_task(self._publish(subject, payload, 1, headers, after=delay))
            self._held.add(task)
            task.add_done_callback(self._held.discard)
            return
        await self._publish(subject, payload, copies, headers)

    async def _publish(
        self, subject: str, payload: bytes, copies: int, headers: dict | None, after: float = 0
    ) -> None:
        if after:
            await asyncio.sleep(after)
        try:
            for _ in range(copies):
                await self.nc.publish(subject, payload, headers=headers)
                self.stats.published += 1
        except Exception as exc:  # fire and forget: the replay clock covers a lost publish
            log.debug("publish to %s failed: %s", subject, exc)

    async def _replay(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(TICK)
            due = self.schedule.due(time.monotonic(), REPLAY_BATCH)
            if not due:
                continue
            by_peer: dict[tuple[str, Kind], list] = {}
            for entry in due:
                by_peer.setdefault((entry.peer, entry.kind), []).append(entry.item)
            self.stats.replayed_items += len(due)
            for (peer, kind), items in by_peer.items():
                for message in bundle(self.participant, kind, items):
                    self.stats.replayed_messages += 1
                    headers = headers_for(items_of(message))
                    await self._send(core_subject(peer, kind), encoder.encode(message), headers)

    async def _sweep(self, stop: asyncio.Event) -> None:
        """Adopt waiting records from the ledger: all at start (refused ones included), then
        every `sweep_interval` the recent ones (what a dead sibling instance left behind)."""
        horizon: float | None = None
        while not stop.is_set():
            try:
                self.stats.adopted += await self.adopt(horizon)
            except Exception as exc:  # the next sweep tries again
                log.warning("ledger sweep failed: %s", exc)
            horizon = 2 * self.sweep_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.sweep_interval)

    async def adopt(self, horizon: float | None) -> int:
        """Wait on every record of this participant that waits for an answer. The first call
        reads the latest event of every record; later calls read only the events since the
        previous one, so a sweep costs what the ledger gained, not its history. Refused
        transfers are adopted when younger than `horizon` seconds (all when None): nothing in
        the state says whether the receiver has heard of them."""
        p, k = self.participant, self.home
        filters = [state_subject(k, f"{p}.out.>"), state_subject(k, f"{p}.in.>")]
        if self._swept_to is None:
            reading = read_messages(self.nc, ledger_stream(k), filters, last_per_subject=True)
        else:
            reading = read_messages(self.nc, ledger_stream(k), filters, start_seq=self._swept_to)
        latest: dict[str, bytes] = {}
        async for msg in reading:
            self._swept_to = max(self._swept_to or 1, msg.metadata.sequence.stream + 1)
            if (key := key_of_subject(msg.subject)) is not None:
                latest[key] = msg.data
        now, wall_ms = time.monotonic(), time.time() * 1000
        refused: list[tuple[str, TransferState]] = []
        adopted = 0
        for key, data in latest.items():
            event = transfer_event_decoder.decode(data)
            if key in self.schedule:
                continue
            if (wait := awaited(event.state)) is not None:
                self.schedule.expect(key, *wait, now)
                adopted += 1
            elif isinstance(event, TransferRefused) and (
                horizon is None or wall_ms - event.at < horizon * 1000
            ):
                refused.append((key, event.state))
        receivers = {s.transfer.creditor.participant for _, s in refused}
        known = await self.registered(receivers) if receivers else frozenset()
        for key, state in refused:
            receiver = state.transfer.creditor.participant
            if receiver_must_know(state.transfer, p, known):
                self.schedule.expect(key, receiver, Kind.POSTING, refused_posting(state), now)
                adopted += 1
        return adopted
