"""The JetStream pipeline on a real server: outcomes, causes, duplicates, concurrency."""

from __future__ import annotations

import asyncio

import msgspec

from eventsource.core.errors import RejectionCause
from eventsource.core.messages import SubmitTransfers
from eventsource.core.model import Outcome
from eventsource.core.protocol import Phase
from eventsource.core.subjects import (
    ledger_bucket,
    ledger_stream,
    outgoing_key,
    submission_subject,
)
from eventsource.services.client import transfer_views
from tests.integration.live_bank import LiveBank, transfer


async def balances(bank: LiveBank, *accounts: str) -> list[tuple[int, int, int]]:
    result = []
    for ref in accounts:
        participant, account = ref.split("/")
        state, _ = await bank.ledger.read_account(participant, account)
        result.append((state.balance, state.pending_debits, state.pending_credits))
    return result


async def test_an_accepted_transfer_moves_the_money_once_and_both_sides_agree(bank: LiveBank):
    bank.start_all()
    ack = await bank.submit(transfer("t-ok", "alpha/a1", "beta/b1", "12.34"))
    assert ack.sequence > 0 and not ack.duplicate
    final = await bank.wait("alpha", ["t-ok"])
    assert final["t-ok"].outcome is Outcome.OK
    # Both sides final (in core mode the confirm travels outside the ledger: audit() waits).
    assert (await bank.audit()).ok
    mine, theirs = await transfer_views(bank.nc, bank.partitions, "alpha", "t-ok")
    assert mine[0].phase is Phase.SETTLED and theirs[0].phase is Phase.CONFIRMED
    assert theirs[0].outcome is Outcome.OK
    assert await balances(bank, "alpha/a1", "beta/b1") == [(98766, 0, 0), (101234, 0, 0)]
    # The ledger partition is a KV bucket: a KV client sees the state and the event history.
    kv = await bank.nc.jetstream().key_value(ledger_bucket(0))
    history = await kv.history(outgoing_key("alpha", "t-ok"))
    assert [msgspec.json.decode(e.value)["type"] for e in history] == [
        "FundsReserved",
        "TransferSettled",
    ]
    assert msgspec.json.decode(history[-1].value)["state"]["outcome"] == "OK"
    assert (await bank.audit()).ok


async def test_each_bad_transfer_is_rejected_with_its_cause_on_both_sides(bank: LiveBank):
    await bank.ledger.close_account("beta", "b2")
    bank.start_all()
    cases = {
        "r-funds": (
            transfer("r-funds", "alpha/a1", "beta/b1", "5000.00"),
            RejectionCause.INSUFFICIENT_FUNDS,
        ),
        "r-acct": (transfer("r-acct", "alpha/a1", "beta/nope"), RejectionCause.UNKNOWN_ACCOUNT),
        "r-debtor": (transfer("r-debtor", "alpha/nope", "beta/b1"), RejectionCause.UNKNOWN_ACCOUNT),
        "r-part": (transfer("r-part", "alpha/a1", "zeta/z1"), RejectionCause.UNKNOWN_PARTICIPANT),
        "r-ccy": (transfer("r-ccy", "alpha/a1", "gamma/usd"), RejectionCause.CURRENCY_MISMATCH),
        "r-closed": (transfer("r-closed", "alpha/a1", "beta/b2"), RejectionCause.ACCOUNT_CLOSED),
        "r-float": (transfer("r-float", "alpha/a1", "beta/b1", 1.5), RejectionCause.INVALID_AMOUNT),
        "r-neg": (transfer("r-neg", "alpha/a1", "beta/b1", "-1.00"), RejectionCause.INVALID_AMOUNT),
        "r-zero": (
            transfer("r-zero", "alpha/a1", "beta/b1", "0.00"),
            RejectionCause.INVALID_AMOUNT,
        ),
        "r-decimals": (
            transfer("r-decimals", "alpha/a1", "beta/b1", "1.001"),
            RejectionCause.INVALID_AMOUNT,
        ),
        "r-huge": (
            transfer("r-huge", "alpha/a1", "beta/b1", "92233720368547758.08"),
            RejectionCause.INVALID_AMOUNT,
        ),
        "r-same": (transfer("r-same", "alpha/a1", "alpha/a1"), RejectionCause.SAME_ACCOUNT),
        "r-ccy-unknown": (
            transfer("r-ccy-unknown", "alpha/a1", "beta/b1", currency="XXX"),
            RejectionCause.UNKNOWN_CURRENCY,
        ),
        "r-other-bank": (
            transfer("r-other-bank", "beta/b1", "gamma/g1"),
            RejectionCause.INVALID_TRANSFER,
        ),
    }
    before = await balances(bank, "alpha/a1", "beta/b1")
    await bank.submit(*(request for request, _ in cases.values()))
    final = await bank.wait("alpha", list(cases))
    for tid, (_, cause) in cases.items():
        assert final[tid].outcome is Outcome.REJECTED, tid
        assert final[tid].cause == cause, (tid, final[tid].cause)
    await bank.quiet()
    for tid, (request, cause) in cases.items():
        _, theirs = await transfer_views(bank.nc, bank.partitions, "alpha", tid)
        receiver_exists = request.creditor.participant in bank.participants
        if receiver_exists and tid != "r-other-bank":
            assert theirs is not None and theirs[0].outcome is Outcome.REJECTED, tid
            assert theirs[0].cause == cause, tid
    assert await balances(bank, "alpha/a1", "beta/b1") == before
    assert (await bank.audit()).ok


