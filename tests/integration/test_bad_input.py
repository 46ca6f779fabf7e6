"""Hostile or malformed messages published straight onto protocol subjects: each one is
terminated into the dead-letter stream with its reason, and the participant keeps working."""

from __future__ import annotations

import msgspec
import pytest

from eventsource.core.messages import Confirm, Confirms, Result, Results, SubmitTransfers
from eventsource.core.model import Outcome
from eventsource.core.subjects import Kind, inbox_subject, ledger_stream, submission_subject
from eventsource.services.audit import read_stream
from tests.integration.forging import signed_by
from tests.integration.ledger_reads import dead_letters
from tests.integration.live_bank import LiveBank, transfer

POISON = {
    "not-json": (Kind.SUBMIT, b"{this is not json", "UNDECODABLE"),
    "wrong-type": (Kind.SUBMIT, b'{"type":"submit","transfers":"nope"}', "UNDECODABLE"),
    "unknown-tag": (Kind.POSTING, b'{"type":"gossip","sender":"beta"}', "UNDECODABLE"),
    "empty": (Kind.SUBMIT, b"", "UNDECODABLE"),
    "wrong-kind": (
        Kind.RESULT,
        msgspec.json.encode(SubmitTransfers(transfers=[transfer("x1", "alpha/a1", "beta/b1")])),
        "PROTOCOL_VIOLATION",
    ),
    "no-items": (Kind.SUBMIT, b'{"type":"submit","transfers":[]}', "PROTOCOL_VIOLATION"),
    "bad-sender": (
        Kind.RESULT,
        msgspec.json.encode(
            Results(sender="no such!", results=[Result(id="x", digest="d", outcome=Outcome.OK)])
        ),
        "PROTOCOL_VIOLATION",
    ),
}


@pytest.mark.parametrize("case", sorted(POISON))
async def test_a_poison_message_is_dead_lettered_and_the_service_carries_on(
    bank: LiveBank, case: str
):
    bank.start_all()
    kind, payload, reason = POISON[case]
    source = inbox_subject(0, "alpha", kind, "alpha" if kind is Kind.SUBMIT else "beta", "evil")
    await bank.nc.jetstream().publish(source, payload)
    await bank.submit(transfer("after-poison", "alpha/a1", "beta/b1"))
    final = await bank.wait("alpha", ["after-poison"])
    assert final["after-poison"].outcome is Outcome.OK
    letters = await dead_letters(bank)
    assert [h["Natsbank-Reason"] for _, h, _ in letters] == [reason]
    subject, headers, data = letters[0]
    assert subject == "nb.dlq.alpha" and data == payload
    assert headers["Natsbank-Source-Subject"] == source
    assert (await bank.audit()).ok


async def test_results_and_confirms_for_unknown_transfers_are_dead_lettered(bank: LiveBank):
    bank.start_all()
    js = bank.nc.jetstream()
    # Signed by the senders' own keys: only the protocol can refuse them.
    result = msgspec.json.encode(
        Results(sender="beta", results=[Result(id="ghost", digest="0", outcome=Outcome.OK)])
    )
    await js.publish(
        inbox_subject(0, "alpha", Kind.RESULT, "beta", "forged"),
        result,
        headers=signed_by("beta", "alpha", Kind.RESULT, result),
    )
    confirm = msgspec.json.encode(
        Confirms(sender="alpha", confirms=[Confirm(id="ghost", digest="0", outcome=Outcome.OK)])
    )
    await js.publish(
        inbox_subject(0, "beta", Kind.CONFIRM, "alpha", "forged"),
        confirm,
        headers=signed_by("alpha", "beta", Kind.CONFIRM, confirm),
    )
    await bank.quiet()
    reasons = sorted(h["Natsbank-Reason"] for _, h, _ in await dead_letters(bank))
    assert reasons == ["PROTOCOL_VIOLATION", "PROTOCOL_VIOLATION"]
    assert (await bank.audit()).ok


async def test_an_oversize_payload_is_refused_by_the_stream_itself(bank: LiveBank):
    from nats.js.errors import BadRequestError

    with pytest.raises(BadRequestError):
        await bank.nc.jetstream().publish(submission_subject(0, "alpha", "big"), b"x" * 300_000)
    assert [s async for s, _ in read_stream(bank.nc, ledger_stream(0), "nb.0.to.>")] == []


async def test_a_message_bigger_than_one_batch_is_processed_in_pieces_and_nothing_is_lost(
    bank: LiveBank,
):
    bank.start_all()
    ids = [f"many-{i}" for i in range(450)]
    payload = msgspec.json.encode(
        SubmitTransfers(transfers=[transfer(i, "alpha/a1", "beta/b1", "0.01") for i in ids])
    )
    await bank.nc.jetstream().publish(submission_subject(0, "alpha", "many"), payload)
    final = await bank.wait("alpha", ids)
    assert sorted(final) == sorted(ids)
    assert {s.outcome for s in final.values()} == {Outcome.OK}
    report = await bank.audit()
    assert report.ok, report.violations
    assert report.transfers_acked == 450


async def test_a_creditor_name_that_is_no_token_is_rejected_without_blocking_others(
    bank: LiveBank,
):
    bank.start_all()
    payload = msgspec.json.encode(
        SubmitTransfers(
            transfers=[
                transfer("odd-name", "alpha/a1", "bank b/b1"),
                transfer("fine", "alpha/a1", "beta/b1"),
            ]
        )
    )
    await bank.nc.jetstream().publish(submission_subject(0, "alpha", "odd"), payload)
    final = await bank.wait("alpha", ["odd-name", "fine"])
    assert final["fine"].outcome is Outcome.OK
    assert final["odd-name"].outcome is Outcome.REJECTED
    assert final["odd-name"].cause == "INVALID_TRANSFER"
    assert (await bank.audit()).ok


async def test_comments_of_maximal_escaped_size_never_overflow_a_protocol_message(
    bank: LiveBank,
):
    comment = "\x01" * 280  # JSON-escaped as \u0001: six bytes per character
    ids = [f"wide-{i}" for i in range(200)]
    for start in (0, 100):  # each submission fits the 256 KiB limit on its own
        await bank.submit(
            *(
                transfer(i, "alpha/a2", "beta/b2", "0.01", comment=comment)
                for i in ids[start : start + 100]
            )
        )
    # Started after both submissions: alpha decides them in one group, and 200 postings in
    # one message would be 383 KB.
    bank.start_all()
    final = await bank.wait("alpha", ids, timeout=60)
    assert {s.outcome for s in final.values()} == {Outcome.OK} and len(final) == 200
    assert (await bank.audit()).ok
