"""`natsbank dev up` turns authorization on by default (issue 13): every command finds the
credential of the role it needs in the dev state, two banks each serve with their own (which
also signs their messages), and a transfer between them completes; a command with a wrong
credential gets a one-line refusal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli import Cli, cli_for
from tests.e2e.polling import eventually
from tests.e2e.processes import dev_down


@pytest.fixture(scope="module")
def authorized_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """`natsbank dev up` (authorization on, bank-a and bank-b registered); `dev down` after."""
    home = tmp_path_factory.mktemp("natsbank-auth-home")
    natsbank = cli_for(home)
    up = natsbank("dev", "up", "--nodes", "1")
    try:
        assert up.returncode == 0, up.stderr
        assert "authorization on" in up.stdout
        yield natsbank
    finally:
        dev_down(natsbank)


def test_two_banks_with_their_own_credentials_move_money(
    authorized_dev: Cli, tmp_path: Path
) -> None:
    natsbank = authorized_dev
    seeds = natsbank.home / "dev" / "credentials"
    assert {"service.bank-a.nk", "client.bank-b.nk", "admin.nk"} <= {
        p.name for p in seeds.iterdir()
    }
    assert natsbank("accounts", "open", "bank-a", "a1", "--fund", "100.00").returncode == 0
    assert natsbank("accounts", "open", "bank-b", "b1").returncode == 0
    with natsbank.background("serve", "bank-a", "bank-b", log=tmp_path / "serve.log"):
        submitted = natsbank.json(
            *("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", "10.50"),
            *("--wait", "--json"),
        )
        assert (submitted["outcome"], submitted["phase"]) == ("OK", "SETTLED")
    balances = {
        f"{a['participant']}/{a['account']}": a["balance"]
        for a in natsbank.json("accounts", "list", "--json")
    }
    assert balances == {"bank-a/a1": "89.50", "bank-b/b1": "10.50"}
    audit = natsbank.json("audit", "--json")
    assert audit["ok"] is True and audit["funded"] == {"EUR": "100.00"}
    # A random load between both banks: each bank's share through its own client credential.
    with natsbank.background("serve", "bank-a", "bank-b", log=tmp_path / "serve-load.log"):
        load = natsbank.json("submit", "--random", "20", "--seed", "3", "--json")
    assert load["submitted"] == load["acked"] == 20
    assert natsbank.json("audit", "--json")["ok"] is True
    # each bank signed with its service nkey: no second, separate dev key was made for it
    keys = natsbank.home / "dev" / "keys"
    assert not (keys / "bank-a.nk").exists() and not (keys / "bank-b.nk").exists()


def test_a_bank_credential_cannot_fund_and_says_why(authorized_dev: Cli) -> None:
    natsbank = authorized_dev
    bank_a = natsbank.home / "dev" / "credentials" / "service.bank-a.nk"
    done = natsbank("--nkey", str(bank_a), "accounts", "fund", "bank-a", "a9", "1.00")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "error:" in done.stderr.splitlines()[-1]  # the command's one-line error comes last
    assert "refused this credential" in done.stderr.splitlines()[-1]  # at once, not retried
    balances = natsbank.json("accounts", "list", "--json")
    assert all(a["account"] != "a9" for a in balances)


def test_the_operator_tools_work_with_their_own_credentials(
    authorized_dev: Cli, tmp_path: Path
) -> None:
    """audit, replay, health, archive status, dead-letters and the projector each connect
    with their own credential (their own account) and read without creating consumers."""
    natsbank = authorized_dev
    assert natsbank("accounts", "open", "bank-a", "a3", "--fund", "20.00").returncode == 0
    assert natsbank("accounts", "open", "bank-b", "b3").returncode == 0
    sqlite = tmp_path / "projection"
    with (
        natsbank.background("serve", "bank-a", "bank-b", log=tmp_path / "serve.log"),
        natsbank.background("projections", "run", "--sqlite", str(sqlite), log=tmp_path / "p.log"),
    ):
        submitted = natsbank.json(
            *("submit", "--from", "bank-a/a3", "--to", "bank-b/b3", "--amount", "2.00"),
            *("--wait", "--json"),
        )
        assert submitted["outcome"] == "OK"
        projected = natsbank(
            "status", submitted["id"], "--wait-projection", "--sqlite", str(sqlite)
        )
        assert projected.returncode == 0, projected.stderr
        assert "projection: has applied these records" in projected.stdout
    for command in (("replay",), ("health",), ("archive", "status", "--json")):
        done = natsbank(*command)
        assert done.returncode == 0, (command, done.stderr)
    assert natsbank.json("dead-letters", "list", "--json")["letters"] == []
    assert natsbank.json("audit", "--expect-final", "--json")["ok"] is True


def test_a_file_with_several_debtor_banks_is_refused_in_one_line(
    authorized_dev: Cli, tmp_path: Path
) -> None:
    """A bank's client submits for its own bank only: one command, one bank."""
    natsbank = authorized_dev
    transfers = tmp_path / "transfers.jsonl"

    def line(tid: str, debtor: tuple[str, str], creditor: tuple[str, str]) -> dict:
        (dp, da), (cp, ca) = debtor, creditor
        return {
            "id": tid,
            "debtor": {"participant": dp, "account": da},
            "creditor": {"participant": cp, "account": ca},
            "amount": "1.00",
            "currency": "EUR",
        }

    lines = [
        line("two-banks-1", ("bank-a", "a1"), ("bank-b", "b1")),
        line("two-banks-2", ("bank-b", "b1"), ("bank-a", "a1")),
    ]
    transfers.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = natsbank("submit", "--file", str(transfers))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert "submits for its own bank only" in last and "bank-a, bank-b" in last


def test_core_mode_serves_across_bank_accounts(authorized_dev: Cli, tmp_path: Path) -> None:
    """`serve --mode core` with each bank's own credential: the protocol messages cross from
    one bank's account to the other's, and the transfer completes on both sides."""
    natsbank = authorized_dev
    assert natsbank("accounts", "open", "bank-a", "a4", "--fund", "10.00").returncode == 0
    assert natsbank("accounts", "open", "bank-b", "b4").returncode == 0
    serve = ("serve", "bank-a", "bank-b", "--mode", "core", "--resend-after", "0.5")
    with natsbank.background(*serve, log=tmp_path / "serve-core.log"):
        submitted = natsbank.json(
            *("submit", "--from", "bank-a/a4", "--to", "bank-b/b4", "--amount", "4.00"),
            *("--wait", "--json"),
        )
        assert submitted["outcome"] == "OK"
        status = eventually(
            lambda: _confirmed(natsbank, submitted["id"]), within=30, what="bank-b confirms"
        )
    assert status["receiver"]["outcome"] == "OK"


def _confirmed(natsbank: Cli, transfer_id: str) -> dict | None:
    status = natsbank.json("status", transfer_id, "--json")
    receiver = status.get("receiver")
    return status if receiver and receiver["phase"] == "CONFIRMED" else None