async def test_a_duplicate_submission_is_applied_once_however_often_it_arrives(bank: LiveBank):
    bank.start_all()
    request = transfer("t-dup", "alpha/a1", "beta/b1", "1.00")
    payload = msgspec.json.encode(SubmitTransfers(transfers=[request, request, request]))
    subject = submission_subject(0, "alpha", "dup")
    js = bank.nc.jetstream()
    for i in range(10):  # distinct Nats-Msg-Ids: as if the 2-minute window had passed
        await js.publish(subject, payload, headers={"Nats-Msg-Id": f"dup-{i}"})
    await bank.wait("alpha", ["t-dup"])
    for i in range(10):
        await js.publish(subject, payload, headers={"Nats-Msg-Id": f"late-{i}"})
    await bank.quiet()
    assert await balances(bank, "alpha/a1", "beta/b1") == [(99900, 0, 0), (100100, 0, 0)]
    report = await bank.audit()
    assert report.ok, report.violations
    assert report.transfers_acked == 1


async def test_redelivered_protocol_messages_change_nothing(bank: LiveBank):
    core_copies: list[tuple[str, bytes]] = []  # core mode: a listener outside the queue group

    async def overhear(msg) -> None:
        core_copies.append((msg.subject, msg.data))

    await bank.nc.subscribe("nb.core.>", cb=overhear)
    bank.start_all()
    ids = [f"t-re-{i}" for i in range(20)]
    await bank.submit(*(transfer(i, "alpha/a2", "beta/b2", "2.50") for i in ids))
    await bank.wait("alpha", ids)
    assert (await bank.audit()).ok
    # Copy every protocol message of the run back into the inboxes, three times over.
    from eventsource.services.audit import read_stream

    copies = [(s, d) async for s, d in read_stream(bank.nc, ledger_stream(0), "nb.0.to.>")]
    kinds = {s.split(".")[4] for s, _ in copies} | {s.split(".")[3] for s, _ in core_copies}
    assert kinds == {"submit", "posting", "result", "confirm"}
    for _ in range(3):
        for subject, data in copies:
            await bank.nc.jetstream().publish(subject, data)
        for subject, data in core_copies:
            await bank.nc.publish(subject, data)
    await bank.quiet()
    assert await balances(bank, "alpha/a2", "beta/b2") == [(95000, 0, 0), (105000, 0, 0)]
    report = await bank.audit()
    assert report.ok, report.violations


async def test_an_id_reused_with_other_content_is_refused_and_the_original_kept(bank: LiveBank):
    await bank.submit(transfer("t-same-id", "alpha/a1", "beta/b1", "3.00"))
    conflicting = await bank.submit(transfer("t-same-id", "alpha/a1", "beta/b1", "300.00"))
    bank.start_all()  # both in one group: the dead letter must name the second message
    await bank.wait("alpha", ["t-same-id"])
    await bank.quiet()
    mine, _ = await transfer_views(bank.nc, bank.partitions, "alpha", "t-same-id")
    assert mine[0].transfer.amount == "3.00" and mine[0].outcome is Outcome.OK
    dead = await bank.nc.jetstream().get_last_msg("DEADLETTER", "nb.dlq.alpha")
    assert dead.headers["Natsbank-Reason"] == "ID_CONFLICT"
    assert dead.headers["Natsbank-Source"] == f"{ledger_stream(0)}:{conflicting.sequence}"
    assert b"300.00" in dead.data
    assert (await bank.audit()).ok


async def test_a_hot_account_under_two_instances_never_overdraws(bank: LiveBank):
    bank.start_all(instances=2)
    # 1000.00 on alpha/a1; 300 transfers of 5.00 want 1500.00: exactly 200 can pass.
    requests = [transfer(f"hot-{i}", "alpha/a1", f"beta/b{1 + i % 2}", "5.00") for i in range(300)]
    await asyncio.gather(*(bank.submit(*requests[i : i + 10]) for i in range(0, 300, 10)))
    final = await bank.wait("alpha", [r.id for r in requests], timeout=60)
    outcomes = [s.outcome for s in final.values()]
    assert outcomes.count(Outcome.OK) == 200
    assert outcomes.count(Outcome.REJECTED) == 100
    assert (await balances(bank, "alpha/a1"))[0] == (0, 0, 0)
    report = await bank.audit()
    assert report.ok, report.violations
    alpha_instances = [s for s, _ in bank.services if s.participant == "alpha"]
    if bank.mode == "jetstream":  # every message goes through the shared consumers
        assert all(s.stats.groups > 0 for s in alpha_instances), "both should share work"
    # In core mode one instance may fetch every submission and the queue group may hand it
    # every result too (a handful of 200-item messages): sharing is likely, not certain.
