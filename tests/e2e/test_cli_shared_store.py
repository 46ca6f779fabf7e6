"""The shared store through the real CLI: `--store shared` (and NATSBANK_STORE) on streams
init, accounts, serve, submit --wait, status and audit; a bad store name is one line."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cli import Cli, assert_one_line_error


def test_money_moves_in_one_step_on_the_shared_store(dev_cluster: Cli, tmp_path: Path) -> None:
    natsbank = dev_cluster
    changes = natsbank.json("streams", "init", "--store", "shared", "--json")
    assert {c["name"]: c["action"] for c in changes}["KV_shared"] == "created"
    shared = natsbank.with_env(NATSBANK_STORE="shared")  # the environment sets it too
    assert {c["action"] for c in shared.json("streams", "init", "--json")} == {"unchanged"}
    shared.json("accounts", "open", "bank-a", "a1", "--fund", "100.00", "--json")
    shared.json("accounts", "open", "bank-b", "b1", "--json")
    funded = shared.json("accounts", "fund", "bank-b", "b1", "5.00", "--json")
    assert funded["balance"] == "5.00"

    with shared.background("serve", "bank-a", "bank-b", log=tmp_path / "serve.log"):
        ok = shared.json(
            *("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", "10.50"),
            *("--id", "shared-ok", "--wait", "--json"),
        )
        assert (ok["outcome"], ok["stream"]) == ("OK", "KV_shared")
        poor = shared(
            *("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", "500.00"),
            *("--id", "shared-poor", "--wait", "--json"),
        )
        assert poor.returncode == 1, poor.stderr  # a REJECTED outcome with --wait
        assert '"cause":"INSUFFICIENT_FUNDS"' in poor.stdout
        again = shared.json(
            *("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", "10.5"),
            *("--id", "shared-ok", "--wait", "--json"),
        )  # a duplicate: the stored decision, not a second debit
        assert again["outcome"] == "OK"

    status = shared.json("status", "shared-ok", "--json")
    assert (status["store"], status["outcome"], status["amount"]) == ("shared", "OK", "10.50")
    balances = {
        f"{a['participant']}/{a['account']}": a["balance"]
        for a in shared.json("accounts", "list", "--json")
    }
    assert balances == {"bank-a/a1": "89.50", "bank-b/b1": "15.50"}
    audit = shared.json("audit", "--expect-final", "--json")
    assert audit["ok"] is True, audit["violations"]
    assert (audit["transfers_acked"], audit["final"]) == (2, 2)
    assert audit["funded"] == audit["balances"] == {"EUR": "105.00"}
    table = shared("audit")
    assert table.returncode == 0 and "shared store" in table.stdout

    line = assert_one_line_error(natsbank("audit", "--store", "both"), 2)
    assert "unknown store 'both'" in line
    assert_one_line_error(natsbank.with_env(NATSBANK_STORE="nope")("status", "x"), 2)
    missing = assert_one_line_error(shared("status", "no-such-transfer"), 1)
    assert "unknown transfer" in missing
