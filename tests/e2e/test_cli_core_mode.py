"""`natsbank serve --mode core` through the real CLI, under a lossy fault plan: transfers still
end final on both sides and the audit is clean; a bad fault plan is a one-line usage error."""

from __future__ import annotations

import json

from tests.e2e.cli import Cli, assert_one_line_error
from tests.e2e.polling import eventually


def test_core_mode_under_loss_settles_every_transfer(bank: Cli) -> None:
    serve = ("serve", "bank-a", "bank-b", "--mode", "core", "--resend-after", "0.5")
    lossy = ("--faults", "drop=0.1,duplicate=0.1,seed=2")
    with bank.background(*serve, *lossy, log=bank.home / "serve-core.log"):
        done = bank("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", "1.25",
                    "--wait", "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["outcome"] == "OK"  # one transfer: one object
        loaded = bank("submit", "--random", "200", "--rate", "400", "--json")
        assert loaded.returncode == 0, loaded.stderr

        def clean() -> dict | None:
            audit = bank("audit", "--expect-final", "--json")
            return json.loads(audit.stdout) if audit.returncode == 0 else None

        report = eventually(clean, within=90, what="every transfer final, audit clean")
    assert report["ok"] is True and report["transfers_acked"] >= 201
    log = (bank.home / "serve-core.log").read_text()
    assert "core mode" in log and "faults drop=0.1" in log


def test_a_bad_fault_plan_is_a_usage_error(bank: Cli) -> None:
    done = bank("serve", "bank-a", "--mode", "core", "--faults", "lose=0.5")
    assert_one_line_error(done, 2)
