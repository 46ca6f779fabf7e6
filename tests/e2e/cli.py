"""The real `natsbank` command as a subprocess, and how a test expects it to refuse."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

COMMAND_TIMEOUT = 120.0
SERVE_START_TIMEOUT = 60.0
SERVING_LINE = b"serving "  # what `serve` prints once it runs (cli/serve.py `_announce`)


@dataclass(frozen=True)
class Cli:
    """Runs `python -m eventsource.cli ARGS` with exactly this environment and directory."""

    env: dict[str, str]
    cwd: Path

    @property
    def home(self) -> Path:
        return Path(self.env["NATSBANK_HOME"])

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "eventsource.cli", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def json(self, *args: str) -> Any:
        """Run a command that must succeed, and decode its JSON output."""
        done = self(*args)
        assert done.returncode == 0, f"natsbank {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout)

    def with_env(self, **changes: str | None) -> Cli:
        """The same command with variables set, or removed where the value is None."""
        env = {**self.env, **{k: v for k, v in changes.items() if v is not None}}
        for name in [k for k, v in changes.items() if v is None]:
            env.pop(name, None)
        return replace(self, env=env)

    @contextlib.contextmanager
    def background(self, *args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
        """A long-running command (`serve`); must exit 0 on SIGTERM at the end of the block."""
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "eventsource.cli", *args],
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            yield proc
        finally:
            if args[0] == "serve":
                _until_serving(proc, log)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = None
        output = log.read_text(errors="replace")
        assert code == 0, f"natsbank {' '.join(args)} ended with {code} on SIGTERM:\n{output}"
        assert "Traceback" not in output, output


def _until_serving(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until `serve` has announced itself (its SIGTERM handling is in place from then on),
    or has ended: a block whose work was done before the process had even started must not stop
    it mid-start, where SIGTERM still kills it (-15). Bounded: the exit check judges what came."""
    deadline = time.monotonic() + SERVE_START_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        if SERVING_LINE in log.read_bytes():
            return
        time.sleep(0.1)


def cli_for(home: Path) -> Cli:
    """A CLI on its own home, with no NATS_URL inherited from whoever runs the tests."""
    env = {**os.environ, "NATSBANK_HOME": str(home)}
    env.pop("NATS_URL", None)
    return Cli(env=env, cwd=home)


def assert_one_line_error(done: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The CLI refused in one clear line on stderr, with `exit_code`; returns that line."""
    assert done.returncode == exit_code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    return lines[0]


def ndjson_line(transfer_id: str = "file-1", amount: object = "1.00") -> str:
    """One line of a `submit --file`: bank-a/a1 pays bank-b/b1."""
    return json.dumps(
        {
            "id": transfer_id,
            "debtor": {"participant": "bank-a", "account": "a1"},
            "creditor": {"participant": "bank-b", "account": "b1"},
            "amount": amount,
            "currency": "EUR",
        }
    )
