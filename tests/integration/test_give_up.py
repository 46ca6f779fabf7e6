"""The give-up saga on real nats-server processes, in both transport modes: each race of
docs/PROTOCOL.md section 9 played by running services, then the audit (I1-I7, with CANCELLED).

The services run in the test's event loop, each with its own stop, so that a test can take one
participant down and bring it back (kill -9 of real processes: test_give_up_kills.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import msgspec

from eventsource.adapters.stream_reader import read_messages
from eventsource.core.events import TransferState, encoder
from eventsource.core.messages import (
    Confirm,
    Confirms,
    InboxMessage,
    Kind,
    Posting,
    Postings,
    Result,
    Results,
    inbox_decoder,
    items_of,
)
from eventsource.core.model import Outcome
from eventsource.core.protocol import Phase
from eventsource.core.subjects import (
    DEAD_LETTER_STREAM,
    core_filter,
    core_subject,
    inbox_filter,
    inbox_subject,
    incoming_key,
    ledger_stream,
    outgoing_key,
    state_subject,
)
from tests.integration.forging import signed_by
from tests.integration.ledger_reads import UNTOUCHED, account, record
from tests.integration.live_bank import LiveBank, transfer
from tests.integration.polling import until


class Instance:
    """One participant service with its own stop, so a test can take it down and back."""

    def __init__(self, bank: LiveBank, participant: str, sweep_interval: float = 5.0) -> None:
        self.stop = asyncio.Event()
        self.service = bank.service(participant, sweep_interval=sweep_interval)
        self.task = asyncio.create_task(self.service.run(self.stop))

    async def down(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 15)


@contextlib.asynccontextmanager
async def running(bank: LiveBank, *participants: str) -> AsyncIterator[list[Instance]]:
    instances = [Instance(bank, p) for p in participants]
    try:
        for instance in instances:  # core mode: a message to it before this would be lost
            listening = getattr(instance.service.carrier, "listening", None)
            if listening is not None:
                await asyncio.wait_for(listening.wait(), 60)
        yield instances
    finally:
        for instance in instances:
            if not instance.task.done():
                await instance.down()


async def outcome_at(bank: LiveBank, side: str, tid: str) -> TransferState | None:
    key = outgoing_key("alpha", tid) if side == "n" else incoming_key("beta", "alpha", tid)
    state = await record(bank, "alpha" if side == "n" else "beta", key)
    return state if state is not None and state.final else None


async def events_of(bank: LiveBank, key: str) -> list[str]:
    """The event types on a record's subject, oldest first."""
    subject = state_subject(0, key)
    return [
        msgspec.json.decode(m.data)["type"]
        async for m in read_messages(bank.nc, ledger_stream(0), [subject])
    ]


class Wire:
    """Protocol messages to one participant as they travel: the JetStream inbox subject (a core
    subscription sees every message stored there) or, in core mode, the core subject."""

    def __init__(self, bank: LiveBank, recipient: str, kind: Kind) -> None:
        self.bank, self.recipient, self.kind = bank, recipient, kind
        self.seen: list[InboxMessage] = []
        self._sub = None

    async def __aenter__(self) -> Wire:
        subject = (
            core_filter(self.recipient).replace(">", f"{self.kind}.*")
            if self.bank.mode == "core"
            else inbox_filter(0, self.recipient).replace(">", f"{self.kind}.>")
        )

        async def seen(msg) -> None:
            self.seen.append(inbox_decoder.decode(msg.data))

        self._sub = await self.bank.nc.subscribe(subject, cb=seen)
        await self.bank.nc.flush()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._sub.unsubscribe()

    def items(self, tid: str) -> list:
        return [i for m in self.seen for i in items_of(m) if getattr(i, "id", None) == tid]

    async def send(self, message: InboxMessage) -> None:
        """A late or forged message, published as the peer's service would."""
        payload = encoder.encode(message)
        sender = getattr(message, "sender", self.recipient)
        headers = signed_by(sender, self.recipient, self.kind, payload)
        if self.bank.mode == "core":
            subject = core_subject(self.recipient, self.kind, sender)
            await self.bank.nc.publish(subject, payload, headers=headers)
        else:
            token = f"late-{len(self.seen)}"
            subject = inbox_subject(0, self.recipient, self.kind, sender, token)
            await self.bank.nc.jetstream().publish(subject, payload, headers=headers)


