"""What a decider asks of the archive: the final event of a transfer record that has left the
live ledger (docs/PROTOCOL.md section 7, "Permanent idempotency")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class ArchivedRecords(Protocol):
    async def latest(self, key: str) -> bytes | None:
        """The record's last event as the archive holds it; None: the archive never had it."""


class _NoArchive:
    """A ledger that keeps everything live: nothing was ever archived."""

    async def latest(self, key: str) -> bytes | None:
        return None


NO_ARCHIVE: ArchivedRecords = _NoArchive()


Archives = Callable[[int], ArchivedRecords]  # partition -> where its archived records are


def no_archives(partition: int) -> ArchivedRecords:
    return NO_ARCHIVE
