"""The projector's pipeline (projections/pipeline.py): the next batch is fetched while the one
before commits, but commits run one at a time in order, none runs after one that did not
commit, and no more than `depth` batches are held. Commits here are coroutines the test
releases by hand: no database, no sleeps."""

from __future__ import annotations

import asyncio

import pytest

from projections.pipeline import CommitPipeline, in_sequence


class Commits:
    """Commits that each wait for the test's word; what started and finished, in order."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.release: dict[str, asyncio.Future[bool]] = {}

    def commit(self, name: str):
        self.release[name] = asyncio.get_running_loop().create_future()

        async def run() -> bool:
            self.log.append(f"start {name}")
            committed = await self.release[name]
            self.log.append(f"end {name}")
            return committed

        return run


async def settled() -> None:
    """Let every ready task run until none is left to run (no time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_fetch_goes_on_while_the_batch_before_commits() -> None:
    commits, pipeline = Commits(), CommitPipeline(2)
    pipeline.submit(commits.commit("a"))
    await settled()
    assert commits.log == ["start a"]
    await asyncio.wait_for(pipeline.room(), 1)  # room for the next fetch: a still commits
    assert pipeline.committing and pipeline.held == 1


async def test_commits_run_one_at_a_time_in_order() -> None:
    commits, pipeline = Commits(), CommitPipeline(3)
    for name in "abc":
        pipeline.submit(commits.commit(name))
    await settled()
    assert commits.log == ["start a"]
    for name in "abc":
        commits.release[name].set_result(True)
        await settled()
    await pipeline.drain()
    assert commits.log == ["start a", "end a", "start b", "end b", "start c", "end c"]
    assert not pipeline.broken


async def test_no_more_than_depth_batches_are_held() -> None:
    commits, pipeline = Commits(), CommitPipeline(2)
    pipeline.submit(commits.commit("a"))
    await pipeline.room()
    pipeline.submit(commits.commit("b"))  # fetched while a commits: two held
    waiting = asyncio.create_task(pipeline.room())
    await settled()
    assert not waiting.done(), "a third batch would be fetched while two are held"
    commits.release["a"].set_result(True)
    await asyncio.wait_for(waiting, 1)
    assert pipeline.held == 1 and commits.log == ["start a", "end a", "start b"]


async def test_nothing_commits_after_a_batch_that_did_not() -> None:
    commits, pipeline = Commits(), CommitPipeline(2)
    pipeline.submit(commits.commit("a"))
    pipeline.submit(commits.commit("b"))
    commits.release["a"].set_result(False)  # stopping while the database was down
    await pipeline.drain()
    assert pipeline.broken
    pipeline.submit(commits.commit("c"))  # even once the others were collected
    await pipeline.drain()
    assert commits.log == ["start a", "end a"]


async def test_a_failed_commit_is_raised_and_the_later_ones_never_run() -> None:
    commits, pipeline = Commits(), CommitPipeline(2)
    pipeline.submit(commits.commit("a"))
    pipeline.submit(commits.commit("b"))
    commits.release["a"].set_exception(ConnectionError("lost the lock"))
    with pytest.raises(ConnectionError):
        await pipeline.room()
    await pipeline.drain()
    assert pipeline.broken and commits.log == ["start a"]


async def test_cancel_leaves_nothing_running() -> None:
    commits, pipeline = Commits(), CommitPipeline(2)
    pipeline.submit(commits.commit("a"))
    pipeline.submit(commits.commit("b"))
    await settled()
    await pipeline.cancel()
    assert pipeline.held == 0 and not pipeline.committing
    assert commits.log == ["start a"]


async def test_depth_one_fetches_only_after_the_commit() -> None:
    commits, pipeline = Commits(), CommitPipeline(1)
    pipeline.submit(commits.commit("a"))
    waiting = asyncio.create_task(pipeline.room())
    await settled()
    assert not waiting.done()
    commits.release["a"].set_result(True)
    await asyncio.wait_for(waiting, 1)
    with pytest.raises(ValueError):
        CommitPipeline(0)


@pytest.mark.parametrize(
    ("delivered", "expected", "ok"),
    [
        ([5, 6, 7], 5, True),
        ([], 5, True),
        ([6, 7], 5, False),  # 5 went missing: a lost fetch reply
        ([5, 7], 5, False),  # a hole inside the batch
        ([4, 5], 5, False),  # an old delivery came back
    ],
)
def test_a_batch_is_applied_only_when_its_deliveries_follow_on(
    delivered: list[int], expected: int, ok: bool
) -> None:
    assert in_sequence(delivered, expected) is ok
