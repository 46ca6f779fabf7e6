"""Every role works with authorization on, with nothing but its own credential: a bank's
service reads its records without a consumer (the give-up watch at start, core mode's sweep),
core-NATS mode crosses bank accounts through LEDGER, and the operator's tools, each in its own
account, read with direct gets (research note sections 5 and 8)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from eventsource.adapters.cluster import ClusterInfo, LocalCluster
from eventsource.adapters.dead_letter_stream import list_letters
from eventsource.bootstrap import ServeOptions, participant_service
from eventsource.core.dead_letter_records import LetterFilter
from eventsource.core.limits import SWEEP_INTERVAL_S
from eventsource.core.model import AccountRef, Outcome, TransferRequest
from eventsource.core.permissions import Role
from eventsource.core.subjects import outgoing_key
from eventsource.services.audit import audit
from eventsource.services.client import read_transfer, submit, wait_final
from eventsource.services.independent.ledger import IndependentLedger
from eventsource.settings import Transport
from tests.integration.authorized import AUTH, Provisioned, connected, provision

DEADLINE_MS = 1500
OUTCOME_WAIT_S = 30.0  # far below the 60 s sweep: only the read at start can give up in time


@pytest.fixture
def authorized(tmp_path: Path) -> Iterator[ClusterInfo]:
    with LocalCluster(tmp_path / "auth", nodes=1, auth=AUTH) as info:
        yield info


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
    cluster: ClusterInfo, participant: str, transport: Transport = Transport.JETSTREAM
) -> AsyncIterator[None]:
    """One instance of `participant`'s service, connected as that bank's service only."""
    stop = asyncio.Event()
    async with connected(cluster, Role.SERVICE, participant) as nc:
        ledger = IndependentLedger(nc, AUTH.partitions)
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


async def test_the_dead_letters_tool_lists_without_a_consumer(provisioned: Provisioned) -> None:
    cluster = provisioned.cluster
    async with connected(cluster, Role.SERVICE, "bank-c") as bank_c:
        await bank_c.jetstream().publish("nb.0.to.bank-b.posting.bank-c.junk", b"not json")
    async with serving(cluster, "bank-b"), connected(cluster, Role.DEAD_LETTERS) as tool:
        listing = await _until_listed(tool)
    assert [letter.participant for letter in listing.letters] == ["bank-b"]


async def _until_listed(tool: Client, patience_s: float = 20.0):
    deadline = time.monotonic() + patience_s
    while True:
        listing = await list_letters(tool, LetterFilter(), 10)
        if listing.letters or time.monotonic() > deadline:
            return listing
        await asyncio.sleep(0.2)
