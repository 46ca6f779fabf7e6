"""Postings published straight onto a bank's inbox with a missing or wrong signature: each is
dead-lettered BAD_SIGNATURE before anything is decided, nothing moves, and the bank carries on.
In both transports (the `bank` fixture runs each test once per mode)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from eventsource.core.messages import Posting, Postings
from eventsource.core.model import Outcome, validate_transfer
from eventsource.core.signing import Signer, new_seed
from eventsource.core.subjects import Kind, core_subject, inbox_subject, incoming_key
from tests.integration.forging import signed_by
from tests.integration.ledger_reads import UNTOUCHED, account, dead_letters, record
from tests.integration.live_bank import LiveBank, transfer
from tests.integration.polling import until

STRANGER = Signer(new_seed())


def _forged_headers(case: str, payload: bytes) -> dict[str, str] | None:
    """Headers of a forged posting from alpha to beta."""
    if case == "unsigned":
        return None
    if case == "wrong-key":  # a valid signature, by a key nobody registered for alpha
        return STRANGER.message_headers("alpha", "beta", "posting", payload)
    if case == "other-recipient":  # alpha's real signature, made for gamma: replayed onto beta
        return signed_by("alpha", "gamma", Kind.POSTING, payload)
    if case == "tampered":  # alpha's real signature over other bytes
        return signed_by("alpha", "beta", Kind.POSTING, payload.replace(b"20.00", b"2.00"))
    raise ValueError(case)


@pytest.mark.parametrize("case", ["unsigned", "wrong-key", "other-recipient", "tampered"])
async def test_a_posting_with_a_bad_signature_is_dead_lettered_and_nothing_moves(
    bank: LiveBank, case: str
):
    bank.start_all()
    if bank.mode == "core":
        for service, _ in bank.services:
            await asyncio.wait_for(service.carrier.listening.wait(), 60)
    forged = validate_transfer(transfer("forged-1", "alpha/a1", "beta/b1", "20.00"), "alpha")
    payload = msgspec.json.encode(
        Postings(sender="alpha", postings=[Posting(transfer=forged, digest="d")])
    )
    headers = _forged_headers(case, payload)
    if bank.mode == "core":
        await bank.nc.publish(core_subject("beta", Kind.POSTING, "alpha"), payload, headers=headers)
    else:
        subject = inbox_subject(0, "beta", Kind.POSTING, "alpha", "forged")
        await bank.nc.jetstream().publish(subject, payload, headers=headers)
    # A real transfer after it: once it is final, beta has handled the forged posting too
    # (JetStream: one consumer, in order; core: polled below until the dead letter is stored).
    await bank.submit(transfer("after-forgery", "alpha/a1", "beta/b2"))
    final = await bank.wait("alpha", ["after-forgery"])
    assert final["after-forgery"].outcome is Outcome.OK
    letters = await until(lambda: dead_letters(bank), "the forged message's dead letter", 60.0)
    assert [h["Natsbank-Reason"] for _, h, _ in letters] == ["BAD_SIGNATURE"]
    assert letters[0][0] == "nb.dlq.beta" and letters[0][2] == payload
    assert await record(bank, "beta", incoming_key("beta", "alpha", "forged-1")) is None
    assert await account(bank, "beta", "b1") == UNTOUCHED
    report = await bank.audit()
    assert report.ok, report.violations
    if bank.mode == "jetstream":  # the messages are in the ledger: the audit verifies them
        assert report.signatures["verified"] > 0
        assert report.signatures["refused"] == 1
        assert "forged" in report.signature_problems[0]
