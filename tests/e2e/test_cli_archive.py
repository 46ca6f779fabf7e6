"""Bounded history through the CLI (issue 12): a dev cluster whose streams.yaml declares a short
live horizon. The dev cluster's own archiver moves old final transfers to the archive; status,
a duplicate submit and the audit answer from it; an old unknown id is refused ID_EXPIRED."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ulid import ULID

from tests.e2e.cli import Cli
from tests.e2e.polling import eventually

pytestmark = pytest.mark.timeout(300)

SHORT_HISTORY = "history:\n  horizon: 6s\n  period: 3s\n  max_clock_skew: 2s\n"
AGE_S = 6 + 2 + 1


def test_the_dev_archiver_moves_old_transfers_and_the_cli_still_answers(
    dev_cluster: Cli, tmp_path: Path
) -> None:
    natsbank = dev_cluster
    streams = tmp_path / "streams.yaml"
    streams.write_text(SHORT_HISTORY)
    assert natsbank("streams", "init", "--file", str(streams)).returncode == 0
    natsbank.json("accounts", "open", "bank-a", "a1", "--fund", "100.00", "--json")
    natsbank.json("accounts", "open", "bank-b", "b1", "--json")
    send = ("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", "1.00")
    with natsbank.background("serve", "bank-a", "bank-b", log=tmp_path / "serve.log"):
        first = natsbank.json(*send, "--wait", "--json")
        assert first["outcome"] == "OK"
        time.sleep(AGE_S)

        def archived() -> dict | None:  # a first period may hold the accounts' opening only
            status = natsbank.json("status", first["id"], "--json")
            return status if status["submitter"]["archived"] is True else None

        found = eventually(archived, within=60, what="the transfer archived by the dev archiver")
        assert found["submitter"]["outcome"] == "OK"
        row = natsbank.json("archive", "status", "--json")[0]
        assert row["periods"] >= 1 and row["archived_below"] > first["position"]
        assert natsbank("status", first["id"]).stdout.count("(archived)") >= 1

        again = natsbank.json(*send, "--id", first["id"], "--wait", "--json")
        assert again["outcome"] == "OK"  # the archived outcome, not a second transfer
        stale = str(ULID.from_timestamp(time.time() - 3600))
        refused = natsbank(*send, "--id", stale, "--wait", "--json")
        assert refused.returncode == 1, refused.stderr
        assert "ID_EXPIRED" in refused.stdout

        def both_sides_final() -> dict | None:  # the receiver hears of refusals too (I7)
            status = natsbank.json("status", stale, "--json")
            theirs = status["receiver"]
            return status if theirs and theirs["phase"] == "CONFIRMED" else None

        eventually(both_sides_final, within=60, what="bank-b confirms the refused transfer")

        balances = natsbank.json("accounts", "list", "--json")
        assert {(a["participant"], a["balance"]) for a in balances} == {
            ("bank-a", "99.00"),
            ("bank-b", "1.00"),
        }
        audit = natsbank.json("audit", "--expect-final", "--full", "--json")
        assert audit["ok"] is True, audit["violations"]
        assert natsbank("archive", "status").returncode == 0
