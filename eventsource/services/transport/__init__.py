"""How protocol messages travel between participants: a `Carrier` per `Transport`.

- `StreamOutbox` (jetstream): they are part of the atomic batch, the server delivers and
  redelivers them through the recipients' inbox consumers.
- `CoreLink` (core): the batch holds the state only; they go out as core messages after the
  commit, and the endpoints resend them on a clock until answered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from nats.aio.msg import Msg

from eventsource.core.messages import GiveUps, InboxMessage
from eventsource.core.workset import Write


class Carrier(Protocol):
    """What the engine and the service need from a transport."""

    counts_sends: bool  # the give-up clock: "N attempts" are sends (core) or time (JetStream)
    # Core mode rebuilds what it awaits from the ledger (horizon in seconds, None: all);
    # None where nothing waits in memory.
    adopt: Callable[[float | None], Awaitable[int]] | None

    def admits(self) -> bool:
        """Whether the instance may take new submissions now (flow control)."""

    async def received(self, msgs: list[Msg]) -> list[Msg]:
        """Inbox deliveries as the engine should see them (fault injection)."""

    def within_bounds(
        self, received: list[tuple[Msg, InboxMessage]]
    ) -> list[tuple[Msg, InboxMessage]]:
        """Decoded, verified messages cut to what the transport lets be decided now (core mode:
        a bound per sender on records waiting for its confirm); what is cut is resent by its
        sender, so it is never acked here."""

    def split(self, writes: list[Write]) -> tuple[list[Write], list[Write]]:
        """(what the atomic batch commits, what is sent after the commit)."""

    async def delivered(
        self, decision, after: list[Write], messages: list[InboxMessage | GiveUps]
    ) -> None:
        """After a commit: send what travels outside the batch, and track what it awaits."""

    async def run(self, process, batch: int, stop, give_up) -> None:
        """The transport's own loops until `stop` (core mode: listen, resend, sweep)."""

    def figures(self) -> dict:
        """Its counters, for the service's figures."""

    def quarantined(self) -> set[str]:
        """Records its own sweeps found undecodable (core mode); none in JetStream mode."""
