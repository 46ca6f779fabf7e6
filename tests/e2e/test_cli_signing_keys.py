"""A deployment's signing keys, end to end with the real CLI: `natsbank deploy keys` writes the
seeds and the public signing-keys.json, `streams init --signing-keys` registers exactly those
(none generated), each bank's `serve` signs with its service seed (NATSBANK_SIGNING_KEY) and the
other bank accepts what it signs, and funding is accepted with the operator's seed
(NATSBANK_OPERATOR_KEY) and refused in one line with any other. On a dev cluster without
authorization, so that no dev credential or dev key can stand in for the deployment's."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import nkeys
import pytest

from eventsource.adapters.credentials import ensure_seed
from eventsource.adapters.signing_key_file import SIGNING_KEYS_FILE
from tests.e2e.cli import Cli, assert_one_line_error, cli_for
from tests.e2e.processes import dev_down

REPOSITORY_STREAMS = Path(__file__).resolve().parents[2] / "streams.yaml"
NO_PARTICIPANTS, TWO_BANKS = "\nparticipants: []\n", "\nparticipants: [bank-a, bank-b]\n"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, Path]]:
    """A 1-node dev cluster with no authorization, its streams initialised from the signing
    keys of `natsbank deploy keys` (bank-a, bank-b); `dev down` after."""
    home = tmp_path_factory.mktemp("natsbank-keys-home")
    streams = home / "streams.yaml"  # the repository's, serving the two banks
    streams.write_text(REPOSITORY_STREAMS.read_text().replace(NO_PARTICIPANTS, TWO_BANKS))
    natsbank = cli_for(home).with_env(NATSBANK_STREAMS_FILE=str(streams))
    secrets = home / "secrets"
    up = natsbank("dev", "up", "--nodes", "1", "--no-auth")
    try:
        assert up.returncode == 0, up.stderr
        assert NO_PARTICIPANTS in REPOSITORY_STREAMS.read_text()
        keys = natsbank("deploy", "keys", "--out", str(secrets))
        assert keys.returncode == 0, keys.stderr
        init = natsbank.with_env(NATSBANK_SIGNING_KEYS=str(secrets / SIGNING_KEYS_FILE))
        done = init("streams", "init")
        assert done.returncode == 0, done.stderr
        yield natsbank, secrets
    finally:
        dev_down(natsbank)


def test_streams_init_registers_the_file_s_keys_and_generates_none(
    deployed: tuple[Cli, Path],
) -> None:
    natsbank, _ = deployed
    assert not (natsbank.home / "dev" / "keys").exists()  # no dev key made for anyone
    # serve without the deployment's seed finds no key of its own: none was generated
    done = natsbank("serve", "bank-a")
    assert "no signing key for bank-a" in assert_one_line_error(done, 2)


def test_funding_is_signed_with_the_operator_seed_and_no_other(
    deployed: tuple[Cli, Path], tmp_path: Path
) -> None:
    natsbank, secrets = deployed
    operator = natsbank.with_env(NATSBANK_OPERATOR_KEY=str(secrets / "operator.nk"))
    opened = operator("accounts", "open", "bank-a", "a1", "--fund", "100.00")
    assert opened.returncode == 0, opened.stderr
    stranger = tmp_path / "stranger.nk"
    ensure_seed(stranger, nkeys.PREFIX_BYTE_OPERATOR)
    other = natsbank.with_env(NATSBANK_OPERATOR_KEY=str(stranger))
    refused = other("accounts", "fund", "bank-a", "a1", "5.00")
    assert "is not registered" in assert_one_line_error(refused, 2)
    balances = {a["account"]: a["balance"] for a in natsbank.json("accounts", "list", "--json")}
    assert balances["a1"] == "100.00"


def test_banks_signing_with_their_service_seeds_complete_a_transfer(
    deployed: tuple[Cli, Path], tmp_path: Path
) -> None:
    natsbank, secrets = deployed
    operator = natsbank.with_env(NATSBANK_OPERATOR_KEY=str(secrets / "operator.nk"))
    assert operator("accounts", "open", "bank-a", "a2", "--fund", "50.00").returncode == 0
    assert natsbank("accounts", "open", "bank-b", "b2").returncode == 0
    with contextlib.ExitStack() as serving:
        for bank in ("bank-a", "bank-b"):
            bank_env = natsbank.with_env(NATSBANK_SIGNING_KEY=str(secrets / f"service.{bank}.nk"))
            serving.enter_context(bank_env.background("serve", bank, log=tmp_path / f"{bank}.log"))
        submitted = natsbank.json(
            *("submit", "--from", "bank-a/a2", "--to", "bank-b/b2", "--amount", "20.00"),
            *("--wait", "--json"),
        )
    logs = "".join((tmp_path / f"{bank}.log").read_text() for bank in ("bank-a", "bank-b"))
    assert (submitted["outcome"], submitted["phase"]) == ("OK", "SETTLED"), logs
    assert "BAD_SIGNATURE" not in logs, logs
    balances = {a["account"]: a["balance"] for a in natsbank.json("accounts", "list", "--json")}
    assert (balances["a2"], balances["b2"]) == ("30.00", "20.00")
    audit = natsbank.json("audit", "--json")
    assert audit["ok"] is True, json.dumps(audit)
