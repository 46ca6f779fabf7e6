"""The one group-commit engine: fetch -> decode -> split -> decide (pure) -> one atomic batch ->
retry on stale state -> keep in progress -> dead-letter -> ack.

Every store and transport runs on it. What differs is given to it as objects: a `Decider` (the
store: how a message is decoded and a group decided) and a `Carrier` (the transport: protocol
messages inside the batch, or as core messages after it; services/transport/)."""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.batch_commit import commit
from eventsource.adapters.dead_letters import dead_letter
from eventsource.core.dispatch import split_message
from eventsource.core.errors import (
    CommitUnknown,
    DeadLetterReason,
    InfrastructureError,
    ProtocolError,
    StaleState,
)
from eventsource.core.limits import (
    COMMIT_RETRY_PAUSE_MAX_S,
    COMMIT_RETRY_PAUSE_STEP_S,
    CONTENTION_FREE_ATTEMPTS,
    CONTENTION_PAUSE_STEP_S,
    CONTENTION_STEPS_MAX,
    DEAD_LETTER_RETRY_DELAY_S,
    KEEP_ALIVE_S,
    MAX_BATCH_MESSAGES,
    MAX_ITEMS_PER_GROUP,
)
from eventsource.core.messages import GiveUps, InboxMessage, items_of
from eventsource.core.signing import Signer
from eventsource.core.workset import DeadLetter, Write
from eventsource.services.metrics import Observer
from eventsource.services.signatures import MessageVerifier, signed
from eventsource.services.stats import ServiceStats
from eventsource.services.stopwatch import Stage, Stopwatch
from eventsource.services.transport import Carrier

log = logging.getLogger("natsbank.service")


@dataclass(frozen=True, slots=True)
class Piece:
    """A message, or a piece of a big one, to decide in a group."""

    msg: Msg | None  # None for the give-up clock's commands: nothing to ack or redeliver
    message: InboxMessage | GiveUps
    last: bool  # the message is acked once its last piece is committed


class Distrust(enum.IntEnum):
    """How much a decision distrusts what the instance holds, after a refused batch."""

    NONE = 0  # the cache and direct gets (any replica)
    ACCOUNTS = 1  # re-read the accounts from the stream leader: another writer moved one
    ALL = 2  # read everything from the stream leader (and only then dead-letter)


class Decision(Protocol):
    """A decided group: the states it read and changed, its writes and its dead letters."""

    participant: str
    loaded: dict
    dead_letters: list[DeadLetter]
    traces: dict[str, str]

    @property
    def changed_states(self) -> dict: ...

    def writes(self) -> list[Write]: ...


class Decider(Protocol):
    """A store's side of the engine."""

    def decode(self, msg: Msg) -> InboxMessage:
        """The message, checked to belong here; raises msgspec.DecodeError or ProtocolError."""

    async def decide(
        self, group: Sequence[Piece], distrust: Distrust
    ) -> tuple[Decision, list[Msg | None]]:
        """The decision, and per dead letter the message it came from."""

    def remember(self, decision: Decision, seqs: dict[str, int]) -> None:
        """After a commit: the states it wrote, at their new sequences."""

    def figures(self) -> dict:
        """Its own counters for the service's figures: a proxy's remote link; empty otherwise."""

    def quarantined(self) -> set[str]:
        """Records its reads found undecodable (core/quarantine.py)."""


