"""The baseline natsbank measures itself against: pgbench's built-in TPC-B-like script.

Each TPC-B-like transaction is a bank transfer in one commit: update an account, a teller and a
branch, read the account's balance, insert a history row. `pgbench -i -s N` creates N branches,
10*N tellers and 100,000*N accounts. With fsync on, this is what one PostgreSQL on the same
machine does for the same business operation, so it is an honest yardstick.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
from pathlib import Path

import anyio.to_thread
import msgspec

from eventsource.adapters.postgres import PgServer, pg_tool
from eventsource.core.errors import ConfigError, InfrastructureError

_TAIL_CHARS = 2000
_SYNCHRONOUS_COMMIT = ("on", "off")
# pgbench 14+ prints "without initial connection time"; 13 and older "excluding connections ...".
_TPS_EXCLUDING_CONNECT = re.compile(
    r"^tps = ([0-9.]+) \((?:without initial connection time|excluding connections establishing)\)",
    re.MULTILINE,
)
_TPS_ANY = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)
_TRANSACTIONS = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)  # pgbench 15+
_LATENCY_MS = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
_VERSION = re.compile(r"^pgbench \(([^)]+)\)", re.MULTILINE)


class TpcbResult(msgspec.Struct, frozen=True, kw_only=True):
    """One pgbench run, with the command lines so that a report can show how to reproduce it."""

    command: str
    init_command: str
    tps: float  # excluding connection time when pgbench reports it
    latency_avg_ms: float
    transactions: int
    failed_transactions: int
    clients: int
    threads: int
    seconds: int
    scale: int
    pgbench_version: str
    output: str  # pgbench's own report, verbatim
    # As the server reported them to a session opened like pgbench's (same PGOPTIONS).
    synchronous_commit: str = "on"
    fsync: str = "on"


def run_tpcb(
    target: str | PgServer,
    *,
    clients: int = 8,
    threads: int = 2,
    seconds: int = 10,
    scale: int = 10,
    synchronous_commit: str = "on",
) -> TpcbResult:
    """Recreate the pgbench tables at `scale`, then run the TPC-B-like script for `seconds`.

    `target` is a libpq DSN or a server from `eventsource.adapters.postgres`. The sessions run
    with `synchronous_commit` set through PGOPTIONS (a per-session setting: the server and
    other clients keep theirs), and the result records what the server then reports.
    """
    for name, value in (("clients", clients), ("threads", threads), ("seconds", seconds)):
        if value < 1:
            raise ConfigError(f"pgbench {name} must be at least 1, not {value}")
    if scale < 1:
        raise ConfigError(f"pgbench scale must be at least 1, not {scale}")
    if synchronous_commit not in _SYNCHRONOUS_COMMIT:
        raise ConfigError(f"synchronous_commit must be on or off, not {synchronous_commit!r}")
    dsn, pgbench = _dsn_and_pgbench(target)
    options = {"PGOPTIONS": f"-c synchronous_commit={synchronous_commit}"}
    init = [pgbench, "-i", "-s", str(scale), dsn]
    run = [pgbench, "-c", str(clients), "-j", str(threads), "-T", str(seconds), dsn]
    _run_pgbench(init, timeout=120 + 60 * scale)
    output = _run_pgbench(run, timeout=120 + 2 * seconds, env=options)
    fsync, synchronous = _settings(dsn, pgbench, options, ("fsync", "synchronous_commit"))
    result = parse_tpcb_output(
        output,
        command=f"PGOPTIONS={shlex.quote(options['PGOPTIONS'])} {shlex.join(run)}",
        init_command=shlex.join(init),
        clients=clients,
        threads=threads,
        seconds=seconds,
        scale=scale,
    )
    return msgspec.structs.replace(result, synchronous_commit=synchronous, fsync=fsync)


async def run_tpcb_async(
    target: str | PgServer,
    *,
    clients: int = 8,
    threads: int = 2,
    seconds: int = 10,
    scale: int = 10,
    synchronous_commit: str = "on",
) -> TpcbResult:
    """`run_tpcb` in a worker thread, so the event loop keeps serving while pgbench runs."""
    call = functools.partial(
        run_tpcb, target, clients=clients, threads=threads, seconds=seconds, scale=scale,
        synchronous_commit=synchronous_commit,
    )  # fmt: skip
    return await anyio.to_thread.run_sync(call)


def parse_tpcb_output(
    output: str,
    *,
    command: str,
    init_command: str,
    clients: int,
    threads: int,
    seconds: int,
    scale: int,
) -> TpcbResult:
    """Read the figures out of pgbench's report (stdout); raise if essential ones are missing."""
    tps = _TPS_EXCLUDING_CONNECT.search(output) or _TPS_ANY.search(output)
    transactions = _TRANSACTIONS.search(output)
    latency = _LATENCY_MS.search(output)
    if tps is None or transactions is None or latency is None:
        raise InfrastructureError(f"unexpected pgbench report: {output[-_TAIL_CHARS:]}")
    failed = _FAILED.search(output)
    version = _VERSION.search(output)
    return TpcbResult(
        command=command,
        init_command=init_command,
        tps=float(tps.group(1)),
        latency_avg_ms=float(latency.group(1)),
        transactions=int(transactions.group(1)),
        failed_transactions=int(failed.group(1)) if failed else 0,
        clients=clients,
        threads=threads,
        seconds=seconds,
        scale=scale,
        pgbench_version=version.group(1) if version else "unknown",
        output=output,
    )


def _dsn_and_pgbench(target: str | PgServer) -> tuple[str, str]:
    """The server's own pgbench when we know it, so client and server versions match."""
    if isinstance(target, PgServer):
        bundled = Path(target.bin_dir) / "pgbench"
        return target.dsn, str(bundled if bundled.is_file() else pg_tool("pgbench"))
    return target, str(pg_tool("pgbench"))


def _settings(dsn: str, pgbench: str, options: dict[str, str], names: tuple[str, ...]) -> list[str]:
    """The settings a session opened with `options` sees, read with the psql beside pgbench."""
    beside = Path(pgbench).with_name("psql")
    psql = str(beside if beside.is_file() else pg_tool("psql"))
    shows = [arg for name in names for arg in ("-c", f"SHOW {name}")]
    output = _run_pgbench([psql, "-X", "-A", "-t", *shows, dsn], timeout=60, env=options)
    values = output.split()
    if len(values) != len(names):
        raise InfrastructureError(f"unexpected psql output for {names}: {output[-_TAIL_CHARS:]}")
    return values


def _run_pgbench(argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    """pgbench's stdout; its stderr (progress, errors) only goes into the error when it fails."""
    # A decimal point whatever the user's locale; PGOPTIONS only as given (not the user's own).
    env = {
        **{k: v for k, v in os.environ.items() if k != "PGOPTIONS"},
        "LC_ALL": "C",
        **(env or {}),
    }
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise InfrastructureError(f"{shlex.join(argv)} ran longer than {timeout} s") from err
    except OSError as err:
        raise InfrastructureError(f"{argv[0]} could not run: {err}") from err
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-_TAIL_CHARS:]
        raise InfrastructureError(f"{shlex.join(argv)} failed (exit {done.returncode}): {tail}")
    return done.stdout
