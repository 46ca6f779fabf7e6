"""Seeded fault injection at the transport boundary, pure: the fate of each protocol message.

Both modes run under the same plan. In core mode the fate applies when a service publishes a
posting, result or confirm; in JetStream mode when a service receives one from its consumer (a
dropped delivery is never acked, so the server redelivers it after the ack wait). The plan is a
documented option of `serve` and `bench` (`--faults drop=0.1,duplicate=0.05,delay=0.05`).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field, fields

from eventsource.core.errors import ConfigError


class Fate(enum.StrEnum):
    DELIVER = "deliver"
    DROP = "drop"
    DUPLICATE = "duplicate"
    DELAY = "delay"


@dataclass(frozen=True, slots=True)
class FaultPlan:
    drop: float = 0.0  # probability that a message is lost
    duplicate: float = 0.0  # ... delivered twice
    delay: float = 0.0  # ... held back for up to max_delay seconds (so also reordered)
    max_delay: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        chances = (self.drop, self.duplicate, self.delay)
        if any(not 0.0 <= p <= 1.0 for p in chances) or sum(chances) > 1.0:
            raise ConfigError("fault probabilities must be in [0, 1] and add up to at most 1")
        if self.max_delay < 0:
            raise ConfigError("max_delay must be >= 0")

    @property
    def active(self) -> bool:
        return bool(self.drop or self.duplicate or self.delay)

    @classmethod
    def parse(cls, text: str | None) -> FaultPlan:
        """`drop=0.1,duplicate=0.05,delay=0.05,max_delay=0.5,seed=7`; empty means no faults."""
        if not text:
            return cls()
        names = {f.name: f.type for f in fields(cls)}
        values: dict[str, float | int] = {}
        for part in text.split(","):
            name, sep, value = part.strip().partition("=")
            if not sep or name not in names:
                raise ConfigError(f"bad fault {part!r}; expected name=value with name in {names}")
            try:
                values[name] = int(value) if name == "seed" else float(value)
            except ValueError:
                raise ConfigError(f"bad fault value {part!r}") from None
        return cls(**values)

    def encode(self) -> str:
        return ",".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


NO_FAULTS = FaultPlan()


@dataclass
class FaultInjector:
    """Draws fates for one process; `salt` (e.g. the instance name) keeps processes apart while
    the whole run stays reproducible from the plan's seed."""

    plan: FaultPlan
    salt: str = ""
    counts: dict[Fate, int] = field(default_factory=lambda: dict.fromkeys(Fate, 0))
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.plan.seed}:{self.salt}")

    def fate(self) -> tuple[Fate, float]:
        """The fate of the next message, and the delay for Fate.DELAY."""
        if not self.plan.active:
            return Fate.DELIVER, 0.0
        draw = self._rng.random()
        plan = self.plan
        if draw < plan.drop:
            fate = Fate.DROP
        elif draw < plan.drop + plan.duplicate:
            fate = Fate.DUPLICATE
        elif draw < plan.drop + plan.duplicate + plan.delay:
            fate = Fate.DELAY
        else:
            fate = Fate.DELIVER
        self.counts[fate] += 1
        return fate, self._rng.uniform(0, plan.max_delay) if fate is Fate.DELAY else 0.0
