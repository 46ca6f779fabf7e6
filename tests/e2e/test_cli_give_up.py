"""`natsbank submit --deadline` through the real CLI: the receiver's bank is down, so the
submitter's bank gives up; `--wait` and `status` show CANCELLED, and once the receiver's bank is
back both sides agree and the audit is clean."""

from __future__ import annotations

import json

from tests.e2e.cli import Cli, assert_one_line_error
from tests.e2e.polling import eventually


def test_submit_with_a_deadline_ends_cancelled_on_both_sides(bank: Cli) -> None:
    with bank.background("serve", "bank-a", log=bank.home / "serve-a.log"):
        done = bank("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", "2.00",
                    "--id", "late-1", "--deadline", "1s", "--wait", "--json")  # fmt: skip
        assert done.returncode == 1, done.stderr  # a domain failure: not OK
        row = json.loads(done.stdout)
        assert (row["outcome"], row["phase"]) == ("CANCELLED", "SETTLED")
        assert (row["detail"], row["deadline_ms"]) == ("gave up: DEADLINE_PASSED", 1000)
        text = bank("status", "late-1")
        assert "submitter: CANCELLED (submitter phase SETTLED) gave up: DEADLINE_PASSED" in (
            text.stdout
        )
        assert "receiver:  not received yet" in text.stdout
        with bank.background("serve", "bank-b", log=bank.home / "serve-b.log"):

            def receiver_cancelled() -> dict | None:
                status = bank.json("status", "late-1", "--json")
                theirs = status["receiver"]
                return status if theirs and theirs["phase"] == "CONFIRMED" else None

            status = eventually(receiver_cancelled, within=60, what="bank-b records the CANCEL")
            assert status["receiver"]["outcome"] == "CANCELLED"
            assert status["submitter"]["outcome"] == "CANCELLED"
            report = bank.json("audit", "--expect-final", "--json")
    assert report["ok"] is True
    assert report["outcomes"]["CANCELLED"] == 1


def test_a_bad_deadline_is_a_one_line_usage_error(bank: Cli) -> None:
    done = bank("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", "1",
                "--deadline", "soon")  # fmt: skip
    assert "--deadline" in assert_one_line_error(done, 2)
