"""The processes a command left running, found in /proc: what a test checks after `dev down`."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from tests.e2e.cli import Cli


def live_nats_servers(marker: Path) -> list[int]:
    """Pids of running nats-server processes whose command line names a file under `marker`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile; a zombie reads empty and counts as stopped
        if argv[0].endswith(b"nats-server") and f"{marker}/".encode() in b" ".join(argv):
            pids.append(int(entry.name))
    return pids


def processes_with_env(name: str, value: str) -> list[int]:
    """Pids of live processes started with `name=value` in their environment (children
    inherit it, so this finds whatever a command left behind)."""
    wanted = f"{name}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ:
            pids.append(int(entry.name))
    return pids


def dev_down(natsbank: Cli) -> None:
    """`natsbank dev down`, and no nats-server of that home may survive it: any that does is
    killed (ours, by its config path: never left to the next run) and fails the test."""
    down = natsbank("dev", "down")
    survivors = live_nats_servers(natsbank.home)
    for pid in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert down.returncode == 0, down.stderr
    assert survivors == []
