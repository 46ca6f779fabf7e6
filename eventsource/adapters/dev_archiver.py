"""The dev cluster's archiver: one detached `natsbank archive run` next to the nats-server
nodes (`natsbank dev up` starts it, `dev down` stops it). It waits until `streams init`
declares a live horizon, and archives from then on; its output goes to archiver.log."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PID_FILE = "archiver.pid"
LOG_FILE = "archiver.log"
STOP_GRACE_S = 10.0
DEV_EVERY_S = 10  # a development cluster: archive soon after the horizon passes


def archiver_pid(state_dir: Path) -> int | None:
    """The running dev archiver's pid, or None."""
    try:
        pid = int((state_dir / PID_FILE).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if b"archive" in cmdline and b"run" in cmdline else None


def start_archiver(state_dir: Path, nats_url: str) -> int:
    """Start it (once: a running one is kept); returns its pid."""
    running = archiver_pid(state_dir)
    if running is not None:
        return running
    env = {**os.environ, "NATS_URL": nats_url}
    with open(state_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "eventsource.cli",
                "archive",
                "run",
                "--every",
                str(DEV_EVERY_S),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    (state_dir / PID_FILE).write_text(str(proc.pid))
    return proc.pid


def stop_archiver(state_dir: Path) -> bool:
    """SIGTERM it (SIGKILL after a grace period); False if none was running."""
    pid = archiver_pid(state_dir)
    (state_dir / PID_FILE).unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True
