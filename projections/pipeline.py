"""The projector's pipeline: a batch's database transaction commits in the background while the
next batch is fetched and decoded, so the two waits (the fetch's round trip, the commit's) overlap
instead of adding up. Pure: asyncio only, no I/O of its own; the projector hands it the commits.

What exactly-once rests on (projections/projector.py):
- commits run one at a time, in the order they were submitted: batch i+1's transaction starts
  only after batch i's committed (the stored position only ever moves over contiguous batches);
- a commit that did not commit (returned False: the projector is stopping) or raised breaks the
  pipeline: the ones after it never run, since applying them would step over a batch that is not
  applied; the projector then resumes from the database position;
- at most `depth` batches are held at once: `room()` waits, before another fetch, until fewer than
  `depth` are committing or waiting to commit.
A batch is acked by its own commit, after its transaction: never before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

Commit = Callable[[], Awaitable[bool]]  # True once committed; False if it gave up (stopping)


def in_sequence(delivered: Sequence[int], expected: int) -> bool:
    """Whether consumer sequences `delivered` are exactly expected, expected + 1, ...: a hole (a
    lost fetch reply) or an old delivery coming back means the batch must not be applied."""
    return list(delivered) == list(range(expected, expected + len(delivered)))


class CommitPipeline:
    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"a pipeline holds at least one batch, not {depth}")
        self.depth = depth
        self.broken = False  # a commit did not commit: the later ones were dropped
        self._commits: deque[asyncio.Task[bool]] = deque()  # submitted, not yet collected
        self._last: asyncio.Task[bool] | None = None  # the latest submitted, collected or not

    @property
    def committing(self) -> bool:
        """Whether a submitted commit has not finished yet."""
        return any(not task.done() for task in self._commits)

    @property
    def held(self) -> int:
        """Batches submitted and not yet collected (a fetched one is held too, by the caller)."""
        return len(self._commits)

    def submit(self, commit: Commit) -> None:
        """Commit once every commit submitted before it has committed (never, if one did not)."""
        self._last = asyncio.create_task(self._after(self._last, commit))
        self._commits.append(self._last)

    async def room(self) -> None:
        """Wait until one more batch may be fetched; raises what a commit raised."""
        while self._commits and (self._commits[0].done() or len(self._commits) >= self.depth):
            await self._collect()

    async def drain(self) -> None:
        """Wait for every submitted commit (before the database is used for anything else);
        raises what a commit raised."""
        while self._commits:
            await self._collect()

    async def cancel(self) -> None:
        """Cancel what is left (leaving on an error: a cancelled transaction is rolled back)."""
        for task in self._commits:
            task.cancel()
        for task in self._commits:
            with contextlib.suppress(BaseException):
                await task
        self._commits.clear()

    async def _collect(self) -> None:
        task = self._commits[0]
        await asyncio.wait([task])  # if the caller is cancelled, the task stays for cancel()
        self._commits.popleft()
        if not task.result():  # raises what the commit raised
            self.broken = True

    @staticmethod
    async def _after(previous: asyncio.Task[bool] | None, commit: Commit) -> bool:
        if previous is not None:
            await asyncio.wait([previous])  # never raises; the collector reports its outcome
            if previous.cancelled() or previous.exception() is not None or not previous.result():
                return False
        return await commit()
