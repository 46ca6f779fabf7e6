"""The submitter's give-up timer, in both transport modes: which RESERVED records carry a limit,
and when their time comes, a give-up for the service to decide and commit (core/saga.py).

Every instance of a participant watches the records it admits, and learns of its siblings'
from the ledger: all of them at start, then every sweep (in core mode `CoreLink`'s sweep reads
the ledger and passes each record on, so the ledger is read once). Two instances may both try
to give up on one record: the commit is guarded by the record's expected sequence, so one wins
and the other, deciding again, finds it SETTLED and writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client

from eventsource.core.deadlines import DeadlineClock, Due, give_up_at
from eventsource.core.events import AnyTransferEvent, TransferState
from eventsource.core.limits import GIVE_UP_TICK_S
from eventsource.core.model import Outcome, Side
from eventsource.core.protocol import Phase
from eventsource.core.resend import ResendPolicy
from eventsource.core.workset import WorkSet
from eventsource.services.independent.record_sweep import RecordSweep

log = logging.getLogger("natsbank.give_up")


class GiveUpWatch:
    def __init__(
        self,
        nc: Client,
        participant: str,
        home: int,
        policy: ResendPolicy,
        *,
        counts_sends: bool,
        sweeps: bool,
        sweep_interval: float,
    ) -> None:
        self.policy = policy
        self.counts_sends = counts_sends  # core mode: the resend clock counts the attempts
        self.sweeps = sweeps  # False where the carrier's sweeps pass us the records (core mode)
        self.sweep_interval = sweep_interval
        self.clock = DeadlineClock()
        self.records = RecordSweep(nc, participant, home, incoming=False)

    def quarantined(self) -> set[str]:
        """Records its sweeps found undecodable (core/quarantine.py)."""
        return self.records.quarantined

    def observe_event(self, key: str, event: AnyTransferEvent) -> None:
        """A record's latest event, read from the ledger. While RESERVED that is its
        FundsReserved, whose time is the admission the limits count from."""
        self._observe(key, event.state, event.at)

    def observe(self, ws: WorkSet) -> int:
        """After a commit: watch what it admitted, forget what got its outcome. Returns how
        many transfers the commit gave up on."""
        changed = ws.changed_states
        given_up = 0
        for key in ws.loaded.keys() | changed.keys():
            state = ws.state(key)
            if isinstance(state, TransferState) and state.side is Side.SUBMITTER:
                if state.phase is not Phase.RESERVED or key in changed:
                    self._observe(key, state, ws.now_ms)
                given_up += key in changed and state.outcome is Outcome.CANCELLED
        return given_up

    def _observe(self, key: str, state: TransferState, reserved_at_ms: int) -> None:
        at = (
            give_up_at(state, reserved_at_ms, self.policy, counts_sends=self.counts_sends)
            if state.transfer.limited
            else None
        )
        if at is None:
            self.clock.forget(key)
        else:
            self.clock.watch(key, *at)

    async def catch_up(self) -> None:
        """Read what the ledger holds (all at the first call, then what changed since)."""
        for key, event in (await self.records.changed()).items():
            self.observe_event(key, event)

    async def catch_up_and_give_up(
        self,
        give_up: Callable[[list[Due]], Awaitable[None]],
        adopt: Callable[[float | None], Awaitable[int]] | None = None,
    ) -> None:
        """At start: learn what the ledger holds (in core mode through `adopt`, which passes
        each record on) and give up on what is past its limit, before any new work, so that a
        result that arrived while n was down never races a deadline that had passed already."""
        try:
            if adopt is not None:
                await adopt(None)
            else:
                await self.catch_up()
            if due := self.due():
                await give_up(due)
        except Exception as exc:  # the sweeps and the clock try again
            log.warning("catching up with the ledger failed: %s", exc)

    def due(self) -> list[Due]:
        return self.clock.due(int(time.time() * 1000))

    async def run(
        self, give_up: Callable[[list[Due]], Awaitable[None]], stop: asyncio.Event
    ) -> None:
        """Give up on what is due every tick; in JetStream mode also sweep the ledger."""
        next_sweep = time.monotonic() + self.sweep_interval
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), GIVE_UP_TICK_S)
            try:
                if self.sweeps and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_interval
                    await self.catch_up()
                if due := self.due():
                    await give_up(due)
            except Exception as exc:  # still watched: the next tick tries again
                log.warning("giving up failed: %s", exc)
