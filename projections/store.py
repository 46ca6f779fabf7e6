"""What the projector needs from a database; PostgresDb and SqliteDb both provide it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from eventsource.core.errors import InfrastructureError
from projections.model import LedgerEvent


class LostLeadership(InfrastructureError):
    """The database session that held the projection lock is gone, and another projector
    holds the lock now: this one must stop applying (it would race the other one)."""


@dataclass(frozen=True, slots=True)
class Position:
    stream: str
    seq: int
    last_event_at: int | None  # unix ms stamped on the last applied event


@dataclass(frozen=True, slots=True)
class ProjectedState:
    """Rows by KV key, in the same shape for every backend (what the contract tests compare).

    accounts: (participant, account, currency, balance, pending_debits, pending_credits, closed)
    transfers: (participant, side, id, amount, currency, phase, outcome, cause, detail,
                (reserved_at, settled_at, decided_at, confirmed_at) in unix ms)
    """

    accounts: dict[str, tuple]
    transfers: dict[str, tuple]


class ProjectionDb(Protocol):
    async def open(self) -> None:
        """Connect and apply the migrations."""

    async def close(self) -> None: ...

    async def reconnect(self) -> None: ...

    async def try_lead(self, name: str) -> bool:
        """Become the one active projector of `name`; False while another one is."""

    async def position(self, stream: str) -> int:
        """Where to resume: every event of `stream` at or below it is applied everywhere."""

    async def apply(self, stream: str, last_seq: int, events: list[LedgerEvent]) -> int:
        """Apply the events above the stored position, store `last_seq`, atomically."""

    async def positions(self) -> list[Position]: ...

    async def reset(self) -> None:
        """Delete every row and position (rebuild)."""

    async def state(self) -> ProjectedState: ...
