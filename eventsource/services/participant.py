"""One instance of a participant: fetch a group of inbox messages, decide them, commit one
atomic batch, then ack. Several instances share the same durable consumers.

In JetStream mode the outbox is part of the batch. In core mode (`CoreLink`) the batch holds the
state only, and postings, results and confirms go out as core messages after the commit."""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.dead_letters import dead_letter
from eventsource.adapters.jetstream import CommitUnknown, StaleState, commit
from eventsource.adapters.ledger_state import LedgerState
from eventsource.core.deadlines import Due
from eventsource.core.dispatch import check_message, split_message
from eventsource.core.errors import InfrastructureError, ProtocolError
from eventsource.core.faults import NO_FAULTS, Fate, FaultInjector, FaultPlan
from eventsource.core.messages import (
    KIND_OF,
    GiveUp,
    GiveUps,
    InboxMessage,
    inbox_decoder,
    items_of,
)
from eventsource.core.replay import DEFAULT_REPLAY, ReplayPolicy
from eventsource.core.subjects import (
    inbox_consumer,
    ledger_stream,
    parse_core_subject,
    parse_inbox_subject,
    partition_of,
)
from eventsource.services.core_link import CoreLink
from eventsource.services.give_up import GiveUpWatch
from eventsource.services.groups import Entry, decide_group
from eventsource.services.metrics import NO_OBSERVER, Observer
from eventsource.services.service_stats import ServiceStats, service_figures

__all__ = ["ParticipantService", "service_figures"]  # service_figures: for serve and bench

log = logging.getLogger("natsbank.service")
MAX_ITEMS_PER_GROUP = 300
MAX_WRITES = 1000
KEEP_ALIVE = 0.8  # seconds between in-progress acks while a commit is retried (< any ack wait)
# Core mode's flow control: no new submissions while this many records wait for an answer (the
# inbox keeps them). JetStream mode's counterpart is the consumers' max_ack_pending (20,000).
CORE_WINDOW = 20_000


