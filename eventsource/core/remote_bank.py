"""The simulated remote bank behind a proxy participant (core/remote.py), pure: what it decides,
what it applies, and the fate of each of its answers on the way back.

It decides each key once and answers every later ask of that key the same way, so a proxy that
asks again (a lost answer) cannot get two decisions. Its decision is provisional: it applies a
credit only when it is told the final OK, and it voids its acceptance on a final REJECTED or
CANCELLED. A final that arrives before the ask (the network reorders) is kept, and a later ask
is answered from it. Its decline share is drawn from the key and the seed, so every replica of a
simulated remote bank (one per `serve` process) decides a key alike.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from eventsource.core.model import Outcome
from eventsource.core.remote import AskedCredit, RelayedFinal, RemoteAnswer, RemotePlan

DECLINED = "simulated decline"


@dataclass
class KeyRecord:
    accepted: bool | None = None  # its decision; None: never asked
    final: Outcome | None = None  # what the proxy told it; None: not yet


@dataclass
class RemoteBook:
    """One remote bank's memory of keys, and counts a test or a report reads."""

    plan: RemotePlan
    records: dict[str, KeyRecord] = field(default_factory=dict)
    decisions: int = 0  # keys decided (once each)
    asked_again: int = 0  # asks of a key already decided or final
    applied: int = 0  # credits applied on a final OK
    voided: int = 0  # acceptances voided by a final REJECTED or CANCELLED
    contradictions: int = 0  # a final OK for a key it declined: must never happen (I4)

    def answer(self, credit: AskedCredit) -> RemoteAnswer:
        record = self.records.setdefault(credit.key, KeyRecord())
        if record.final is not None:  # told first: the answer cannot contradict the final
            self.asked_again += 1
            return RemoteAnswer(key=credit.key, accepted=record.final is Outcome.OK)
        if record.accepted is None:
            record.accepted = not declines(self.plan, credit.key)
            self.decisions += 1
        else:
            self.asked_again += 1
        return RemoteAnswer(
            key=credit.key,
            accepted=record.accepted,
            detail="" if record.accepted else DECLINED,
        )

    def note(self, final: RelayedFinal) -> RemoteAnswer:
        record = self.records.setdefault(final.key, KeyRecord())
        if record.final is None:
            record.final = final.outcome
            if final.outcome is Outcome.OK:
                if record.accepted is False:
                    self.contradictions += 1
                self.applied += 1
            elif record.accepted:
                self.voided += 1
        elif record.final is not final.outcome:
            self.contradictions += 1  # a final that changes: the proxy broke I4
        return RemoteAnswer(key=final.key, noted=True)


def declines(plan: RemotePlan, key: str) -> bool:
    if not plan.reject:
        return False
    digest = hashlib.sha256(f"{plan.seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < plan.reject


@dataclass
class AnswerFates:
    """How many times each answer is sent (0: lost, 1, or 2: duplicated), and after how long."""

    plan: RemotePlan
    salt: str = ""
    counts: dict[str, int] = field(default_factory=lambda: {"lost": 0, "duplicated": 0})
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.plan.seed}:remote:{self.salt}")

    def next(self) -> tuple[int, float]:
        """(copies, delay in seconds) of the next answer."""
        delay_s = self._rng.uniform(self.plan.delay_ms_min, self.plan.delay_ms_max) / 1000
        draw = self._rng.random()
        if draw < self.plan.loss:
            self.counts["lost"] += 1
            return 0, delay_s
        if draw < self.plan.loss + (1 - self.plan.loss) * self.plan.duplicate:
            self.counts["duplicated"] += 1
            return 2, delay_s
        return 1, delay_s
