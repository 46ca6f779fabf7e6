"""Every role works with authorization on, with nothing but its own credential: a bank's
service reads its records without a consumer (the give-up watch at start, core mode's sweep),
core-NATS mode crosses bank accounts through LEDGER, and the operator's tools, each in its own
account, read with direct gets (research note sections 5 and 8)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client

from eventsource.adapters.archive_meta import StreamLease, meta_bucket
from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.dead_letter_stream import list_letters
from eventsource.adapters.dead_letters import dead_letter
from eventsource.bootstrap import ServeOptions, participant_service
from eventsource.core.dead_letter_records import LetterFilter
from eventsource.core.history import KEEP_EVERYTHING, History
from eventsource.core.limits import SWEEP_INTERVAL_S
from eventsource.core.model import AccountRef, Outcome, TransferRequest
from eventsource.core.permissions import Role
from eventsource.core.subjects import ledger_stream, outgoing_key, submit_consumer
from eventsource.services.archiver import archive_once
from eventsource.services.audit import audit
from eventsource.services.client import read_transfer, submit, wait_final
from eventsource.services.dead_letters import retry_dead_letter
from eventsource.services.independent.ledger import IndependentLedger
from eventsource.settings import Transport
from tests.integration.archiving import AGE_S, HISTORY, new_id
from tests.integration.authorized import AUTH, Provisioned, connected, provision
from tests.integration.refusals import answer, watched

DEADLINE_MS = 1500
OUTCOME_WAIT_S = 30.0  # far below the 60 s sweep: only the read at start can give up in time


@pytest.fixture
async def provisioned(authorized: ClusterInfo) -> Provisioned:
    return await provision(authorized)


def _transfer(tid: str, amount: str = "10.00", **extra) -> TransferRequest:
    return TransferRequest(
        id=tid,
        debtor=AccountRef("bank-a", "a1"),
        creditor=AccountRef("bank-b", "b1"),
        amount=amount,
        currency="EUR",
        **extra,
    )


@contextlib.asynccontextmanager
async def serving(
    cluster: ClusterInfo,
    participant: str,
    transport: Transport = Transport.JETSTREAM,
    history: History = KEEP_EVERYTHING,
) -> AsyncIterator[None]:
    """One instance of `participant`'s service, connected as that bank's service only."""
    stop = asyncio.Event()
    async with connected(cluster, Role.SERVICE, participant) as nc:
        ledger = IndependentLedger(nc, AUTH.partitions, history)
        options = ServeOptions(transport=transport, sweep_interval=SWEEP_INTERVAL_S)
        task = asyncio.create_task(participant_service(ledger, participant, options).run(stop))
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)


async def _submit_and_wait(
    cluster: ClusterInfo, request: TransferRequest, timeout: float = OUTCOME_WAIT_S
) -> dict:
    async with connected(cluster, Role.CLIENT, "bank-a") as client:
        await submit(client, AUTH.partitions, "bank-a", [request])
        return await wait_final(client, AUTH.partitions, "bank-a", [request.id], timeout=timeout)


async def _audited(cluster: ClusterInfo) -> None:
    async with connected(cluster, Role.AUDIT) as nc:
        report = await audit(nc, AUTH.partitions, expect_final=True)
    assert report.ok, report


async def test_a_deadline_passed_while_the_submitter_was_down_is_given_up_at_its_restart(
    provisioned: Provisioned,
) -> None:
    """bank-a admits a transfer with a deadline, goes down, and comes back after it: its
    service reads its records at start (no consumer, no STREAM.INFO) and gives up at once,
    not at its next commit or sweep."""
    cluster = provisioned.cluster
    request = _transfer("late-1", deadline_ms=DEADLINE_MS)
    async with serving(cluster, "bank-a"), connected(cluster, Role.CLIENT, "bank-a") as client:
        await submit(client, AUTH.partitions, "bank-a", [request])
        admitted = await _until_admitted(client, request.id)
    await asyncio.sleep(max(0.0, admitted + DEADLINE_MS / 1000 - time.time()))  # a deadline
    async with serving(cluster, "bank-a"), connected(cluster, Role.CLIENT, "bank-a") as client:
        final = await wait_final(
            client, AUTH.partitions, "bank-a", [request.id], timeout=OUTCOME_WAIT_S
        )
    state = final[request.id]
    assert (state.outcome, state.detail) == (Outcome.CANCELLED, "gave up: DEADLINE_PASSED")
    async with serving(cluster, "bank-b"), serving(cluster, "bank-a"):
        await _until_audited(cluster)


async def _until_admitted(client: Client, tid: str) -> float:
    """When bank-a's service admitted `tid` (its record exists), as wall-clock seconds."""
    for _ in range(200):
        if await read_transfer(client, AUTH.partitions, "bank-a", outgoing_key("bank-a", tid)):
            return time.time()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{tid} was never admitted")


