"""Waiting for what a command started in the background to show: poll, never a timed assert."""

from __future__ import annotations

import subprocess
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


def until_exit_0(
    run: Callable[[], subprocess.CompletedProcess[str]], *, within: float
) -> subprocess.CompletedProcess[str]:
    """Run a command again until it exits 0, for at most `within` seconds (plus its last run);
    return its last run either way, for the caller to assert on (a failure shows its error).
    For a probe of what was created a moment before: R3 streams and consumers elect their
    leaders first, which can take seconds on a loaded machine."""
    deadline = time.monotonic() + within
    while (done := run()).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    return done
