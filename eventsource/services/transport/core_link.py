"""Core-NATS mode's transport for one participant instance: postings, results and confirms are
plain core messages in a queue group, and the endpoints resend on timers until answered.

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

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.core.deadlines import Due
from eventsource.core.events import (
    AnyTransferEvent,
    TransferCancelled,
    TransferRefused,
    TransferState,
    encoder,
)
from eventsource.core.faults import FaultInjector
from eventsource.core.limits import (
    CORE_UNCONFIRMED_PER_PEER,
    CORE_WINDOW,
    RESEND_ITEMS_PER_TICK,
    RESEND_TICK_S,
    SWEEP_INTERVAL_S,
)
from eventsource.core.messages import (
    Confirms,
    GiveUps,
    InboxMessage,
    Kind,
    Posting,
    Results,
    bundle,
    items_of,
)
from eventsource.core.protocol import Phase
from eventsource.core.resend import (
    DEFAULT_RESEND,
    Awaited,
    ResendPolicy,
    ResendSchedule,
    answers,
    awaited,
    refused_posting,
)
from eventsource.core.saga import GiveUpReason
from eventsource.core.signing import Signer
from eventsource.core.steps import receiver_must_know
from eventsource.core.subjects import (
    core_subject,
    incoming_key,
    is_account_key,
    outgoing_key,
    parse_inbox_subject,
)
from eventsource.core.trace import headers_for
from eventsource.core.workset import WorkSet, Write
from eventsource.services.independent.record_sweep import RecordSweep
from eventsource.services.transport.core_bound import SenderBound
from eventsource.services.transport.core_inbox import CoreInbox
from eventsource.services.transport.core_sender import CoreSender

log = logging.getLogger("natsbank.core")


@dataclass
class CoreStats:
    resent_items: int = 0
    resent_messages: int = 0
    adopted: int = 0  # records found waiting by a ledger scan
    attempts_exhausted: int = 0  # postings not resent because their attempts ran out


class CoreLink:
    counts_sends = True  # "N attempts" is N sends of the posting, counted by the resend clock

    def __init__(
        self,
        nc: Client,
        participant: str,
        home: int,
        faults: FaultInjector,
        *,
        policy: ResendPolicy = DEFAULT_RESEND,
        sweep_interval: float = SWEEP_INTERVAL_S,
        window: int = CORE_WINDOW,
        unconfirmed_per_peer: int = CORE_UNCONFIRMED_PER_PEER,
        registered: Callable[[set[str]], Awaitable[frozenset[str]]],
        on_record: Callable[[str, AnyTransferEvent], None] = lambda key, event: None,
    ) -> None:
        self.nc = nc
        self.participant = participant
        self.home = home
        self.faults = faults
        self.schedule = ResendSchedule(policy, seed=hash((faults.plan.seed, participant)))
        self.sweep_interval = sweep_interval
        self.window = window
        self.bound = SenderBound(unconfirmed_per_peer)
        self.registered = registered
        self.stats = CoreStats()
        self.sender = CoreSender(nc, faults)
        self.inbox = CoreInbox(nc, participant)
        self.listening = self.inbox.listening  # set once the queue subscription is in place
        self.records = RecordSweep(nc, participant, home, incoming=True)
        self.on_record = on_record  # every record a sweep reads (the give-up clock's deadlines)
        self._initial_sweep_due = True  # until the first adopt(): the service may do it at start
        self.signer: Signer | None = None  # signs what the resend clock sends (bootstrap.py)

    async def run(
        self,
        process: Callable[[list[Msg]], Awaitable[None]],
        batch: int,
        stop: asyncio.Event,
        give_up: Callable[[list[Due]], Awaitable[None]],
    ) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._listen(process, batch, stop))
            tasks.create_task(self._resend(stop, give_up))
            tasks.create_task(self._sweep(stop))

    async def _listen(self, process, batch: int, stop: asyncio.Event) -> None:
        await self.inbox.open()
        try:
            while not stop.is_set():
                msgs = await self.inbox.next_batch(batch)
                if not msgs:
                    continue
                try:
                    await process(msgs)
                except Exception:  # the peers resend what this group lost
                    log.exception("processing a core group failed; the peers will resend it")
        finally:
            await self.inbox.close()

    def admits(self) -> bool:
        """No submission is taken while `window` of this participant's own transfers wait for
        the receiver's answer: without it, 2,000,000 at once left 1.4M waiting and the resend
        clocks resent 15.5M items in 6.5 minutes, crowding out the answers (docs/FINDINGS.md,
        core mode at 100x). Incoming records waiting for a peer's confirm are not counted: a
        peer that never confirms would otherwise stop this bank's own clients (issue 13); they
        have their own bound per peer (`within_bounds`)."""
        return self.schedule.outgoing() < self.window

    def within_bounds(
        self, received: list[tuple[Msg, InboxMessage]]
    ) -> list[tuple[Msg, InboxMessage]]:
        """Core postings cut to what their sender's bound leaves room for (core_bound.py)."""
        return self.bound.cut(received, self.schedule)

    async def received(self, msgs: list[Msg]) -> list[Msg]:
        return msgs  # faults apply where core messages are sent

    def split(self, writes: list[Write]) -> tuple[list[Write], list[Write]]:
        """(what the atomic batch commits, what travels as core messages after the commit)."""
        return [w for w in writes if w.key is not None], [w for w in writes if w.key is None]

    def quarantined(self) -> set[str]:
        return self.records.quarantined

    def figures(self) -> dict:
        return vars(self.stats) | {
            "published": self.sender.published,
            "shed": self.inbox.shed,
            "shed_unconfirmed": self.bound.shed,
            "waiting": len(self.schedule),
            "waiting_outgoing": self.schedule.outgoing(),
        }

    async def delivered(
        self, ws: WorkSet, after: list[Write], group: list[InboxMessage | GiveUps]
    ) -> None:
        """After a commit: send the outbox, then update what this instance waits on."""
        for write in after:
            where = parse_inbox_subject(write.subject)
            assert where is not None
            subject = core_subject(where.recipient, Kind(where.kind), self.participant)
            await self.sender.send(subject, write.payload, write.headers)
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
        p = self.participant
        for message in group:
            if isinstance(message, Results):
                for r in message.results:
                    if answers(ws.state(key := outgoing_key(p, r.id)), r):
                        self.schedule.settle(key)
            elif isinstance(message, Confirms):
                for c in message.confirms:
                    if answers(ws.state(key := incoming_key(p, message.sender, c.id)), None):
                        self.schedule.settle(key)

    async def _resend(
        self, stop: asyncio.Event, give_up: Callable[[list[Due]], Awaitable[None]]
    ) -> None:
        while not stop.is_set():
            await asyncio.sleep(RESEND_TICK_S)
            due = self.schedule.due(time.monotonic(), RESEND_ITEMS_PER_TICK)
            exhausted = [entry for entry in due if _attempts_exhausted(entry)]
            if exhausted:
                # Still waited on: the give-up's commit replaces the posting with the CANCEL,
                # and if it fails the next turn of the clock tries again.
                self.stats.attempts_exhausted += len(exhausted)
                try:
                    await give_up([Due(e.key, GiveUpReason.ATTEMPTS_EXHAUSTED) for e in exhausted])
                except Exception as exc:
                    log.warning("giving up failed: %s", exc)
                due = [entry for entry in due if not _attempts_exhausted(entry)]
            if not due:
                continue
            by_peer: dict[tuple[str, Kind], list] = {}
            for entry in due:
                by_peer.setdefault((entry.peer, entry.kind), []).append(entry.item)
            self.stats.resent_items += len(due)
            for (peer, kind), items in by_peer.items():
                for message in bundle(self.participant, kind, items):
                    self.stats.resent_messages += 1
                    headers = headers_for(items_of(message))
                    payload = encoder.encode(message)
                    if self.signer is not None:
                        me = self.participant
                        signature = self.signer.message_headers(me, peer, kind.value, payload)
                        headers = {**(headers or {}), **signature}
                    subject = core_subject(peer, kind, self.participant)
                    await self.sender.send(subject, payload, headers)

    async def _sweep(self, stop: asyncio.Event) -> None:
        """Adopt waiting records from the ledger: all at start (refused and cancelled ones
        included) unless the service did already, then every `sweep_interval` the recent ones
        (what a dead sibling instance left behind)."""
        horizon = None if self._initial_sweep_due else 2 * self.sweep_interval
        while not stop.is_set():
            if horizon is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.sweep_interval)
            try:
                await self.adopt(horizon)
            except Exception as exc:  # the next sweep tries again
                log.warning("ledger sweep failed: %s", exc)
            horizon = 2 * self.sweep_interval

    async def adopt(self, horizon: float | None) -> int:
        """Wait on every record of this participant that waits for an answer (`RecordSweep`:
        all at the first call, then what changed). Refused and cancelled transfers are adopted
        when younger than `horizon` seconds (all when None): nothing in the state says whether
        the receiver has heard of them."""
        p, latest = self.participant, await self.records.changed()
        now, wall_ms = time.monotonic(), time.time() * 1000
        refused: list[tuple[str, TransferState]] = []
        adopted = 0
        for key, event in latest.items():
            self.on_record(key, event)
            if key in self.schedule:
                continue
            young = horizon is None or wall_ms - event.at < horizon * 1000
            if isinstance(event, TransferRefused):
                if young:
                    refused.append((key, event.state))
            elif (wait := awaited(event.state)) is not None and (
                young or not isinstance(event, TransferCancelled)
            ):
                self.schedule.expect(key, *wait, now, attempts=self._resends_so_far(event))
                adopted += 1
        receivers = {s.transfer.creditor.participant for _, s in refused}
        known = await self.registered(receivers) if receivers else frozenset()
        for key, state in refused:
            receiver = state.transfer.creditor.participant
            if receiver_must_know(state.transfer, p, known):
                self.schedule.expect(key, receiver, Kind.POSTING, refused_posting(state), now)
                adopted += 1
        self._initial_sweep_due = False
        self.stats.adopted += adopted
        return adopted

    def _resends_so_far(self, event: AnyTransferEvent) -> int:
        """For a posting that counts its attempts: the resends the clock would have made since
        the admission, so that a restart does not grant the transfer its attempts again."""
        state = event.state
        if state.transfer.max_attempts is msgspec.UNSET or state.phase is not Phase.RESERVED:
            return 0
        elapsed = max(0.0, time.time() - event.at / 1000)
        return self.schedule.policy.sends_within(elapsed) - 1


def _attempts_exhausted(entry: Awaited) -> bool:
    """A posting sent `max_attempts` times with no result is given up, not sent again."""
    if entry.kind is not Kind.POSTING or not isinstance(entry.item, Posting):
        return False
    limit = entry.item.transfer.max_attempts
    return entry.item.refused is None and limit is not msgspec.UNSET and entry.attempts >= limit
