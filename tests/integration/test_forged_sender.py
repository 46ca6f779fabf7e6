"""A message whose subject names another sender than the message claims (what a bank could
publish with its own credential, claiming to be another bank: issue 13) is dead-lettered as
SUBJECT_MISMATCH before anything is decided. Nothing moves, and the bank carries on."""

from __future__ import annotations

import msgspec

from eventsource.adapters.topology import InboxConfig, Topology
from eventsource.core.messages import Kind, Posting, Postings, Result, Results
from eventsource.core.model import Outcome, validate_transfer
from eventsource.core.protocol import Phase
from eventsource.core.subjects import (
    core_subject,
    inbox_subject,
    incoming_key,
    outgoing_key,
    partition_of,
)
from tests.integration.ledger_reads import UNTOUCHED, account, dead_letters, record
from tests.integration.live_bank import LiveBank, live_bank, transfer
from tests.integration.polling import until

FORGER = "gamma"  # the bank whose credential the forger holds: the subject names it


def forged_posting(transfer_id: str, claimed: str) -> bytes:
    """A posting alpha -> beta of 50.00 that says it comes from `claimed`."""
    t = validate_transfer(transfer(transfer_id, "alpha/a1", "beta/b1", "50.00"), "alpha")
    return msgspec.json.encode(
        Postings(sender=claimed, postings=[Posting(transfer=t, digest=t.digest)])
    )


async def publish(bank: LiveBank, recipient: str, kind: Kind, payload: bytes) -> str:
    """Onto the recipient's JetStream inbox, on a subject that names the forger as sender."""
    k = partition_of(FORGER, bank.partitions)
    subject = inbox_subject(k, recipient, kind, FORGER, "forged")
    await bank.nc.jetstream().publish(subject, payload)
    return subject


async def letters_of(bank: LiveBank, count: int) -> list[tuple[str, dict, bytes]]:
    async def enough():
        found = await dead_letters(bank)
        return found if len(found) >= count else None

    return await until(enough, f"{count} dead letters", timeout=60)


async def test_a_posting_that_claims_another_sender_is_dead_lettered_and_moves_nothing(
    bank: LiveBank,
):
    bank.start_all()
    claims_alpha = await publish(bank, "beta", Kind.POSTING, forged_posting("f-1", "alpha"))
    # Honest about its sender, but debits another bank's account: the same mismatch.
    foreign_debtor = await publish(bank, "beta", Kind.POSTING, forged_posting("f-2", FORGER))
    letters = await letters_of(bank, 2)
    assert sorted(h["Natsbank-Source-Subject"] for _, h, _ in letters) == sorted(
        [claims_alpha, foreign_debtor]
    )
    assert {h["Natsbank-Reason"] for _, h, _ in letters} == {"SUBJECT_MISMATCH"}
    assert all(h["Natsbank-Payload"] == "message" for _, h, _ in letters)
    for tid, sender in (("f-1", "alpha"), ("f-2", FORGER)):
        assert await record(bank, "beta", incoming_key("beta", sender, tid)) is None
    assert await account(bank, "beta", "b1") == UNTOUCHED  # no pending credit
    assert await account(bank, "alpha", "a1") == UNTOUCHED
    await bank.submit(transfer("after-forgery", "alpha/a1", "beta/b1"))
    final = await bank.wait("alpha", ["after-forgery"])
    assert final["after-forgery"].outcome is Outcome.OK
    report = await bank.audit()
    assert report.ok, report.violations


async def test_a_forged_result_does_not_settle_a_waiting_transfer(bank: LiveBank):
    bank.start("alpha")  # beta is down: alpha's transfer waits for its result
    await bank.submit(transfer("held", "alpha/a1", "beta/b1", "20.00"))

    async def reserved():
        state = await record(bank, "alpha", outgoing_key("alpha", "held"))
        return state is not None and state.phase is Phase.RESERVED

    await until(reserved, "alpha reserved the funds")
    digest = (await record(bank, "alpha", outgoing_key("alpha", "held"))).digest
    forged = Results(sender="beta", results=[Result(id="held", digest=digest, outcome=Outcome.OK)])
    payload = msgspec.json.encode(forged)
    await publish(bank, "alpha", Kind.RESULT, payload)
    if bank.mode == "core":  # the same forgery over core NATS
        await bank.nc.publish(core_subject("alpha", Kind.RESULT, FORGER), payload)
    letters = await letters_of(bank, 2 if bank.mode == "core" else 1)
    assert {h["Natsbank-Reason"] for _, h, _ in letters} == {"SUBJECT_MISMATCH"}
    state = await record(bank, "alpha", outgoing_key("alpha", "held"))
    assert state is not None and state.phase is Phase.RESERVED and state.outcome is None
    assert await account(bank, "alpha", "a1") == (100000, 2000, 0)  # reserved, not posted
    bank.start("beta")  # the real result settles it
    final = await bank.wait("alpha", ["held"])
    assert final["held"].outcome is Outcome.OK
    report = await bank.audit()
    assert report.ok, report.violations


async def test_the_old_layout_is_refused_once_streams_yaml_says_so(nats1):
    topology = Topology(inbox=InboxConfig(old_subjects="refuse"))
    async with live_bank(nats1, topology=topology) as bank:
        assert not bank.ledger.accepts_old_subjects  # read back from the registry's _topology
        bank.start_all()
        old = "nb.0.to.beta.posting.forged"  # the 6-token form: no sender to check
        await bank.nc.jetstream().publish(old, forged_posting("f-old", "alpha"))
        (letter,) = await letters_of(bank, 1)
        assert letter[1]["Natsbank-Reason"] == "SUBJECT_MISMATCH"
        assert "no sender token" in letter[1]["Natsbank-Detail"]
        assert await account(bank, "beta", "b1") == UNTOUCHED
        await bank.submit(transfer("new-layout", "alpha/a1", "beta/b1"))
        final = await bank.wait("alpha", ["new-layout"])
        assert final["new-layout"].outcome is Outcome.OK
