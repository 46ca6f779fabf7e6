"""Waiting for what a command started in the background to show: poll, never a timed assert."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, within: float, what: str) -> T:
    """Poll `probe` until it returns something; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached after {within:g} s")
        time.sleep(0.2)