async def _until_audited(cluster: ClusterInfo, patience_s: float = 30.0) -> None:
    """The audit passes once both sides have settled (bounded, retried)."""
    deadline = time.monotonic() + patience_s
    async with connected(cluster, Role.AUDIT) as nc:
        while True:
            report = await audit(nc, AUTH.partitions, expect_final=True)
            if report.ok or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    assert report.ok, report


async def test_core_mode_moves_money_between_bank_accounts(provisioned: Provisioned) -> None:
    cluster = provisioned.cluster
    async with (
        serving(cluster, "bank-a", Transport.CORE),
        serving(cluster, "bank-b", Transport.CORE),
    ):
        final = await _submit_and_wait(cluster, _transfer("core-1", "12.50"))
        assert final["core-1"].outcome is Outcome.OK
        await _until_audited(cluster)


async def test_the_dead_letters_tool_lists_and_retries_without_a_consumer(
    provisioned: Provisioned,
) -> None:
    """bank-a's service dead-letters a valid submission (as a bug would); the dead-letters
    tool lists it, retries it once onto bank-a's inbox, and the transfer completes."""
    cluster = provisioned.cluster
    async with connected(cluster, Role.CLIENT, "bank-a") as client:
        await submit(client, AUTH.partitions, "bank-a", [_transfer("lost-1", "3.00")])
    async with connected(cluster, Role.SERVICE, "bank-a") as bank_a:
        inbox = await bank_a.jetstream().pull_subscribe_bind(
            submit_consumer("bank-a", 0), ledger_stream(0)
        )
        (msg,) = await inbox.fetch(1, timeout=5)
        await dead_letter(bank_a, "bank-a", msg, "PROTOCOL_VIOLATION", "refused by a bug")
        await msg.term()
    async with connected(cluster, Role.DEAD_LETTERS) as tool:
        listing = await list_letters(tool, LetterFilter(), 10)
        assert [letter.reason for letter in listing.letters] == ["PROTOCOL_VIOLATION"]
        retried = await retry_dead_letter(tool, listing.letters[0].seq)
        assert retried.republished and retried.subject.startswith("nb.0.to.bank-a.submit.bank-a.")
        again = await retry_dead_letter(tool, listing.letters[0].seq)
        assert not again.republished  # recorded once, under bank-a's dead letters
    async with serving(cluster, "bank-a"), serving(cluster, "bank-b"):
        async with connected(cluster, Role.CLIENT, "bank-a") as client:
            final = await wait_final(
                client, AUTH.partitions, "bank-a", ["lost-1"], timeout=OUTCOME_WAIT_S
            )
        assert final["lost-1"].outcome is Outcome.OK
        await _until_audited(cluster)


STREAMS = ("KV_ledger_0", "KV_participants", "DEADLETTER")
REFUSAL_WAIT_S = 1.0  # a refused request gets no answer: how long to wait for the one it lacks

TOOL_WRITES = [  # (role, subject): nothing may be stored, whatever the server answers
    (Role.AUDIT, "$KV.ledger_0.bank-a.acct.a1"),
    (Role.PROJECTOR, "$KV.ledger_0.bank-a.acct.a1"),
    (Role.DEAD_LETTERS, "$KV.ledger_0.bank-a.acct.a1"),
    (Role.DEAD_LETTERS, "nb.dlq.bank-a"),  # a forged dead letter
    (Role.ARCHIVER, "$KV.participants.bank-z"),
    (Role.ARCHIVER, "nb.0.to.bank-b.posting.bank-a.tok"),
    (Role.FUNDING, "$KV.ledger_0.bank-a.out.T1"),
    (Role.FUNDING, "nb.0.to.bank-b.posting.bank-a.tok"),
    (Role.FUNDING, "$KV.participants.bank-z"),
]


async def _last_seqs(cluster: ClusterInfo) -> dict[str, int]:
    async with connected(cluster, Role.AUDIT) as audit_nc:
        js = audit_nc.jetstream()
        return {s: (await js.stream_info(s)).state.last_seq for s in STREAMS}


async def _attempt(nc: Client, subject: str, payload: bytes = b"{}") -> bytes | None:
    return await answer(nc, subject, payload, timeout=REFUSAL_WAIT_S)


@pytest.mark.parametrize(("role", "subject"), TOOL_WRITES, ids=lambda v: str(v))
async def test_an_operator_tool_cannot_write_what_is_not_its_job(
    provisioned: Provisioned, role: Role, subject: str
) -> None:
    before = await _last_seqs(provisioned.cluster)
    async with watched(provisioned.cluster, role) as tool:
        answered = await _attempt(tool, subject, b'{"forged": true}')
    assert answered is None or b'"seq"' not in answered, answered
    assert await _last_seqs(provisioned.cluster) == before


