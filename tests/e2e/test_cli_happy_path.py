"""What a newcomer types, in order: a dev cluster, the streams, two accounts, a service, one
transfer, its status, the balances, the audit and the replay."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cli import Cli
from tests.e2e.polling import eventually


def _actions(changes: list[dict]) -> dict[str, str]:
    return {change["name"]: change["action"] for change in changes}


def test_a_newcomer_moves_money_from_one_bank_to_another(dev_cluster: Cli, tmp_path: Path) -> None:
    natsbank = dev_cluster
    status = natsbank.json("dev", "status", "--json")
    assert status["running"] is True
    assert [node["jetstream"] for node in status["nodes"]] == ["ok"]

    # streams init: a dry run first creates nothing, then init creates, then nothing changes.
    planned = _actions(natsbank.json("streams", "init", "--dry-run", "--json"))
    assert "DEADLETTER" in planned and len(planned) >= 3
    assert set(planned.values()) == {"created"}
    table = natsbank("streams", "init")
    assert table.returncode == 0, table.stderr
    assert "streams init" in table.stdout
    for name in planned:
        assert name in table.stdout
    assert table.stdout.count("created") == len(planned)
    assert _actions(natsbank.json("streams", "init", "--json")) == dict.fromkeys(
        planned, "unchanged"
    )
    longer = tmp_path / "streams.yaml"
    longer.write_text("dead_letter:\n  max_age: 120d\n")
    dry_run = _actions(
        natsbank.json("streams", "init", "--file", str(longer), "--dry-run", "--json")
    )
    assert dry_run["DEADLETTER"] == "updated"
    assert _actions(natsbank.json("streams", "init", "--json")) == dict.fromkeys(
        planned, "unchanged"
    )

    opened = natsbank("accounts", "open", "bank-a", "a1", "--currency", "EUR", "--fund", "100.00")
    assert opened.returncode == 0, opened.stderr
    assert "bank-a/a1 EUR balance 100.00" in opened.stdout
    assert natsbank("accounts", "open", "bank-b", "b1").returncode == 0
    assert _balances(natsbank) == {"bank-a/a1": "100.00", "bank-b/b1": "0.00"}

    with natsbank.background("serve", "bank-a", "bank-b", log=tmp_path / "serve.log"):
        submitted = natsbank.json(
            *("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", "10.50"),
            *("--wait", "--json"),
        )
        assert submitted["outcome"] == "OK"
        assert (submitted["phase"], submitted["side"]) == ("SETTLED", "submitter")
        assert (submitted["amount"], submitted["currency"]) == ("10.50", "EUR")
        transfer_id = submitted["id"]

        def both_sides_final() -> dict | None:
            found = natsbank.json("status", transfer_id, "--json")
            receiver = found["receiver"]
            return found if receiver and receiver["phase"] == "CONFIRMED" else None

        found = eventually(both_sides_final, within=30, what="the receiver's CONFIRMED phase")
        assert found["id"] == transfer_id
        assert (found["submitter"]["phase"], found["submitter"]["outcome"]) == ("SETTLED", "OK")
        assert (found["receiver"]["phase"], found["receiver"]["outcome"]) == ("CONFIRMED", "OK")
        assert found["receiver"]["debtor"] == "bank-a/a1"
        assert found["receiver"]["creditor"] == "bank-b/b1"

        assert _balances(natsbank) == {"bank-a/a1": "89.50", "bank-b/b1": "10.50"}
        audit = natsbank.json("audit", "--json", "--expect-final")
        assert audit["ok"] is True
        assert (audit["transfers_acked"], audit["final"], audit["in_flight"]) == (1, 1, 0)
        assert audit["outcomes"] == {"OK": 1}
        assert audit["funded"] == audit["balances"] == {"EUR": "100.00"}
        replay = natsbank.json("replay", "--json")
        assert replay["differences"] == []
        assert replay["accounts"] == 2 and replay["events"] > 0


def _balances(natsbank: Cli) -> dict[str, str]:
    return {
        f"{a['participant']}/{a['account']}": a["balance"]
        for a in natsbank.json("accounts", "list", "--json")
    }
