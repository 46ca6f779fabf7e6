"""The pure helpers of `python -m benchmark.traffic`: what kind a message is, and the servers'
counters summed per class of connection."""

from __future__ import annotations

from benchmark.traffic_kinds import Kind, difference, kind_of, per_transfer, sum_counters

DELIVERY_REPLY = "$JS.ACK.KV_ledger_0.inbox_bankb_0.1.42.7.1732060000000000000.0"


def test_a_consumer_delivery_is_known_by_its_ack_reply_whatever_its_subject():
    assert kind_of("nb.0.to.bankb.posting.banka.x-1", DELIVERY_REPLY, {}, b"{}") is Kind.DELIVERY
    assert kind_of("_INBOX.abc.1", DELIVERY_REPLY, None, b"{}") is Kind.DELIVERY


def test_acks_naks_and_progress_are_told_apart_by_their_payload():
    assert kind_of(DELIVERY_REPLY, "", None, b"") is Kind.ACK
    assert kind_of(DELIVERY_REPLY, "", None, b"+ACK") is Kind.ACK
    assert kind_of(DELIVERY_REPLY, "", None, b'-NAK {"delay": 500000000}') is Kind.NAK
    assert kind_of(DELIVERY_REPLY, "", None, b"+WPI") is Kind.IN_PROGRESS
    assert kind_of(DELIVERY_REPLY, "", None, b"+TERM") is Kind.TERM


def test_api_requests_are_known_under_both_prefixes():
    pull = "$JS.API.CONSUMER.MSG.NEXT.KV_ledger_0.inbox_bankb_0"
    assert kind_of(pull, "_INBOX.x", None, b'{"batch":256}') is Kind.PULL_REQUEST
    direct = "$JS.ledger.API.DIRECT.GET.KV_ledger_0.$KV.ledger_0.bankb.acct.a1"
    assert kind_of(direct, "_INBOX.y", None, b"") is Kind.DIRECT_GET
    assert kind_of("$JS.API.STREAM.MSG.GET.KV_ledger_0", "_INBOX.z", None, b"{}") is (
        Kind.LEADER_GET
    )
    assert kind_of("$JS.API.CONSUMER.INFO.S.C", "_INBOX.z", None, b"") is Kind.CONSUMER_INFO
    assert kind_of("$JS.API.STREAM.INFO.S", "_INBOX.z", None, b"") is Kind.STREAM_INFO
    assert kind_of("$JS.API.CONSUMER.CREATE.S", "_INBOX.z", None, b"{}") is Kind.OTHER_API


def test_the_ledger_writes_are_known_by_their_subjects():
    assert kind_of("$KV.ledger_0.bankb.acct.a1", "", {}, b"{}") is Kind.BATCH_STATE
    assert kind_of("nb.0.to.bankb.posting.banka.x-1", "", {}, b"{}") is Kind.BATCH_OUTBOX
    assert kind_of("nb.0.to.banka.submit.banka.x", "_INBOX.q", {}, b"{}") is Kind.SUBMIT
    assert kind_of("nb.dlq.banka", "_INBOX.q", {}, b"{}") is Kind.DEAD_LETTER


def test_replies_are_told_apart_by_headers_and_payload():
    status = {"Status": "404", "Description": "No Messages"}
    assert kind_of("_INBOX.a.b", "", status, b"") is Kind.PULL_STATUS
    assert kind_of("_INBOX.a.b", "", None, b'{"stream":"KV_ledger_0","seq":9}') is Kind.PUB_ACK
    assert kind_of("_INBOX.a.b", "", {"Nats-Sequence": "9"}, b"{}") is Kind.API_REPLY
    assert kind_of("$JS.EVENT.ADVISORY.API", "", None, b"{}") is Kind.ADVISORY


def test_counters_are_summed_per_class_and_taken_per_transfer():
    before = sum_counters([("n1", "routes", 10, 20)])
    after = sum_counters(
        [("n1", "routes", 110, 120), ("n2", "routes", 50, 50), ("n1", "services", 7, 3)]
    )
    moved = difference(after, before)
    assert moved == {
        "routes": {"in_msgs": 150, "out_msgs": 150},
        "services": {"in_msgs": 7, "out_msgs": 3},
    }
    assert per_transfer(moved, 10) == {"routes": 30.0, "services": 1.0}
