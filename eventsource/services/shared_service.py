"""One instance of a participant on the shared store (`serve --store shared`): fetch a group of
its submissions, decide them all, commit one atomic batch into KV_shared, then ack.

No protocol messages follow: the batch that debits the debtor also credits the creditor and
records the outcome, so there is nothing to send, resend, confirm or compensate. Every
instance of every participant writes the same stream, so an account moved by anyone since it
was read refuses the whole batch (expected sequence), and the group is decided again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.dead_letters import dead_letter
from eventsource.adapters.jetstream import CommitUnknown, StaleState, commit, read_last
from eventsource.adapters.ledger_state import LedgerState
from eventsource.core.dispatch import check_message, split_message
from eventsource.core.errors import InfrastructureError, ProtocolError
from eventsource.core.messages import SubmitTransfers, inbox_decoder
from eventsource.core.model import TransferRequest, is_token
from eventsource.core.shared_decision import SharedGroup, decide_transfer, keys_of
from eventsource.core.shared_store import (
    SHARED_STREAM,
    decode_shared_state,
    shared_consumer,
    shared_subject,
    submitter_of_submit_subject,
)
from eventsource.core.subjects import is_account_key, is_reserved

log = logging.getLogger("natsbank.shared")
MAX_ITEMS_PER_GROUP = 300
MAX_WRITES = 1000
KEEP_ALIVE = 0.8  # seconds between in-progress acks while a commit is retried


class SharedState(LedgerState):
    """The ledger reader and cache, pointed at the shared stream."""

    def __init__(self, nc: Client) -> None:
        super().__init__(nc, 0)

    async def _read(self, key: str, leader: bool):
        async with self._gate:
            last = await read_last(self._nc, SHARED_STREAM, shared_subject(key), leader=leader)
        if last is None:
            return None, 0
        return decode_shared_state(key, last[0]), last[1]


@dataclass
class SharedStats:
    groups: int = 0
    messages: int = 0
    transfers: int = 0
    conflicts: int = 0  # batches refused because another writer moved a subject first
    dead_letters: int = 0
    retries: int = 0
    redelivered: int = 0
    outbox_messages: int = 0  # always 0: the shared store sends no protocol messages
    started: float = field(default_factory=time.monotonic)


class SharedStoreService:
    def __init__(self, nc: Client, participant: str, *, fetch_batch: int = 256) -> None:
        self.nc = nc
        self.participant = participant
        self.state = SharedState(nc)
        self.fetch_batch = fetch_batch
        self.stats = SharedStats()
        self._stop = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        js = self.nc.jetstream()
        durable = shared_consumer(self.participant)
        sub = None
        while not stop.is_set():
            try:
                if sub is None:
                    sub = await js.pull_subscribe_bind(durable, stream=SHARED_STREAM)
                msgs = await sub.fetch(self.fetch_batch, timeout=1.0)
            except TimeoutError:
                continue
            except Exception as exc:  # server restart, leader change: re-create the subscription
                log.warning("fetch from %s failed (%s); retrying", durable, exc)
                sub = await _drop(sub)
                await asyncio.sleep(0.5)
                continue
            self.stats.redelivered += sum(1 for m in msgs if m.metadata.num_delivered > 1)
            try:
                await self.process(msgs)
            except Exception:  # a bug must not stop the participant: unacked work comes back
                log.exception("processing a group failed; its messages will be redelivered")
                await asyncio.sleep(1.0)
        await _drop(sub)

    async def process(self, msgs: list[Msg]) -> None:
        pieces: list[tuple[Msg, list[TransferRequest], bool]] = []
        for msg in msgs:
            try:
                message = self._decode(msg)
            except (msgspec.DecodeError, ProtocolError) as exc:
                reason = "UNDECODABLE" if isinstance(exc, msgspec.DecodeError) else "PROTOCOL"
                await self._poison(msg, reason, str(exc))
                continue
            parts = split_message(message)
            pieces += [(msg, p.transfers, i == len(parts) - 1) for i, p in enumerate(parts)]
        group: list[tuple[Msg, list[TransferRequest], bool]] = []
        for piece in pieces:
            if group and sum(len(g[1]) for g in group) + len(piece[1]) > MAX_ITEMS_PER_GROUP:
                await self._commit_group(group)
                group = []
            group.append(piece)
        if group:
            await self._commit_group(group)

    def _decode(self, msg: Msg) -> SubmitTransfers:
        if submitter_of_submit_subject(msg.subject) != self.participant:
            raise ProtocolError(f"subject {msg.subject} is not this participant's submissions")
        message = inbox_decoder.decode(msg.data)
        if not isinstance(message, SubmitTransfers):
            raise ProtocolError("only submissions go to the shared store's inbox")
        check_message(message, self.participant)
        return message

    async def _poison(self, msg: Msg, reason: str, detail: str) -> None:
        self.stats.dead_letters += 1
        log.warning("dead letter %s on %s: %s", reason, msg.subject, detail)
        await dead_letter(self.nc, self.participant, msg, reason, detail)
        await _quietly(msg.term())

    async def _commit_group(self, group: list[tuple[Msg, list[TransferRequest], bool]]) -> None:
        # 1: re-read the accounts (someone moved one), 2: re-read everything from the leader.
        distrust = 0
        kept_alive = time.monotonic()
        requests = [(msg, r) for msg, piece, _ in group for r in piece]
        sources: list[Msg] = []
        for attempt in range(1, 1_000_000):
            try:
                decided = await self._decide(requests, sources, distrust)
                writes = decided.writes()
                if len(writes) > MAX_WRITES and len(group) > 1:
                    half = len(group) // 2
                    await self._commit_group(group[:half])
                    await self._commit_group(group[half:])
                    return
                if writes:
                    last = await commit(self.nc, writes)
                    first = last - len(writes) + 1
                    seqs = {w.key: first + i for i, w in enumerate(writes) if w.key is not None}
                    self.state.remember(decided.changed_states, seqs)
                for letter, source in zip(decided.dead_letters, sources, strict=True):
                    self.stats.dead_letters += 1
                    await dead_letter(
                        self.nc, self.participant, source, letter.reason, letter.detail,
                        payload=letter.payload,
                    )  # fmt: skip
                break
            except StaleState:
                self.stats.conflicts += 1
                distrust = min(2, distrust + 1) if attempt < 3 else 2
                if attempt > 2:  # contention on a hot account: step aside a random moment
                    await asyncio.sleep(random.uniform(0, 0.005 * min(attempt, 20)))
            except (CommitUnknown, InfrastructureError, OSError) as exc:
                if self._stop.is_set():
                    return  # unacked: JetStream hands the group to another instance
                self.stats.retries += 1
                distrust = 2
                log.warning("commit attempt %d failed: %s", attempt, exc)
                await asyncio.sleep(min(2.0, 0.1 * attempt))
                if time.monotonic() - kept_alive > KEEP_ALIVE:
                    kept_alive = time.monotonic()
                    for msg, _, _ in group:
                        await _quietly(msg.in_progress())
        for msg, _, last_piece in group:
            if last_piece:
                await _quietly(msg.ack())
        self.stats.groups += 1
        self.stats.messages += len(group)
        self.stats.transfers += len(requests)

    async def _decide(
        self, requests: list[tuple[Msg, TransferRequest]], sources: list[Msg], distrust: int
    ) -> SharedGroup:
        """Decide the group; `sources` receives, per dead letter, the message it came from."""
        sources.clear()
        records, accounts = keys_of(self.participant, [r for _, r in requests])
        fresh = distrust >= 2
        stale = {k for k in accounts if is_account_key(k)} if distrust == 1 else set()
        loaded = await self.state.load(accounts, fresh=fresh, likely_new=records, stale=stale)
        receivers = {
            r.creditor.participant
            for _, r in requests
            if is_token(r.creditor.participant) and not is_reserved(r.creditor.participant)
        }
        group = SharedGroup(
            submitter=self.participant,
            loaded=loaded,
            known_participants=await self.state.known_participants(receivers),
            now_ms=int(time.time() * 1000),
        )
        for msg, request in requests:
            before = len(group.dead_letters)
            decide_transfer(group, request)
            sources.extend([msg] * (len(group.dead_letters) - before))
        return group


def shared_figures(service: SharedStoreService) -> dict:
    """One instance's counters, for `serve --stats-dir` and the benchmark."""
    return {
        "participant": service.participant,
        "mode": "shared",
        **{k: v for k, v in vars(service.stats).items() if k != "started"},
    }


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception as exc:  # a lost ack only means a harmless redelivery
        log.debug("ack failed: %s", exc)


async def _drop(sub) -> None:
    if sub is not None:
        await _quietly(sub.unsubscribe())
    return None
