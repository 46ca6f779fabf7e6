"""`psql` as a user runs it, with the command line that `natsbank dev status` prints."""

from __future__ import annotations

import shlex
import subprocess


def query(psql: str, sql: str) -> str:
    return subprocess.run(
        [*shlex.split(psql), "-At", "-c", sql], capture_output=True, text=True, check=True
    ).stdout
