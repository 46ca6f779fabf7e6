"""What a projector follows: the streams of one store, and how their messages become rows. One
projector engine (projections/projector.py) serves both stores; `bootstrap.projection_source`
chooses the source of the configured store. This is the independent store's: the state subjects
of every ledger partition (projections/shared/ has the shared store's)."""

from __future__ import annotations

from typing import Protocol

from nats.aio.client import Client

from eventsource.adapters.registry import layout_of
from eventsource.core.subjects import ledger_stream, state_prefix
from projections.archive_replay import replay_archive
from projections.compare import expected_rows
from projections.model import Row, decode_row
from projections.store import ProjectedState, ProjectionDb


class Source(Protocol):
    streams: list[str]  # the followed streams; the projector's consumer k reads streams[k]

    def filter(self, k: int) -> str:
        """The subjects of streams[k] that hold state events."""

    def rows(self, subject: str, data: bytes) -> list[Row]:
        """The rows of one state event (none that are not the projection's); raises
        Undecodable."""

    async def replay(self, nc: Client, store: ProjectionDb, k: int, position: int) -> None:
        """Apply what left streams[k] for an archive after `position` (a rebuild)."""

    async def expected(self, nc: Client) -> ProjectedState:
        """I6: the rows the state implies, read exactly (phase times aside)."""

    async def archived(self, nc: Client) -> bool:
        """Whether final records leave the live state (the projection keeps them)."""


def state_filter(partition: int, participant: str | None) -> str:
    return f"{state_prefix(partition)}{participant + '.' if participant else ''}>"


class LedgerSource:
    """The independent store: per partition, the state events (`participant`'s keys only)."""

    def __init__(self, partitions: int, participant: str | None = None) -> None:
        self.streams = [ledger_stream(k) for k in range(partitions)]
        self.participant = participant

    def filter(self, k: int) -> str:
        return state_filter(k, self.participant)

    def rows(self, subject: str, data: bytes) -> list[Row]:
        return [decode_row(subject, data)]

    async def replay(self, nc: Client, store: ProjectionDb, k: int, position: int) -> None:
        await replay_archive(nc, store, k, position, self.filter(k)[:-1])

    async def expected(self, nc: Client) -> ProjectedState:
        return await expected_rows(nc, len(self.streams))

    async def archived(self, nc: Client) -> bool:
        return (await layout_of(nc)).history.bounded
