"""The shared store through the real CLI: `--store shared` (and NATSBANK_STORE) on streams
init, accounts, serve, submit --wait, status, audit, replay, the projector and /metrics; a bad
store name is one line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from eventsource.services.metrics import ServiceMetrics
from tests.e2e.cli import Cli, assert_one_line_error
from tests.e2e.http_probe import free_port, get, samples, value
from tests.e2e.polling import eventually


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


def test_the_shared_store_has_a_projection_a_replay_and_metrics(
    dev_cluster: Cli, tmp_path: Path
) -> None:
    """`projections run --store shared` into SQLite, I6 by `audit --sqlite` (and a wrong row
    caught), `replay --store shared`, and `serve --store shared --http-port` with the metrics
    families of the independent store."""
    shared = dev_cluster.with_env(NATSBANK_STORE=None)
    shared.json("streams", "init", "--store", "shared", "--json")
    shared = shared.with_env(NATSBANK_STORE="shared")
    shared.json("accounts", "open", "bank-c", "c1", "--fund", "100.00", "--json")
    shared.json("accounts", "open", "bank-d", "d1", "--json")
    port = free_port()
    serve = ("serve", "bank-c", "bank-d", "--http-port", str(port))
    with shared.background(*serve, log=tmp_path / "serve.log"):
        ready = lambda: r if (r := get(port, "/readyz")) and r[0] == 200 else None  # noqa: E731
        eventually(ready, within=60, what="/readyz answers 200")
        ok = shared.json(
            *("submit", "--from", "bank-c/c1", "--to", "bank-d/d1", "--amount", "7.25"),
            *("--id", "shared-proj-ok", "--wait", "--json"),
        )
        assert ok["outcome"] == "OK"
        found = samples(port)
        assert value(found, "natsbank_transfers_total",
                     participant="bank-c", side="submitter", outcome="OK") == 1  # fmt: skip
        assert value(found, "natsbank_ack_to_final_seconds_count", participant="bank-c") == 1
        lag = value(found, "natsbank_consumer_pending", participant="bank-c",
                    consumer="shared_bank-c")  # fmt: skip
        assert lag is not None and lag >= 0
        independent = {f.name for f in text_string_to_metric_families(
            generate_latest(ServiceMetrics().registry).decode())}  # fmt: skip
        families = {f.name for f in text_string_to_metric_families(get(port, "/metrics")[1])}
        assert independent <= families, independent - families

    replay = shared.json("replay", "--json")
    assert replay["differences"] == [] and replay["events"] > 0 and replay["accounts"] >= 2

    rows = tmp_path / "projection"
    with shared.background("projections", "run", "--sqlite", str(rows), log=tmp_path / "p.log"):
        files = [rows / "bank-c.sqlite", rows / "bank-d.sqlite"]  # audit reads the files there
        eventually(lambda: all(f.exists() for f in files) or None, within=60, what="both files")
        audit = shared.json("audit", "--sqlite", str(rows), "--expect-final", "--json")
        assert audit["ok"] is True, audit["violations"]
        assert audit["projection"] == "sqlite"
    with sqlite3.connect(rows / "bank-d.sqlite") as db:
        credited = db.execute(
            "SELECT side, phase, outcome FROM transfers WHERE key = ?",
            ("bank-d.in.bank-c.shared-proj-ok",),
        ).fetchall()
        assert credited == [("receiver", "CONFIRMED", "OK")]  # queried as on the independent store
        db.execute("UPDATE accounts SET balance = '1000000.00' WHERE key = 'bank-d.acct.d1'")
    wrong = shared("audit", "--sqlite", str(rows), "--projection-wait", "1", "--json")
    assert wrong.returncode == 1, wrong.stderr
    [violation] = json.loads(wrong.stdout)["violations"]["I6"]
    assert violation.startswith(
        "account bank-d.acct.d1: projection ('bank-d', 'd1', 'EUR', '1000000.00'"
    )
