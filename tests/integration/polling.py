"""Waiting, in the test's event loop, for something the services or a projector do on their own:
poll, never a timed assert."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(check, what: str, timeout: float = 30.0):
    """Poll `check` (async, returns a truthy value when done) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (found := await check()):
        assert loop.time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.1)
    return found


async def eventually(
    check: Callable, what: str, timeout: float = 60.0, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(interval)
