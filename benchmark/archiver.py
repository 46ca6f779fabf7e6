"""The archiver beside a bench run with a finite live horizon: one real process, started the way
the bench starts `serve` processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ARCHIVE_COMMAND = ("archive", "run")


def start_archiver(
    url: str, every_s: float, log_dir: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`natsbank archive run --every S` against `url`, its output in log_dir/archiver.log."""
    command = [sys.executable, "-m", "eventsource.cli", *ARCHIVE_COMMAND]
    environment = {**os.environ, **(env or {}), "NATS_URL": url}
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "archiver.log", "ab") as log:
        return subprocess.Popen(
            [*command, "--every", f"{every_s:g}"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
