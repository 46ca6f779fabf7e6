"""The checks at the edge, without a server: names, ids and numbers a user types, NATS_URL,
settings, the registry's records and streams.yaml, and what `submit` reports for each line.
The e2e tests (tests/e2e/test_cli_edge_input.py, test_cli_submit_report.py) drive the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventsource.adapters.nats_url import server_list
from eventsource.adapters.registry import partitions_from
from eventsource.adapters.topology import load_topology
from eventsource.cli import edge
from eventsource.core.errors import ConfigError, IdConflict, UsageError
from eventsource.core.events import TransferState
from eventsource.core.model import Outcome, Side, validate_transfer
from eventsource.core.protocol import Phase
from eventsource.services.client import Submitted
from eventsource.services.submission import (
    SubmitReport,
    Verdict,
    line_results,
    precheck,
    repeated_lines,
)
from eventsource.settings import load_settings
from tests.unit.simulation import request

WILD = ["", ">", "*", "a.>", "a b", "x" * 65, "x" * 5000]


@pytest.mark.parametrize("bad", WILD)
def test_a_name_or_an_id_that_is_not_a_plain_token_is_a_usage_error(bad: str) -> None:
    for check in (edge.participant, edge.account, edge.transfer_id):
        with pytest.raises(UsageError, match="--flag: "):
            check(bad, "--flag")


@pytest.mark.parametrize("reserved", ["to", "in", "out", "acct", "dlq", "_topology"])
def test_a_reserved_name_is_no_participant(reserved: str) -> None:
    with pytest.raises(UsageError, match="cannot be a participant"):
        edge.participant(reserved, "-p")
    assert edge.account(reserved, "ACCOUNT") == reserved


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), 10.0**9])
def test_a_wait_is_a_finite_number_of_seconds(bad: float) -> None:
    with pytest.raises(UsageError, match="--timeout"):
        edge.seconds(bad, "--timeout")
    assert edge.seconds(0.0, "--timeout") == 0.0


@pytest.mark.parametrize(("check", "bad"), [(edge.transfers, -3), (edge.transfers, 0),
                                            (edge.rate, 0.0), (edge.rate, -5.0),
                                            (edge.rate, float("nan"))])  # fmt: skip
def test_a_count_or_a_rate_is_positive(check, bad) -> None:
    with pytest.raises(UsageError, match="--x"):
        check(bad, "--x")


def test_a_repeatable_option_is_checked_item_by_item() -> None:
    callback = edge.checked(edge.participant, "-p")
    assert callback(None) is None
    assert callback(["bank-a", "bank-b"]) == ["bank-a", "bank-b"]
    with pytest.raises(UsageError, match="'>'"):
        callback(["bank-a", ">"])


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (" ", "names no server"),
        (",,,", "names no server"),
        ("foo://h:4222", "scheme 'foo'"),
        ("nats://", "no host"),
        ("nats://h:99999", "not a URL"),
        ("ws://a:1,nats://b:2", "mixes websocket"),
    ],
)
def test_a_nats_url_nats_py_cannot_use_is_a_config_error(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        server_list(url)


def test_a_nats_url_takes_what_nats_py_takes() -> None:
    url = " nats://a:1 ,127.0.0.1:4222,, tls://u:p@b:2,nats://[::1]:3"
    assert server_list(url) == ["nats://a:1", "127.0.0.1:4222", "tls://u:p@b:2", "nats://[::1]:3"]


@pytest.mark.parametrize("value", ["0", "-1", "x", "10001"])
def test_a_fetch_batch_a_service_could_never_use_names_its_source(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("NATSBANK_FETCH_BATCH", value)
    with pytest.raises(ConfigError, match=f"NATSBANK_FETCH_BATCH={value}"):
        load_settings()
    monkeypatch.delenv("NATSBANK_FETCH_BATCH")
    with pytest.raises(ConfigError, match=f"--fetch-batch={value}"):
        load_settings(fetch_batch=value)
    assert load_settings(fetch_batch="1").fetch_batch == 1


@pytest.mark.parametrize(
    ("value", "words"),
    [(b"garbage", "unreadable"), (b'{"partitions":"x"}', "unreadable"), (b"[1]", "unreadable"),
     (b'{"partitions":0}', "0 partitions"), (b'{"partitions":65}', "65 partitions")],
)  # fmt: skip
def test_a_topology_record_changed_by_hand_is_a_config_error(value: bytes, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        partitions_from(value)
    assert partitions_from(b'{"partitions":2}') == 2


def test_a_max_deliver_the_server_would_refuse_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "streams.yaml"
    path.write_text("inbox:\n  max_deliver: 4\n")  # the default backoff has 4 values
    with pytest.raises(ConfigError, match="max_deliver must be -1"):
        load_topology(path)
    path.write_text("inbox:\n  max_deliver: 5\n")
    assert load_topology(path).inbox.max_deliver == 5


def test_an_unusable_id_in_a_file_is_a_usage_error_naming_its_line() -> None:
    with pytest.raises(UsageError, match=r"f\.ndjson:3: transfer id"):
        precheck(request("a b", debtor=("n", "alice")), "f.ndjson:3")


def test_a_line_reusing_an_id_with_other_content_is_refused_naming_both_lines() -> None:
    lines = [request("t1", "1.00"), request("t2"), request("t1", "2.00")]
    with pytest.raises(IdConflict, match="f:3: transfer t1: ID_CONFLICT: f:1 uses this id"):
        repeated_lines(lines, ["f:1", "f:2", "f:3"])
    same = [request("t1", "1.00"), request("t2"), request("t1", "1.0")]
    assert repeated_lines(same, ["f:1", "f:2", "f:3"]) == [None, None, 0]


def _final(transfer_id: str, amount: str, outcome: Outcome) -> TransferState:
    transfer = validate_transfer(request(transfer_id, amount), "n")
    return TransferState(
        transfer=transfer, digest=transfer.digest, side=Side.SUBMITTER,
        phase=Phase.SETTLED, outcome=outcome,
    )  # fmt: skip


def test_each_line_says_what_happened_to_it() -> None:
    lines = [request("ok", "1.00"), request("taken", "2.00"), request("late"), request("ok", "1.0")]
    ack = Submitted(ids=["ok", "taken", "late"], sequence=7, duplicate=False, acked_at=0.0)
    report = SubmitReport(acks=[ack], outcomes={
        "ok": _final("ok", "1.00", Outcome.OK),
        "taken": _final("taken", "9.99", Outcome.OK),  # another content got the id first
    }, positions={"ok": ("KV_ledger_0", 20), "taken": ("KV_ledger_0", 21)})  # fmt: skip

    waited = line_results(lines, [None, None, None, 0], report, wait=True)
    not_waited = line_results(lines, [None, None, None, 0], report, wait=False)

    assert [r.verdict for r in waited] == [
        Verdict.OK, Verdict.ID_CONFLICT, Verdict.NO_OUTCOME, Verdict.OK
    ]  # fmt: skip
    assert [r.position for r in waited] == [("KV_ledger_0", 20), None, None, ("KV_ledger_0", 20)]
    assert waited[3].repeats == 0
    assert {r.verdict for r in not_waited} == {Verdict.ACKED}