async def audited(bank: LiveBank, cancelled: int, ok: int = 0) -> None:
    """I1-I7 clean, with the CANCELLED transfers counted among the outcomes."""
    report = await bank.audit()
    assert report.ok, dict(report.violations)
    assert report.outcomes.get("CANCELLED", 0) == cancelled, dict(report.outcomes)
    assert report.outcomes.get("OK", 0) == ok, dict(report.outcomes)


async def test_a_receiver_down_past_the_deadline_ends_cancelled_and_a_late_posting_too(bank):
    """CANCEL before the posting: the receiver is down longer than the deadline (t1) and the
    attempts (t2); once back it records both CANCELLED (core mode: a tombstone, since n stopped
    resending the posting) and answers a late copy of the posting CANCELLED."""
    async with running(bank, "alpha"):
        await bank.submit(
            transfer("t1", "alpha/a1", "beta/b1", deadline_ms=1000),
            transfer("t2", "alpha/a1", "beta/b1", max_attempts=2),
        )
        t1 = await until(lambda: outcome_at(bank, "n", "t1"), "n gives up on t1")
        t2 = await until(lambda: outcome_at(bank, "n", "t2"), "n gives up on t2")
        assert (t1.outcome, t1.detail) == (Outcome.CANCELLED, "gave up: DEADLINE_PASSED")
        assert (t2.outcome, t2.detail) == (Outcome.CANCELLED, "gave up: ATTEMPTS_EXHAUSTED")
        assert await account(bank, "alpha", "a1") == UNTOUCHED  # both reservations voided
        assert await record(bank, "beta", incoming_key("beta", "alpha", "t1")) is None
        async with running(bank, "beta"), Wire(bank, "alpha", Kind.RESULT) as results:
            for tid in ("t1", "t2"):
                p = await until(lambda tid=tid: outcome_at(bank, "p", tid), f"p records {tid}")
                assert (p.phase, p.outcome) == (Phase.CONFIRMED, Outcome.CANCELLED)
            history = await events_of(bank, incoming_key("beta", "alpha", "t1"))
            if bank.mode == "core":
                assert history == ["CancelRecorded"], "a tombstone, from no record"
            else:  # the stream hands p the posting first, then the CANCEL
                assert history in (["CancelRecorded"], ["PostingAccepted", "CreditCancelled"])
            async with Wire(bank, "beta", Kind.POSTING) as postings:
                answered = len(results.items("t1"))
                late = Posting(transfer=t1.transfer, digest=t1.digest)
                await postings.send(Postings(sender="alpha", postings=[late]))
                await until(lambda: _now(len(results.items("t1")) > answered), "p answers it")
            assert {r.outcome for r in results.items("t1")[answered:]} == {Outcome.CANCELLED}
            await audited(bank, cancelled=2)
    assert await account(bank, "beta", "b1") == UNTOUCHED


async def _now(value):
    return value


