"""Stopping a background task for sure.

`task.cancel()` then `await task` can hang forever on Python 3.11: `asyncio.wait_for`, which
nats-py uses for every request, returns the answer and drops the cancellation when the two
arrive in the same turn of the event loop (cpython gh-86296, fixed in 3.12). A loop around such
a request then goes on with its cancellation lost; measured: `bench --projector both` hung in
1 run of ~40 after its last transfer, waiting for its lag sampler (the CI's timeout killed it).
So a task is cancelled again until it has ended.
"""

from __future__ import annotations

import asyncio
import contextlib

CANCEL_AGAIN_S = 0.5  # how long a cancelled task gets before it is cancelled once more


async def stop_task(task: asyncio.Task) -> None:
    """Cancel `task` until it has ended; what it raised is dropped (it was told to stop)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_AGAIN_S)
    with contextlib.suppress(BaseException):
        task.result()
