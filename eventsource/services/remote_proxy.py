"""A participant whose service is a proxy to a remote bank (core/remote.py): the engine's
decider, wrapped. The engine is unchanged; for each group this wrapper

1. decides it with the verdicts it has (none at first): the pure decision notes the new
   postings it could accept but has no verdict for (`WorkSet.awaiting_remote`);
2. asks the remote bank for those, in one batch, and decides the group again with the answers
   (the reads come from the instance's cache): the remote bank decides, never the proxy;
3. relays every final outcome the decision records to the remote bank, before the engine
   commits it, so that the remote bank hears of each final at least once.

A remote bank that does not answer raises RemoteUnanswered (an InfrastructureError): the engine
keeps the group in progress and decides it again later, like a commit that failed."""

from __future__ import annotations

import time
from collections.abc import Sequence

from nats.aio.msg import Msg

from eventsource.adapters.remote_link import RemoteLink
from eventsource.core.errors import RemoteUnanswered
from eventsource.core.remote import Verdict, finals_of
from eventsource.core.workset import WorkSet
from eventsource.services.engine import Distrust, Piece
from eventsource.services.independent.decider import IndependentDecider

# Decisions of one group with new verdicts: a second one finds nothing new to ask unless another
# instance changed the records meanwhile.
DECIDE_ROUNDS_MAX = 3


class RemoteProxyDecider:
    def __init__(self, inner: IndependentDecider, link: RemoteLink) -> None:
        self.inner = inner
        self.link = link
        self.remote_wait_s = 0.0

    def decode(self, msg: Msg):
        return self.inner.decode(msg)

    def remember(self, decision: WorkSet, seqs: dict[str, int]) -> None:
        self.inner.remember(decision, seqs)

    def quarantined(self) -> set[str]:
        return self.inner.quarantined()

    async def decide(
        self, group: Sequence[Piece], distrust: Distrust
    ) -> tuple[WorkSet, list[Msg | None]]:
        verdicts: dict[str, Verdict] = {}
        for _ in range(DECIDE_ROUNDS_MAX):
            decision, sources = await self.inner.decide(group, distrust, remote=verdicts)
            if not decision.awaiting_remote:
                break
            started = time.monotonic()
            try:
                verdicts |= await self.link.verdicts(list(decision.awaiting_remote.values()))
            finally:
                self.remote_wait_s += time.monotonic() - started
        else:
            raise RemoteUnanswered("the group kept needing new verdicts; deciding it again later")
        finals = finals_of(decision.changed_states)
        if finals:
            started = time.monotonic()
            try:
                await self.link.relay(finals)
            finally:
                self.remote_wait_s += time.monotonic() - started
        return decision, sources

    def figures(self) -> dict:
        return {**vars(self.link.stats), "remote_wait_ms": int(self.remote_wait_s * 1000)}