class GroupCommit:
    """One instance's engine for one participant. One group at a time: the instance's loops
    (each consumer, core messages, the give-up clock) would otherwise race each other on the
    same accounts and refuse each other's batches."""

    def __init__(
        self,
        nc: Client,
        participant: str,
        decider: Decider,
        carrier: Carrier,
        *,
        stats: ServiceStats,
        observer: Observer,
        on_committed: Callable[[Decision], None] = lambda decision: None,
        signer: Signer | None = None,
        verifier: MessageVerifier | None = None,
        stopwatch: Stopwatch | None = None,
    ) -> None:
        self.nc = nc
        self.participant = participant
        self.decider = decider
        self.carrier = carrier
        self.stats = stats
        self.observer = observer
        self.on_committed = on_committed
        self.signer = signer  # signs every protocol message this participant sends
        self.verifier = verifier  # checks every protocol message it receives, before deciding
        self.stopwatch = stopwatch or Stopwatch()  # where the time goes, per stage
        self.stop = asyncio.Event()
        self._turn = asyncio.Lock()
        self._unstored: set[int] = set()  # messages of this fetch whose dead letter failed

    async def process(self, msgs: list[Msg]) -> None:
        """Decode, split and commit a fetch; ack each message after its last piece."""
        async with self._turn:
            self._unstored.clear()
            with self.stopwatch.timing(Stage.DECODE):
                received = await self._decoded(msgs)
            pieces: list[Piece] = []
            for msg, message in self.carrier.within_bounds(received):
                parts = split_message(message)
                pieces += [Piece(msg, part, i == len(parts) - 1) for i, part in enumerate(parts)]
            await self._commit_in_groups(pieces)

    async def _decoded(self, msgs: list[Msg]) -> list[tuple[Msg, InboxMessage]]:
        """The messages that decode, belong here and carry a good signature; the others are
        dead-lettered with their reason."""
        received: list[tuple[Msg, InboxMessage]] = []
        for msg in msgs:
            try:
                message = self.decider.decode(msg)
            except (msgspec.DecodeError, ProtocolError) as exc:
                reason = (
                    exc.reason if isinstance(exc, ProtocolError) else DeadLetterReason.UNDECODABLE
                )
                await self._poison(msg, reason, str(exc))
                continue
            if self.verifier is not None:
                problem = await self.verifier.problem(msg, message)
                if problem is not None:
                    await self._poison(msg, DeadLetterReason.BAD_SIGNATURE, problem)
                    continue
            received.append((msg, message))
        return received

    async def commit_commands(self, command: GiveUps) -> None:
        """Decide and commit the instance's own commands (the give-up clock) like a message."""
        async with self._turn:
            self._unstored.clear()
            pieces = [Piece(None, part, True) for part in split_message(command)]
            await self._commit_in_groups(pieces)

    async def _commit_in_groups(self, pieces: list[Piece]) -> None:
        group: list[Piece] = []
        size = 0
        for piece in pieces:
            items = len(items_of(piece.message))
            if group and size + items > MAX_ITEMS_PER_GROUP:
                await self._commit_group(group)
                group, size = [], 0
            group.append(piece)
            size += items
        if group:
            await self._commit_group(group)

    async def _poison(self, msg: Msg, reason: DeadLetterReason, detail: str) -> None:
        """A whole message that cannot be decided: kept with its reason, never retried."""
        self.stats.dead_letters += 1
        self.observer.poisoned(self.participant, reason)
        log.warning(
            "dead letter %s on %s: %s", reason, msg.subject, detail, extra={"reason": reason}
        )
        if await self._store_dead_letter(msg, reason, detail):
            await _quietly(msg.term())  # a core message has nothing to terminate

    async def _commit_group(self, group: list[Piece]) -> None:
        distrust = Distrust.NONE
        kept_alive = time.monotonic()
        for attempt in itertools.count(1):
            try:
                with self.stopwatch.timing(Stage.DECIDE):
                    decision, sources = await self.decider.decide(group, distrust)
                if decision.dead_letters and distrust < Distrust.ALL:
                    # "Unknown transfer" may only mean a lagging replica answered the read: a
                    # message is dead-lettered only on what the stream leader says.
                    distrust = Distrust.ALL
                    continue
                writes, after = self.carrier.split(
                    signed(decision.writes(), self.participant, self.signer)
                )
                if len(writes) > MAX_BATCH_MESSAGES and len(group) > 1:
                    half = len(group) // 2
                    await self._commit_group(group[:half])
                    await self._commit_group(group[half:])
                    return
                if writes:
                    with self.stopwatch.timing(Stage.COMMIT):
                        await self._commit(decision, writes)
                await self._dead_letters(decision, sources)
                with self.stopwatch.timing(Stage.SEND):
                    await self.carrier.delivered(decision, after, [p.message for p in group])
                self.on_committed(decision)
                self.observer.committed(self.participant, group, decision)
                break
            except StaleState:
                self.stats.conflicts += 1
                distrust = Distrust(min(Distrust.ALL, distrust + 1))
                if attempt > CONTENTION_FREE_ATTEMPTS:  # a hot account: step aside a moment
                    steps = min(attempt, CONTENTION_STEPS_MAX)
                    await asyncio.sleep(random.uniform(0, CONTENTION_PAUSE_STEP_S * steps))
            except (CommitUnknown, InfrastructureError, OSError) as exc:
                if self.stop.is_set():
                    return  # unacked: JetStream hands the group to another instance
                self.stats.retries += 1
                distrust = Distrust.ALL
                log.warning("commit attempt %d failed: %s", attempt, exc)
                pause = min(COMMIT_RETRY_PAUSE_MAX_S, COMMIT_RETRY_PAUSE_STEP_S * attempt)
                await asyncio.sleep(pause)
                if time.monotonic() - kept_alive > KEEP_ALIVE_S:
                    # Still ours: stop JetStream from handing it to another instance meanwhile.
                    kept_alive = time.monotonic()
                    for piece in group:
                        if piece.msg is not None:
                            await _quietly(piece.msg.in_progress())
        with self.stopwatch.timing(Stage.ACK):
            await self._ack(group)
        self.stats.groups += 1
        self.stats.messages += len(group)
        self.stats.items += sum(len(items_of(p.message)) for p in group)

    async def _commit(self, decision: Decision, writes: list[Write]) -> None:
        last = await commit(self.nc, writes)
        first = last - len(writes) + 1
        seqs = {w.key: first + i for i, w in enumerate(writes) if w.key is not None}
        self.decider.remember(decision, seqs)
        self.stats.outbox_messages += sum(1 for w in writes if w.key is None)

    async def _dead_letters(self, decision: Decision, sources: list[Msg | None]) -> None:
        for letter, source in zip(decision.dead_letters, sources, strict=True):
            self.stats.dead_letters += 1
            if source is None:  # a give-up of a record the leader does not know
                log.warning("give-up refused: %s", letter.detail)
                continue
            await self._store_dead_letter(source, letter.reason, letter.detail, letter.payload)

    async def _store_dead_letter(
        self, msg: Msg, reason: str, detail: str, payload: bytes | None = None
    ) -> bool:
        try:
            await dead_letter(self.nc, self.participant, msg, reason, detail, payload=payload)
            return True
        except Exception as exc:  # bounded in the adapter: the message comes back later
            # Not acked: its redelivery decides it again (a duplicate of what was committed)
            # and stores the dead letter then. The rest of the fetch goes on meanwhile.
            self.stats.dead_letters_unstored += 1
            self._unstored.add(id(msg))
            log.error("dead letter %s on %s not stored: %s", reason, msg.subject, exc)
            await _quietly(msg.nak(delay=DEAD_LETTER_RETRY_DELAY_S))
            return False

    async def _ack(self, group: list[Piece]) -> None:
        for piece in group:  # earlier pieces of a message are committed by now
            if piece.last and piece.msg is not None and id(piece.msg) not in self._unstored:
                await _quietly(piece.msg.ack())


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception as exc:  # a lost ack only means a harmless redelivery
        log.debug("ack failed: %s", exc)
