"""Fixtures of the e2e tests: the CLI on an empty home, and a dev cluster it starts itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli import Cli, cli_for
from tests.e2e.processes import dev_down


@pytest.fixture
def cli(natsbank_home: Path) -> Cli:
    """The CLI on this test's own empty home: no cluster, no NATS_URL."""
    return cli_for(natsbank_home)


@pytest.fixture(scope="module")
def dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """`natsbank dev up --nodes 1 --no-auth` on a home shared by the module; `dev down`
    afterwards, and no nats-server of that home may survive it. (test_cli_auth.py runs the
    default, with authorization.)"""
    home = tmp_path_factory.mktemp("natsbank-home")
    natsbank = cli_for(home)
    up = natsbank("dev", "up", "--nodes", "1", "--no-auth")
    try:
        assert up.returncode == 0, up.stderr
        assert "NATS_URL=nats://127.0.0.1:" in up.stdout
        yield natsbank
    finally:
        dev_down(natsbank)


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
