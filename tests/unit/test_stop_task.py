"""`stop_task`: a background loop around nats-py requests ends when told, even when Python
3.11's `asyncio.wait_for` drops the cancellation (the `bench --projector` hang)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from eventsource.adapters.tasks import stop_task


class Requests:
    """A loop of requests like a lag sampler's: each waits, through `asyncio.wait_for` as
    nats-py does, for an answer the test gives."""

    def __init__(self) -> None:
        self.answer: asyncio.Future | None = None
        self.answered = 0
        self.waiting = asyncio.Event()

    async def run(self) -> None:
        while True:
            self.answer = asyncio.get_running_loop().create_future()
            self.waiting.set()
            await asyncio.wait_for(self.answer, 60)
            self.waiting.clear()
            self.answered += 1

    async def answer_now(self) -> None:
        await self.waiting.wait()
        assert self.answer is not None
        self.answer.set_result(None)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for keeps cancellations since 3.12")
async def test_one_cancel_is_lost_when_the_answer_arrives_in_the_same_turn() -> None:
    requests = Requests()
    task = asyncio.create_task(requests.run())
    await requests.answer_now()
    task.cancel()  # in the same turn as the answer: wait_for returns it, the cancel is dropped
    await asyncio.wait({task}, timeout=0.5)
    assert not task.done() and requests.answered == 1  # the loop went on to its next request
    await stop_task(task)


async def test_stop_task_ends_the_loop_even_when_a_cancel_is_lost() -> None:
    requests = Requests()
    task = asyncio.create_task(requests.run())
    await requests.answer_now()
    await stop_task(task)  # its first cancel comes in the same turn as the answer
    assert task.done() and task.cancelled()
    assert requests.answered == 1


async def test_stop_task_drops_what_the_task_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("already failed")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await stop_task(task)
    assert task.done()