class ParticipantService:
    def __init__(
        self,
        nc: Client,
        participant: str,
        partitions: int,
        *,
        fetch_batch: int = 256,
        core: bool = False,
        faults: FaultPlan = NO_FAULTS,
        replay: ReplayPolicy = DEFAULT_REPLAY,
        sweep_interval: float = 60.0,
        instance: str = "",
        observer: Observer = NO_OBSERVER,
        window: int = CORE_WINDOW,
    ):
        self.nc = nc
        self.participant = participant
        self.partitions = partitions
        self.home = partition_of(participant, partitions)
        self.state = LedgerState(nc, self.home)
        self.fetch_batch = fetch_batch
        self.window = window
        self.stats = ServiceStats()
        self.observer = observer
        self.bound: set[int] = set()  # partitions whose inbox consumer this instance is bound to
        self.faults = FaultInjector(faults, salt=f"{instance}:{participant}")
        self.give_ups = GiveUpWatch(
            nc, participant, self.home, replay, core=core, sweep_interval=sweep_interval
        )
        self.core = (
            CoreLink(
                nc,
                participant,
                self.home,
                self.faults,
                policy=replay,
                sweep_interval=sweep_interval,
                registered=self.state.known_participants,
                on_record=self.give_ups.observe_event,
            )
            if core
            else None
        )
        self._stop = asyncio.Event()
        # One group at a time per instance: its loops (a partition's consumer, core messages)
        # would otherwise race each other on the same accounts and refuse each other's batches.
        self._turn = asyncio.Lock()

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        # Before taking new work (core mode: the ledger read that rebuilds what it waits on).
        adopt = self.core.adopt if self.core is not None else None
        await self.give_ups.catch_up_and_give_up(self.give_up, adopt)
        async with asyncio.TaskGroup() as tasks:
            for k in range(self.partitions):
                tasks.create_task(self._consume(k, stop))
            tasks.create_task(self.give_ups.run(self.give_up, stop))
            if self.core is not None:
                tasks.create_task(self.core.run(self.process, self.fetch_batch, stop, self.give_up))

    async def give_up(self, due: list[Due]) -> None:
        """Decide and commit the give-ups like an inbox message (core/saga.py `give_up`)."""
        command = GiveUps(give_ups=[GiveUp(d.key.rsplit(".", 1)[-1], d.reason) for d in due])
        async with self._turn:
            await self._commit_entries(
                [Entry(None, piece, True) for piece in split_message(command)]
            )

    async def _consume(self, partition: int, stop: asyncio.Event) -> None:
        js = self.nc.jetstream()
        durable = inbox_consumer(self.participant, partition)
        sub = None
        while not stop.is_set():
            try:
                if sub is None:
                    sub = await js.pull_subscribe_bind(durable, stream=ledger_stream(partition))
                    self.bound.add(partition)
                if self._window_full():
                    await asyncio.sleep(0.05)
                    continue
                msgs = await sub.fetch(self.fetch_batch, timeout=1.0)
            except TimeoutError:
                continue
            except Exception as exc:  # server restart, leader change: re-create the subscription
                log.warning("fetch from %s failed (%s); retrying", durable, exc)
                sub = await _drop(sub)
                self.bound.discard(partition)
                await asyncio.sleep(0.5)
                continue
            try:
                await self.process(await self._inject(msgs))
            except Exception:  # a bug must not stop the participant: unacked work comes back
                log.exception("processing a group failed; its messages will be redelivered")
                await asyncio.sleep(1.0)
        await _drop(sub)
        self.bound.discard(partition)

    def _window_full(self) -> bool:
        """Core mode admits no submission while `window` records wait for an answer: without
        it, 2,000,000 at once left 1.4M waiting and the replay clocks resent 15.5M items in
        6.5 minutes, crowding out the answers (docs/FINDINGS.md, core mode at 100x)."""
        if self.core is None or len(self.core.schedule) < self.window:
            return False
        self.stats.window_full += 1
        return True

    async def _inject(self, msgs: list[Msg]) -> list[Msg]:
        """JetStream mode's transport faults, on received protocol messages (never submissions):
        a dropped delivery is left unacked, so the server redelivers it after the ack wait."""
        self.stats.redelivered += sum(1 for m in msgs if m.metadata.num_delivered > 1)
        if self.core is not None or not self.faults.plan.active:
            return msgs
        kept: list[Msg] = []
        for msg in msgs:
            where = parse_inbox_subject(msg.subject)
            if where is None or where[2] == "submit":
                kept.append(msg)
                continue
            fate, delay = self.faults.fate()
            if fate is Fate.DELAY:
                await _quietly(msg.nak(delay=delay))
            elif fate is not Fate.DROP:
                kept.extend([msg] * (2 if fate is Fate.DUPLICATE else 1))
        return kept

    async def process(self, msgs: list[Msg]) -> None:
        async with self._turn:
            await self._process(msgs)

    async def _process(self, msgs: list[Msg]) -> None:
        decoded: list[Entry] = []
        for msg in msgs:
            try:
                message = self._decode(msg)
            except (msgspec.DecodeError, ProtocolError) as exc:
                await self._poison(
                    msg,
                    "UNDECODABLE" if isinstance(exc, msgspec.DecodeError) else "PROTOCOL_VIOLATION",
                    str(exc),
                )
                continue
            pieces = split_message(message)
            decoded.extend(
                Entry(msg, piece, i == len(pieces) - 1) for i, piece in enumerate(pieces)
            )
        await self._commit_entries(decoded)

    async def _commit_entries(self, decoded: list[Entry]) -> None:
        group: list[Entry] = []
        size = 0
        for entry in decoded:
            items = len(items_of(entry.message))
            if group and size + items > MAX_ITEMS_PER_GROUP:
                await self._commit_group(group)
                group, size = [], 0
            group.append(entry)
            size += items
        if group:
            await self._commit_group(group)

    def _decode(self, msg: Msg) -> InboxMessage:
        inbox = parse_inbox_subject(msg.subject)
        where = inbox[1:] if inbox is not None else parse_core_subject(msg.subject)
        if where is None or where[0] != self.participant:
            raise ProtocolError(f"subject {msg.subject} is not this participant's inbox")
        message = inbox_decoder.decode(msg.data)
        if KIND_OF[type(message)].value != where[1]:
            raise ProtocolError(f"a {KIND_OF[type(message)]} message on a {where[1]} subject")
        check_message(message, self.participant)
        return message

    async def _poison(self, msg: Msg, reason: str, detail: str) -> None:
        self.stats.dead_letters += 1
        self.observer.poisoned(self.participant, reason)
        log.warning(
            "dead letter %s on %s: %s", reason, msg.subject, detail, extra={"reason": reason}
        )
        await dead_letter(self.nc, self.participant, msg, reason, detail)
        await _quietly(msg.term())  # a core message has nothing to terminate

    async def _commit_group(self, group: list[Entry]) -> None:
        # How much to distrust what we hold after a refused batch: 1 = re-read the accounts
        # (the usual cause: another instance of this participant moved them), 2 = everything.
        distrust = 0
        sources: list[Msg | None] = []
        outbox: list = []
        kept_alive = time.monotonic()
        for attempt in range(1, 1_000_000):
            try:
                ws = await decide_group(
                    self.state, self.participant, self.home, group, sources, distrust=distrust
                )
                if ws.dead_letters and distrust < 2:
                    # "Unknown transfer" may only mean a lagging replica answered the read: a
                    # message is dead-lettered only on what the stream leader says.
                    distrust = 2
                    continue
                writes = ws.writes()
                if self.core is not None:
                    writes, outbox = self.core.outbox(writes)
                if len(writes) > MAX_WRITES and len(group) > 1:
                    half = len(group) // 2
                    await self._commit_group(group[:half])
                    await self._commit_group(group[half:])
                    return
                if writes:
                    last = await commit(self.nc, writes)
                    first = last - len(writes) + 1
                    seqs = {w.key: first + i for i, w in enumerate(writes) if w.key is not None}
                    self.state.remember(ws.changed_states, seqs)
                    self.stats.outbox_messages += sum(1 for w in writes if w.key is None)
                for letter, source in zip(ws.dead_letters, sources, strict=True):
                    self.stats.dead_letters += 1
                    if source is None:  # a give-up of a record the leader does not know
                        log.warning("give-up refused: %s", letter.detail)
                        continue
                    await dead_letter(
                        self.nc,
                        self.participant,
                        source,
                        letter.reason,
                        letter.detail,
                        payload=letter.payload,
                    )
                self.stats.given_up += self.give_ups.observe(ws)
                if self.core is not None:
                    await self.core.delivered(ws, outbox, [e.message for e in group])
                self.observer.committed(self.participant, group, ws)
                break
            except StaleState:
                self.stats.conflicts += 1
                distrust += 1
            except (CommitUnknown, InfrastructureError, OSError) as exc:
                if self._stop.is_set():
                    return  # unacked: JetStream hands the group to another instance
                self.stats.retries += 1
                distrust = 2
                log.warning("commit attempt %d failed: %s", attempt, exc)
                await asyncio.sleep(min(2.0, 0.1 * attempt))
                if time.monotonic() - kept_alive > KEEP_ALIVE:
                    # Still ours: stop JetStream from handing it to another instance meanwhile.
                    kept_alive = time.monotonic()
                    for entry in group:
                        if entry.msg is not None:
                            await _quietly(entry.msg.in_progress())
        for entry in group:
            if entry.last_piece and entry.msg is not None:  # earlier pieces are committed by now
                await _quietly(entry.msg.ack())
        self.stats.groups += 1
        self.stats.messages += len(group)


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception as exc:  # a lost ack only means a harmless redelivery
        log.debug("ack failed: %s", exc)


async def _drop(sub) -> None:
    if sub is not None:
        await _quietly(sub.unsubscribe())
    return None
