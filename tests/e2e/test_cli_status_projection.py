"""`natsbank status ID --wait-projection`: read-your-writes from the command line. It returns
once the projection holds both records of the transfer as status read them, so a query right
after sees the outcome; without a projector it gives up in one line with exit 1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli import Cli, assert_one_line_error, cli_for
from tests.e2e.psql import query


@pytest.fixture(scope="module")
def bank_with_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """`dev up --nodes 1 --postgres`, streams, bank-a/a1 (funded) and bank-b/b1, and one
    `serve bank-a bank-b` for the module; `dev down` afterwards."""
    home = tmp_path_factory.mktemp("natsbank-home")
    natsbank = cli_for(home)
    up = natsbank("dev", "up", "--nodes", "1", "--postgres")
    try:
        assert up.returncode == 0, up.stderr
        natsbank.json("streams", "init", "--json")
        natsbank.json("accounts", "open", "bank-a", "a1", "--fund", "100.00", "--json")
        natsbank.json("accounts", "open", "bank-b", "b1", "--json")
        with natsbank.background("serve", "bank-a", "bank-b", log=home / "serve.log"):
            yield natsbank
    finally:
        down = natsbank("dev", "down")
        assert down.returncode == 0, down.stderr


def submit(natsbank: Cli, amount: str) -> dict:
    done = natsbank.json(
        "submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", amount, "--wait",
        "--json",
    )  # fmt: skip
    assert done["outcome"] == "OK", done
    return done


def test_status_waits_until_a_query_sees_the_outcome(bank_with_postgres: Cli) -> None:
    natsbank = bank_with_postgres
    postgres = natsbank.json("dev", "status", "--json")["postgres"]
    sqlite = natsbank.home / "projection-sqlite"
    with (
        natsbank.background("projections", "run", log=natsbank.home / "projector-pg.log"),
        natsbank.background(
            "projections", "run", "--sqlite", str(sqlite), log=natsbank.home / "projector-sq.log"
        ),
    ):
        transfer_id = submit(natsbank, "3.50")["id"]
        waited = natsbank(
            "status", transfer_id, "--wait-projection", "--dsn", postgres["dsn"], "--json"
        )
        assert waited.returncode == 0, waited.stderr
        # Right after, with no polling: both sides' rows are there with the outcome.
        rows = query(
            postgres["psql"],
            "select participant, side, outcome, amount from transfers "
            f"where transfer_id = '{transfer_id}' order by side",
        )
        assert rows == "bank-b|receiver|OK|3.50\nbank-a|submitter|OK|3.50\n"
        applied = json.loads(waited.stdout)["projection"]["applied"]
        assert applied["KV_ledger_0"] >= json.loads(waited.stdout)["receiver"]["sequence"]

        in_files = natsbank("status", transfer_id, "--wait-projection", "--sqlite", str(sqlite))
        assert in_files.returncode == 0, in_files.stderr
        assert "projection: has applied these records" in in_files.stdout


def test_status_gives_up_in_one_line_when_no_projector_runs(bank_with_postgres: Cli) -> None:
    natsbank = bank_with_postgres
    dsn = natsbank.json("dev", "status", "--json")["postgres"]["dsn"]
    transfer_id = submit(natsbank, "1.25")["id"]
    late = natsbank("status", transfer_id, "--wait-projection", "--dsn", dsn, "--timeout", "0.5")
    line = assert_one_line_error(late, 1)
    assert "did not catch up within 0.5 s" in line and "not yet" in line
    assert late.stdout == ""
    usage = natsbank("status", transfer_id, "--dsn", dsn)
    assert_one_line_error(usage, 2)


def test_sqlite_files_without_a_projector_are_behind_too(
    bank_with_postgres: Cli, tmp_path: Path
) -> None:
    natsbank = bank_with_postgres
    transfer_id = submit(natsbank, "0.10")["id"]
    late = natsbank(
        "status", transfer_id, "--wait-projection", "--sqlite", str(tmp_path), "--timeout", "0.2"
    )
    line = assert_one_line_error(late, 1)
    assert "bank-a: KV_ledger_0 position 0" in line and "bank-b: KV_ledger_0" in line
