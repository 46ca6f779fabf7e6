"""Transient unavailability against real servers: a client rides out the election that follows
a `kill -9` of the ledger leader's node, and fails with one clear line once its bound is
reached (every node gone)."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time

import pytest
from nats.aio.client import Client

from benchmark.scenario import bootstrap
from benchmark.workload import Bank
from eventsource.adapters.batch_commit import commit_checked
from eventsource.adapters.cluster import ClusterInfo, kill_node
from eventsource.adapters.jetstream import connect, read_last
from eventsource.adapters.registry import registered_participants
from eventsource.adapters.retry import TRANSIENT_RETRY_SECONDS, transient_retry
from eventsource.core.errors import InfrastructureError, StaleState
from eventsource.core.model import Outcome
from eventsource.core.subjects import ledger_stream, outgoing_key, state_subject
from eventsource.core.workset import Write
from eventsource.services.client import read_transfer
from tests.integration.live_bank import live_bank, transfer
from tests.integration.replicas import leader_index

# The bound of a failing call is checked from below exactly; from above only loosely, with
# room for a loaded machine: the property is that the call gives up, not how fast.
GIVE_UP_SLACK_S = 10.0


async def close_after_the_servers(nc: Client) -> None:
    """nats-py's close flushes to the server, which these tests killed on purpose."""
    with contextlib.suppress(OSError):
        await nc.close()


async def ledger_leader(nc: Client, nodes: ClusterInfo) -> int:
    """The index of the node that leads the ledger (an R3 stream), asked until it has one."""
    read = functools.partial(nc.jetstream().stream_info, ledger_stream(0))
    info = await transient_retry(read, what="the ledger's info")
    assert info.config.num_replicas == 3
    return await leader_index(nc, nodes, ledger_stream(0))


@pytest.mark.slow
@pytest.mark.cluster3
async def test_accounts_submit_and_status_ride_out_the_election_after_the_leader_is_killed(
    nats3: ClusterInfo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="natsbank.retry")
    async with live_bank(nats3) as bank:
        bank.start_all()
        leader = await ledger_leader(bank.nc, nats3)
        kill_node(nats3, leader)
        # At once: until the two survivors elect a leader, each call below meets "no
        # responders" or a timeout, and must go on trying instead of failing.
        await bank.ledger.open_account("alpha", "a9", "EUR")
        funded = await bank.ledger.fund_account("alpha", "a9", "40.00")
        submitted = await bank.submit(transfer("t-election", "alpha/a9", "beta/b1", "25.00"))
        key = outgoing_key("alpha", "t-election")
        await read_transfer(bank.nc, bank.partitions, "alpha", key)  # pending or done: no error
        retried = [r.getMessage() for r in caplog.records if r.name == "natsbank.retry"]
        assert any(m.startswith("open account alpha/a9: ") for m in retried), retried

        assert funded.balance == 40_00
        assert submitted.ids == ["t-election"] and not submitted.duplicate
        final = await bank.wait("alpha", ["t-election"], timeout=60)
        assert final["t-election"].outcome is Outcome.OK
        account, _ = await bank.ledger.read_account("alpha", "a9")
        assert (account.balance, account.pending_debits) == (15_00, 0)  # funded once, debited once
        assert await ledger_leader(bank.nc, nats3) != leader
        report = await bank.audit()
        assert report.ok, dict(report.violations)


async def test_with_every_node_gone_a_read_fails_after_its_bound_with_one_line(
    nats1: ClusterInfo,
) -> None:
    await bootstrap(nats1.url, [Bank("alpha", ["a1"])])
    nc = await connect(nats1.url)
    subject = state_subject(0, "alpha.acct.a1")
    try:
        assert await read_last(nc, ledger_stream(0), subject, leader=True) is not None
        kill_node(nats1, 0)
        started = time.monotonic()
        with pytest.raises(InfrastructureError) as caught:
            await read_last(
                nc, ledger_stream(0), subject, leader=True, timeout=0.5, retry_seconds=2
            )
        waited = time.monotonic() - started
    finally:
        await close_after_the_servers(nc)
    message = str(caught.value)
    assert "\n" not in message
    said = re.match(
        rf"read of {re.escape(subject)} failed: still unavailable after retrying "
        r"for (\d+\.\d) s",
        message,
    )
    assert said is not None, message
    assert 2.0 <= float(said.group(1)) <= waited + 0.05  # what it says it retried (rounded)
    assert "attempts); last error: " in message
    assert 2.0 <= waited < 2.0 + 0.5 + GIVE_UP_SLACK_S  # the bound, one attempt's timeout


async def test_with_every_node_gone_a_commit_fails_after_its_bound_with_one_line(
    nats1: ClusterInfo,
) -> None:
    await bootstrap(nats1.url, [Bank("alpha", ["a1"])])
    nc = await connect(nats1.url)
    write = Write(state_subject(0, "alpha.acct.nobody"), b"{}", 0, "alpha.acct.nobody")
    try:
        kill_node(nats1, 0)
        with pytest.raises(InfrastructureError, match=r"^open x failed: still unavailable after"):
            await commit_checked(
                nc, ledger_stream(0), [write], what="open x", retry_seconds=1, timeout=0.5
            )
    finally:
        await close_after_the_servers(nc)


async def test_a_commit_repeated_after_it_landed_is_found_not_stored_twice(
    nats1: ClusterInfo,
) -> None:
    """What commit_checked does after an unanswered commit, with the answer known: the repeat is
    refused by the expected sequence, and the read-back finds the very batch it stored."""
    await bootstrap(nats1.url, [Bank("alpha", ["a1"])])
    nc = await connect(nats1.url)
    subject = state_subject(0, "alpha.acct.probe")
    batch = [Write(subject, b"opened", 0, None), Write(subject, b"funded", None, None)]
    try:
        first = await commit_checked(nc, ledger_stream(0), batch, what="open probe")
        again = await commit_checked(nc, ledger_stream(0), batch, what="open probe")
        assert again == first
        assert await read_last(nc, ledger_stream(0), subject, leader=True) == (b"funded", first)
        other = [Write(subject, b"opened by someone else", 0, None)]
        with pytest.raises(StaleState):
            await commit_checked(nc, ledger_stream(0), other, what="open probe")
    finally:
        await nc.close()


async def test_an_answer_that_a_repeat_cannot_change_is_not_retried(nats1: ClusterInfo) -> None:
    nc = await connect(nats1.url)
    try:
        started = time.monotonic()
        assert await registered_participants(nc) == []  # no bucket yet: 404 at once
        # Retried, it would take the whole retry bound.
        assert time.monotonic() - started < TRANSIENT_RETRY_SECONDS / 2
    finally:
        await nc.close()
