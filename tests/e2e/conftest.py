"""The real `natsbank` command as a subprocess, against a dev cluster it starts itself."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
COMMAND_TIMEOUT = 120.0


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


@pytest.fixture
def cli(natsbank_home: Path) -> Cli:
    """The CLI on this test's own empty home: no cluster, no NATS_URL."""
    return cli_for(natsbank_home)


@pytest.fixture(scope="module")
def dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """`natsbank dev up --nodes 1` on a home shared by the module; `dev down` afterwards, and
    no nats-server of that home may survive it."""
    home = tmp_path_factory.mktemp("natsbank-home")
    natsbank = cli_for(home)
    up = natsbank("dev", "up", "--nodes", "1")
    try:
        assert up.returncode == 0, up.stderr
        assert "NATS_URL=nats://127.0.0.1:" in up.stdout
        yield natsbank
    finally:
        down = natsbank("dev", "down")
        survivors = live_nats_servers(home)
        for pid in survivors:  # ours, by their config path: never leave them to the next run
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert down.returncode == 0, down.stderr
        assert survivors == []


@pytest.fixture(scope="module")
def bank(dev_cluster: Cli) -> Cli:
    """The dev cluster with its streams and EUR accounts a1, a2 (bank-a), b1 and b2 (bank-b);
    all but b2 funded with 1000.00."""
    dev_cluster.json("streams", "init", "--json")
    for participant, account in (("bank-a", "a1"), ("bank-a", "a2"), ("bank-b", "b1")):
        dev_cluster.json("accounts", "open", participant, account, "--fund", "1000.00", "--json")
    dev_cluster.json("accounts", "open", "bank-b", "b2", "--json")
    return dev_cluster


@pytest.fixture(scope="module")
def served_bank(bank: Cli) -> Iterator[Cli]:
    """`bank`, with one `natsbank serve bank-a bank-b` running for the whole module."""
    with bank.background("serve", "bank-a", "bank-b", log=bank.home / "serve.log"):
        yield bank