TOOL_API_CALLS = [  # (role, request under its account's API prefix): refused, nothing changes
    (Role.AUDIT, "$JS.ledger.API.CONSUMER.CREATE.KV_ledger_0.spy"),
    (Role.DEAD_LETTERS, "$JS.ledger.API.CONSUMER.CREATE.DEADLETTER.spy"),
    (Role.PROJECTOR, "$JS.ledger.API.CONSUMER.DELETE.KV_ledger_0.inbox_bank-a_0"),
    (Role.PROJECTOR, "$JS.ledger.API.CONSUMER.CREATE.KV_ledger_0.inbox_bank-a_0"),
    (Role.ARCHIVER, "$JS.ledger.API.STREAM.DELETE.KV_ledger_0"),
    (Role.ARCHIVER, "$JS.ledger.API.STREAM.PURGE.KV_participants"),
    (Role.DEAD_LETTERS, "$JS.ledger.API.STREAM.PURGE.DEADLETTER"),
    (Role.FUNDING, "$JS.ledger.API.STREAM.UPDATE.KV_ledger_0"),
    (Role.AUDIT, "$JS.API.STREAM.DELETE.KV_ledger_0"),  # LEDGER's own API: not in its account
]


@pytest.mark.parametrize(("role", "subject"), TOOL_API_CALLS, ids=lambda v: str(v))
async def test_an_operator_tool_cannot_use_the_api_beyond_its_job(
    provisioned: Provisioned, role: Role, subject: str
) -> None:
    cluster = provisioned.cluster
    before = await _last_seqs(cluster)
    async with watched(cluster, role) as tool:
        answered = await _attempt(tool, subject, json.dumps({"name": "spy"}).encode())
    assert answered is None or b'"success":true' not in answered, answered
    assert await _last_seqs(cluster) == before
    async with connected(cluster, Role.AUDIT) as audit_nc:
        consumers = {c.name for c in await audit_nc.jetstream().consumers_info("KV_ledger_0")}
        dead = {c.name for c in await audit_nc.jetstream().consumers_info("DEADLETTER")}
    assert "inbox_bank-a_0" in consumers and "spy" not in consumers | dead


async def test_a_tool_cannot_make_jetstream_answer_into_a_stream(provisioned: Provisioned) -> None:
    """Reply-subject injection (research note 5.1): a tool's reply subject is one of its own
    account, so the answer to its read never reaches a stream in LEDGER."""
    cluster = provisioned.cluster
    before = await _last_seqs(cluster)
    read = "$JS.ledger.API.DIRECT.GET.KV_ledger_0.$KV.ledger_0.bank-a.acct.a1"
    for role, reply in [
        (Role.AUDIT, "nb.dlq.bank-a"),
        (Role.DEAD_LETTERS, "nb.0.to.bank-b.posting.bank-a.tok"),
        (Role.FUNDING, "$KV.participants.bank-z"),
    ]:
        async with connected(cluster, role) as tool:
            await tool.publish(read, b"", reply=reply)
            await tool.flush()
            answered = await tool.request(read, b"", timeout=5)  # after the injected one
            assert answered.headers and answered.headers.get("Nats-Sequence")
    assert await _last_seqs(cluster) == before


async def test_the_archiver_and_the_audit_keep_a_live_horizon_under_authorization(
    authorized: ClusterInfo,
) -> None:
    """The archiver, in its own account, archives and purges final transfers past the horizon;
    the audit (holding the archive's lease) still finds everything in order; and the banks read
    the archive: a duplicate of an archived transfer gets its original outcome from bank-a's
    service, and bank-a's client reads it, each with its own credential."""
    await provision(authorized, HISTORY)
    ids = [new_id() for _ in range(3)]
    history = HISTORY.to_history()
    bank_a, bank_b = (serving(authorized, p, history=history) for p in ("bank-a", "bank-b"))
    async with bank_a, bank_b:
        async with connected(authorized, Role.CLIENT, "bank-a") as client:
            await submit(client, AUTH.partitions, "bank-a", [_transfer(i, "1.00") for i in ids])
            final = await wait_final(client, AUTH.partitions, "bank-a", ids, timeout=30)
        assert {s.outcome for s in final.values()} == {Outcome.OK}
        await asyncio.sleep(AGE_S)  # the transfers age past the live horizon
        async with connected(authorized, Role.ARCHIVER) as archiver:
            kv = await meta_bucket(archiver)
            lease = StreamLease(kv, ledger_stream(0))
            assert await lease.take()
            archived = 0
            while (report := await archive_once(archiver, 0, history, lease)).period is not None:
                archived += report.messages
            await lease.release()
        assert archived > 0
        async with connected(authorized, Role.AUDIT) as nc:
            report = await audit(nc, AUTH.partitions, expect_final=True, history=history)
        assert report.ok, report.violations
        async with connected(authorized, Role.CLIENT, "bank-a") as client:
            archives = IndependentLedger(client, AUTH.partitions, history).archive_of
            await submit(client, AUTH.partitions, "bank-a", [_transfer(ids[0], "1.00")])
            again = await wait_final(
                client, AUTH.partitions, "bank-a", ids, timeout=30, archives=archives
            )
        assert {s.outcome for s in again.values()} == {Outcome.OK}
        async with connected(authorized, Role.AUDIT) as nc:
            report = await audit(nc, AUTH.partitions, expect_final=True, history=history)
        assert report.ok, report.violations  # the duplicate was not applied twice (I4)