async def test_a_submitter_back_after_its_deadline_voids_the_pending_credit_and_recancels(bank):
    """CANCEL after the posting, before the result, and crossing the OK result: p decided OK
    (a pending credit) while n was down; n, back after its deadline with two instances, gives up
    once, before it reads the result; the CANCEL voids p's credit, and an OK result reaching n
    after that is answered with the CANCEL again."""
    alpha = Instance(bank, "alpha")
    await bank.submit(transfer("t1", "alpha/a1", "beta/b1", deadline_ms=1500))
    n_key, p_key = outgoing_key("alpha", "t1"), incoming_key("beta", "alpha", "t1")
    admitted = await until(lambda: record(bank, "alpha", n_key), "n admits t1")
    await alpha.down()
    async with running(bank, "beta"):
        if bank.mode == "core":  # the posting went to a receiver not yet listening: lost, and
            # n is down, so its clock resends nothing; deliver the copy it would have resent
            async with Wire(bank, "beta", Kind.POSTING) as postings:
                posting = Posting(transfer=admitted.transfer, digest=admitted.digest)
                await postings.send(Postings(sender="alpha", postings=[posting]))
        decided = await until(lambda: record(bank, "beta", p_key), "p decides t1")
        assert (decided.phase, decided.outcome) == (Phase.DECIDED, Outcome.OK)
        assert await account(bank, "beta", "b1") == (100000, 0, 1000)  # pending, not spendable
        await asyncio.sleep(1.5)  # n's deadline passes while its result waits
        async with (
            Wire(bank, "beta", Kind.CONFIRM) as confirms,
            running(bank, "alpha", "alpha") as two,  # both find the deadline passed at start
        ):
            n = await until(lambda: outcome_at(bank, "n", "t1"), "n settles t1")
            assert (n.outcome, n.detail) == (Outcome.CANCELLED, "gave up: DEADLINE_PASSED")
            assert await events_of(bank, n_key) == ["FundsReserved", "TransferCancelled"]
            assert sum(i.service.stats.given_up for i in two) == 1, "decided once"
            p = await until(lambda: outcome_at(bank, "p", "t1"), "p confirms t1")
            assert (p.phase, p.outcome) == (Phase.CONFIRMED, Outcome.CANCELLED)
            assert await events_of(bank, p_key) == ["PostingAccepted", "CreditCancelled"]
            async with Wire(bank, "alpha", Kind.RESULT) as results:
                sent = len(confirms.items("t1"))
                late = Result(id="t1", digest=n.digest, outcome=Outcome.OK)
                await results.send(Results(sender="beta", results=[late]))
                await until(lambda: _now(len(confirms.items("t1")) > sent), "n answers it")
            again = confirms.items("t1")[sent:]
            assert {c.outcome for c in again} == {Outcome.CANCELLED}
            assert all(c.transfer == n.transfer for c in again)
            await audited(bank, cancelled=1)
            assert (await outcome_at(bank, "n", "t1")).outcome is Outcome.CANCELLED
    assert await account(bank, "alpha", "a1") == UNTOUCHED
    assert await account(bank, "beta", "b1") == UNTOUCHED


async def test_a_cancel_after_the_confirm_is_refused_and_changes_nothing(bank):
    """Once p is confirmed OK a CANCEL is refused: dead-lettered with the reason, never applied.
    (A correct n cannot send one: it gives up only without an outcome; this one is forged.)"""
    async with running(bank, "alpha", "beta"):
        await bank.submit(transfer("t1", "alpha/a1", "beta/b1", deadline_ms=60_000))
        n = await until(lambda: outcome_at(bank, "n", "t1"), "n settles t1")
        assert n.outcome is Outcome.OK
        await until(lambda: outcome_at(bank, "p", "t1"), "p confirms t1")
        async with Wire(bank, "beta", Kind.CONFIRM) as confirms:
            forged = Confirm(
                id="t1", digest=n.digest, outcome=Outcome.CANCELLED, transfer=n.transfer
            )
            await confirms.send(Confirms(sender="alpha", confirms=[forged]))
            letter = await until(lambda: dead_letter(bank), "p dead-letters the CANCEL")
        assert letter["Natsbank-Reason"] == "PROTOCOL_VIOLATION"
        assert "refused: the transfer is confirmed OK" in letter["Natsbank-Detail"]
        p = await outcome_at(bank, "p", "t1")
        assert (p.phase, p.outcome) == (Phase.CONFIRMED, Outcome.OK)
        assert await account(bank, "beta", "b1") == (101000, 0, 0)
        await audited(bank, cancelled=0, ok=1)


async def dead_letter(bank: LiveBank) -> dict | None:
    async for msg in read_messages(bank.nc, DEAD_LETTER_STREAM):
        return dict(msg.headers or {})
    return None


async def test_a_sibling_instance_gives_up_for_one_that_died(bank):
    """The deadline is with the transfer, not with the instance that admitted it: when that
    instance dies, its sibling learns of the record from its ledger sweep and gives up."""
    first, second = Instance(bank, "alpha", 1.0), Instance(bank, "alpha", 1.0)
    try:
        await bank.submit(transfer("t1", "alpha/a1", "beta/b1", deadline_ms=4000))
        key = outgoing_key("alpha", "t1")

        async def watching() -> list[Instance]:
            return [i for i in (first, second) if key in i.service.give_ups.clock]

        admitter = (await until(watching, "n admits t1 and watches its deadline"))[0]
        sibling = second if admitter is first else first
        await admitter.down()
        n = await until(lambda: outcome_at(bank, "n", "t1"), "the sibling gives up")
        assert (n.outcome, sibling.service.stats.given_up) == (Outcome.CANCELLED, 1)
    finally:
        for instance in (first, second):
            if not instance.task.done():
                await instance.down()
    async with running(bank, "alpha", "beta"):  # p records the CANCEL, n takes its answer
        await audited(bank, cancelled=1)
