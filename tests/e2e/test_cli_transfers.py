"""Transfers through `natsbank submit` with a service running: an NDJSON file, a random load,
idempotent and conflicting resubmissions, and NATS_URL in place of the dev cluster."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.cli import Cli, assert_one_line_error, cli_for
from tests.e2e.polling import eventually


def _line(transfer_id: str, debtor: str, creditor: str, amount: str) -> str:
    (dp, da), (cp, ca) = debtor.split("/"), creditor.split("/")
    return json.dumps(
        {
            "id": transfer_id,
            "debtor": {"participant": dp, "account": da},
            "creditor": {"participant": cp, "account": ca},
            "amount": amount,
            "currency": "EUR",
        }
    )


def _audit_once_final(natsbank: Cli) -> dict:
    def final_and_clean() -> dict | None:
        done = natsbank("audit", "--json", "--expect-final")
        return json.loads(done.stdout) if done.returncode == 0 else None

    report = eventually(final_and_clean, within=60, what="every transfer final, audit clean")
    assert report["ok"] is True
    return report


def test_a_file_of_transfers_exits_1_and_lists_each_outcome(
    served_bank: Cli, tmp_path: Path
) -> None:
    batch = tmp_path / "batch.ndjson"
    batch.write_text(
        "\n".join(
            [
                _line("file-ok-1", "bank-a/a1", "bank-b/b2", "1.00"),
                _line("file-too-much", "bank-a/a2", "bank-b/b2", "5000000.00"),
                "",  # blank lines are skipped
                _line("file-ok-2", "bank-b/b1", "bank-a/a1", "2.50"),
                _line("file-ok-3", "bank-a/a2", "bank-b/b1", "0.01"),
            ]
        )
        + "\n"
    )

    done = served_bank("submit", "--file", str(batch), "--wait", "--json")

    assert done.returncode == 1, done.stderr
    rows = {row["id"]: row for row in json.loads(done.stdout)}
    assert list(rows) == ["file-ok-1", "file-too-much", "file-ok-2", "file-ok-3"]
    for transfer_id in ("file-ok-1", "file-ok-2", "file-ok-3"):
        assert (rows[transfer_id]["outcome"], rows[transfer_id]["cause"]) == ("OK", None)
    rejected = rows["file-too-much"]
    assert (rejected["outcome"], rejected["cause"]) == ("REJECTED", "INSUFFICIENT_FUNDS")
    assert rejected["phase"] == "SETTLED" and rejected["detail"]
    assert all(isinstance(row["ack"], int) and row["ack"] > 0 for row in rows.values())


def test_a_random_load_ends_final_with_a_clean_audit(served_bank: Cli) -> None:
    before = served_bank.json("audit", "--json")["transfers_acked"]

    pushed = served_bank.json("submit", "--random", "300", "--rate", "1000", "--json")

    assert pushed["submitted"] == pushed["acked"] == 300
    report = _audit_once_final(served_bank)
    assert report["transfers_acked"] - before == 300
    assert report["final"] == report["transfers_acked"] and report["in_flight"] == 0
    assert report["funded"] == report["balances"]
    assert served_bank.json("replay", "--json")["differences"] == []


def test_the_same_transfer_submitted_twice_is_one_transfer(served_bank: Cli) -> None:
    args = ("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", "3.00")
    first = served_bank.json(*args, "--id", "twice-1", "--wait", "--json")
    again = served_bank.json(*args, "--id", "twice-1", "--wait", "--json")

    assert first["outcome"] == again["outcome"] == "OK"
    assert again["ack"] == first["ack"]
    assert served_bank.json("status", "twice-1", "--json")["submitter"]["amount"] == "3.00"


def test_an_id_reused_with_other_content_is_refused(served_bank: Cli) -> None:
    args = ("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--id", "reused-1")
    assert served_bank.json(*args, "--amount", "4.00", "--wait", "--json")["outcome"] == "OK"
    events_before = _audit_once_final(served_bank)["events"]

    line = assert_one_line_error(served_bank(*args, "--amount", "4.01", "--wait"), 1)

    assert "ID_CONFLICT" in line and "reused-1" in line
    status = served_bank.json("status", "reused-1", "--json")
    assert status["submitter"]["amount"] == "4.00"
    assert served_bank.json("audit", "--json")["events"] == events_before


def test_nats_url_reaches_the_cluster_from_any_home(served_bank: Cli, tmp_path: Path) -> None:
    url = served_bank.json("dev", "status", "--json")["url"]
    elsewhere = cli_for(tmp_path)  # no dev cluster under this home

    assert_one_line_error(elsewhere("accounts", "list", "--json"), 2)
    accounts = elsewhere.with_env(NATS_URL=url).json("accounts", "list", "--json")

    assert {f"{a['participant']}/{a['account']}" for a in accounts} >= {"bank-a/a1", "bank-b/b1"}
    assert accounts == served_bank.json("accounts", "list", "--json")


def test_nats_url_wins_over_the_dev_cluster(served_bank: Cli) -> None:
    nowhere = served_bank.with_env(NATS_URL="nats://127.0.0.1:1")

    line = assert_one_line_error(nowhere("accounts", "list", "--json"), 2)

    assert "nats://127.0.0.1:1" in line and "NATS_URL" in line
