"""The projector: state events -> a database, exactly once, for either store (its Source,
projections/source.py: the ledger partitions, or the shared store's one stream).

Per followed stream k, a durable pull consumer `projector_<name>_<k>` on its state subjects
(`$KV.ledger_<k>.>`, `$KV.shared.>`; the inbox subjects are not delivered). A fetched batch is
applied in ONE database transaction together with the stream position it reaches; it is acked
only after the commit, with one ack for the whole batch (AckPolicy.ALL). Within a batch only
the last row per key is written (projections/model.py `last_per_key`, `merged_per_key`).
Events at or below the stored position are skipped, so a redelivery changes nothing.

Pipelined (projections/pipeline.py): the next batch is fetched and decoded while the one before
commits; commits run one at a time and in order, none after one that did not commit, and at
most PROJECTOR_BATCHES_HELD batches are held. A batch is acked by its own commit, after it.

Never skip a gap: the database position is the truth and the consumer only a cursor. At start,
and whenever a delivery is missing (the consumer sequence jumped: a fetch reply was lost, or
unacked messages came back after a crash), the consumer is re-created at position + 1. Only one
projector per projection is active at a time (a database lock), so nobody else moves the cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.dead_letters import dead_letter
from eventsource.adapters.retry import describe, is_transient, transient_retry
from eventsource.core.errors import DeadLetterReason
from eventsource.core.limits import PROJECTOR_BATCHES_HELD
from eventsource.core.model import is_token
from eventsource.core.subjects import key_of_subject
from projections.consumers import consumer_name, recreate_at
from projections.model import LedgerEvent, Undecodable, participant_of_key
from projections.pipeline import CommitPipeline, in_sequence
from projections.pull import PullBatches, delivery_sequences
from projections.source import Source
from projections.store import LostLeadership, ProjectionDb

log = logging.getLogger("natsbank.projector")
FETCH_BATCH = 2000
KEEP_ALIVE = 5.0
PROJECTOR_DLQ = "_projector"


@dataclass
class ProjectorStats:
    batches: int = 0
    applied: int = 0
    skipped: int = 0
    dead_letters: int = 0
    rewinds: int = 0
    overlapped: int = 0  # batches fetched and decoded while the one before was committing
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Batch:
    """Fetched and decoded, not yet committed: the rows, and the position they reach."""

    stream: str
    msgs: list[Msg]
    events: list[LedgerEvent]
    last_seq: int


class Projector:
    def __init__(
        self,
        nc: Client,
        store: ProjectionDb,
        source: Source,
        *,
        name: str,
        fetch_batch: int = FETCH_BATCH,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.store = store
        self.source = source
        self.partitions = len(source.streams)
        self.name = name
        self.fetch_batch = fetch_batch
        self.stats = ProjectorStats()
        self.leading = asyncio.Event()
        self.bound: set[int] = set()  # streams whose consumer this run has (re-)created
        self.reached: dict[str, int] = {}  # stream -> the position its last applied batch stored

    async def run(self, stop: asyncio.Event) -> None:
        """Wait to be the active projector, then follow every partition until `stop`; back to
        waiting if the database lock is lost (another projector may have taken over)."""
        while not stop.is_set():
            if not await self._lead(stop):
                return
            try:
                await self._follow(stop)
            except LostLeadership:
                log.warning("%s: lost the projection lock; standing by", self.name)
            finally:
                self.leading.clear()
                self.bound.clear()

    async def _lead(self, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            try:
                if await self.store.try_lead(self.name):
                    self.leading.set()
                    return True
            except Exception as exc:  # database down: keep trying
                log.warning("%s: cannot take the projection lock: %s", self.name, exc)
                await self._reconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        return False

    async def _follow(self, stop: asyncio.Event) -> None:
        # One partition at a time shares the one database connection; batches are big anyway.
        # The next batch is fetched and decoded while the one before it commits (pipeline.py).
        subs: dict[int, PullBatches] = {}
        expected: dict[int, int] = {}
        pipeline = CommitPipeline(PROJECTOR_BATCHES_HELD)
        try:
            # Broken: a batch was not committed (stopping); none after it may be, so run()
            # follows again from the database positions unless it stops.
            while not stop.is_set() and not pipeline.broken:
                idle = True
                for k in range(self.partitions):
                    if stop.is_set():
                        break
                    if k not in subs and not await self._bind(k, subs, expected, pipeline):
                        continue
                    await pipeline.room()
                    if pipeline.broken:
                        break
                    batch = await self._next_batch(k, subs, expected, pipeline)
                    if batch is not None:
                        idle = False
                        self.stats.overlapped += int(pipeline.committing)
                        pipeline.submit(functools.partial(self._commit, batch, stop))
                if idle and self.partitions > 1:
                    await asyncio.sleep(0.05)
            await pipeline.drain()  # stopping: what was fetched commits (or gives up) first
        finally:
            await pipeline.cancel()
            for sub in subs.values():
                await sub.unsubscribe()

    async def _bind(self, k: int, subs: dict, expected: dict, pipeline: CommitPipeline) -> bool:
        """(Re-)create partition k's consumer at the database position; the commits in flight
        finish first (they move the position, and the connection is theirs meanwhile)."""
        await pipeline.drain()
        try:
            subs[k] = await self._rewind(k)
        except LostLeadership:
            raise
        except Exception as exc:  # no leader yet, server restarting
            log.warning("%s: cannot set up partition %d: %s", self.name, k, exc)
            await asyncio.sleep(1.0)
            return False
        expected[k] = 1
        self.bound.add(k)
        return True

    async def _reconnect(self) -> None:
        """Reconnect the store; LostLeadership goes through, anything else is retried later."""
        try:
            await self.store.reconnect()
        except LostLeadership:
            raise
        except Exception as exc:
            log.warning("%s: reconnecting to the database failed: %s", self.name, exc)

    async def _rewind(self, k: int) -> PullBatches:
        """Re-create the consumer at the database position + 1 and bind to it."""
        stream = self.source.streams[k]
        durable = consumer_name(self.name, k)
        position = await self._retry(
            lambda: self.store.position(stream), "read the position", db=True
        )
        start = functools.partial(
            recreate_at, self.js, stream, durable, self.source.filter(k), position + 1
        )
        await self._retry(start, f"re-create {durable}")
        log.info("%s: consumer %s starts at %d", self.name, durable, position + 1)
        # Behind the live ledger's start (a rebuild, a new projection): the archive first. The
        # consumer, created above, keeps anything more from being purged meanwhile.
        replay = functools.partial(self.source.replay, self.nc, self.store, k, position)
        await self._retry(replay, f"replay the archive of {stream}", db=True)
        return await PullBatches(self.nc, stream, durable).subscribe()

    async def _next_batch(
        self, k: int, subs: dict, expected: dict, pipeline: CommitPipeline
    ) -> Batch | None:
        """Fetch and decode partition k's next batch; None if there is none (or it must be
        fetched again: after a rewind, once the commits in flight are done)."""
        try:
            timeout = 1.0 if self.partitions == 1 else 0.2
            msgs: list[Msg] = await subs[k].fetch(self.fetch_batch, timeout=timeout)
        except Exception as exc:  # server restart, lost consumer: resume from the database
            log.warning("%s: fetch from partition %d failed (%s); rewinding", self.name, k, exc)
            await self._drop(subs, k, pipeline)
            await asyncio.sleep(0.5)
            return None
        if not msgs:
            return None
        if not in_sequence([delivery_sequences(m.reply)[1] for m in msgs], expected[k]):
            # A delivery went missing or old ones came back: never apply past a hole.
            self.stats.rewinds += 1
            await self._drop(subs, k, pipeline)
            return None
        expected[k] += len(msgs)
        try:
            return await self._decode(self.source.streams[k], msgs)
        except Exception as exc:  # e.g. the dead letters unreachable: resume from the database
            log.warning("%s: a batch of partition %d failed (%s); rewinding", self.name, k, exc)
            await self._drop(subs, k, pipeline)
            await asyncio.sleep(1.0)
            return None

    async def _drop(self, subs: dict, k: int, pipeline: CommitPipeline | None = None) -> None:
        """Forget partition k's consumer (it is re-created at the database position), after the
        commits in flight: an ack of theirs must reach the consumer that delivered it."""
        if pipeline is not None:
            await pipeline.drain()
        sub = subs.pop(k, None)
        if sub is not None:
            await sub.unsubscribe()

    async def apply_batch(self, stream: str, msgs: list[Msg], stop: asyncio.Event) -> bool:
        """Decode, commit and ack one batch, now (outside the pipeline)."""
        return await self._commit(await self._decode(stream, msgs), stop)

    async def _decode(self, stream: str, msgs: list[Msg]) -> Batch:
        events: list[LedgerEvent] = []
        for msg in msgs:
            seq = delivery_sequences(msg.reply)[0]
            try:
                rows = self.source.rows(msg.subject, msg.data)
                events += [LedgerEvent(stream, seq, row) for row in rows]
            except Undecodable as exc:
                await self._poison(msg, str(exc))
        return Batch(stream, msgs, events, delivery_sequences(msgs[-1].reply)[0])

    async def _commit(self, batch: Batch, stop: asyncio.Event) -> bool:
        """One transaction: the batch's rows and its last stream sequence; then one ack for the
        batch. False if stopped before it committed (unacked: the next start resumes from the
        database position)."""
        kept_alive = asyncio.get_running_loop().time()
        attempt = 0
        while True:
            try:
                applied = await self.store.apply(batch.stream, batch.last_seq, batch.events)
                break
            except LostLeadership:
                raise
            except Exception as exc:  # database down: keep the batch, retry, keep it ours
                if stop.is_set():
                    return False
                attempt += 1
                self.stats.errors.append(repr(exc))
                log.warning("%s: applying a batch failed (%s); retrying", self.name, exc)
                await asyncio.sleep(min(2.0, 0.2 * attempt))
                await self._reconnect()
                now = asyncio.get_running_loop().time()
                if now - kept_alive > KEEP_ALIVE:
                    kept_alive = now
                    for msg in batch.msgs:
                        with contextlib.suppress(Exception):
                            await msg.in_progress()
        self.reached[batch.stream] = batch.last_seq
        self.stats.batches += 1
        self.stats.applied += applied
        self.stats.skipped += len(batch.events) - applied
        with contextlib.suppress(Exception):  # a lost ack only means a skipped redelivery
            await batch.msgs[-1].ack()  # AckPolicy.ALL: every message of the batch, in one ack
        return True

    async def _poison(self, msg: Msg, detail: str) -> None:
        self.stats.dead_letters += 1
        reason = DeadLetterReason.UNDECODABLE
        log.warning("%s: dead letter %s: %s", self.name, reason, detail)
        key = key_of_subject(msg.subject) or ""
        owner = participant_of_key(key)
        owner = owner if is_token(owner) else PROJECTOR_DLQ
        await dead_letter(self.nc, owner, msg, reason, detail)  # retried inside

    async def _retry(self, call, what: str, *, db: bool = False):
        """The shared bounded retry (the loops above retry past its bound). Each call is safe to
        repeat: a read, or a consumer re-created whole at the database position. Database
        errors have no classifier: all but LostLeadership are retried, after a reconnect."""

        async def before_retry(exc: BaseException) -> None:
            log.warning("%s: %s: %s; retrying", self.name, what, describe(exc))
            if db:
                await self._reconnect()

        transient = (lambda exc: not isinstance(exc, LostLeadership)) if db else is_transient
        return await transient_retry(
            call, what=f"{self.name}: {what}", transient=transient, before_retry=before_retry
        )
