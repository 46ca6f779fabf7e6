"""The archiver beside a bench run with a finite live horizon: one real process, started the way
the bench starts `serve` processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eventsource.core.errors import ConfigError

ARCHIVE_COMMAND = ("archive", "run")
COMMAND_CHECK_TIMEOUT_S = 60.0  # `natsbank archive run --help`: an import and a parse


def start_archiver(
    url: str, every_s: float, log_dir: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`natsbank archive run --every S` against `url`; a ConfigError in one line if this build
    has no such command (then the horizon cannot be measured)."""
    command = [sys.executable, "-m", "eventsource.cli", *ARCHIVE_COMMAND]
    environment = {**os.environ, **(env or {}), "NATS_URL": url}
    check = subprocess.run(
        [*command, "--help"],
        env=environment,
        capture_output=True,
        timeout=COMMAND_CHECK_TIMEOUT_S,
        check=False,
    )
    if check.returncode != 0:
        raise ConfigError(
            "a finite --horizon needs the archiver, and this build has no "
            "`natsbank archive run`; use --horizon forever"
        )
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "archiver.log", "ab") as log:
        return subprocess.Popen(
            [*command, "--every", f"{every_s:g}"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
