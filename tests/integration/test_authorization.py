"""The server enforces who may write and read what (issue 13, item 2): a real cluster with
authorization on, and bank-c's own valid credentials turned against bank-a."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from nats.aio.client import Client

from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.jetstream import read_last
from eventsource.adapters.nats_binary import find_nats_server
from eventsource.core.permissions import Role
from eventsource.services.independent.ledger import IndependentLedger
from tests.integration.authorized import AUTH, Provisioned, connected, provision
from tests.integration.refusals import answer, watched

LEDGER = "KV_ledger_0"
REFUSAL_WAIT_S = 1.0  # a refused request gets no answer: how long to wait for the one it lacks


@pytest.fixture
async def provisioned(authorized: ClusterInfo) -> Provisioned:
    return await provision(authorized)


def test_the_rendered_configuration_is_valid_for_nats_server(authorized: ClusterInfo) -> None:
    config = authorized.nodes[0].config_path
    checked = subprocess.run(
        [str(find_nats_server()), "-t", "-c", config], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    seeds = sorted((Path(authorized.state_dir) / "credentials").iterdir())
    assert {p.stat().st_mode & 0o777 for p in seeds} == {0o600}
    text = Path(config).read_text()
    assert all(p.read_text().strip() not in text for p in seeds)  # public keys only


async def test_an_unauthenticated_connection_is_refused(authorized: ClusterInfo) -> None:
    anonymous = Client()
    try:
        with pytest.raises(Exception, match=r"(?i)authorization"):
            await anonymous.connect(authorized.url, allow_reconnect=False, connect_timeout=2)
    finally:
        await anonymous.close()


async def _last(nc: Client, stream: str) -> int:
    return (await nc.jetstream().stream_info(stream)).state.last_seq


async def _attempt(nc: Client, subject: str, payload: bytes = b"{}") -> bytes | None:
    """A request as an attacker sends it: its answer, or None if none came."""
    return await answer(nc, subject, payload, timeout=REFUSAL_WAIT_S)


WRITES = [  # (what, subject): nothing may be stored, whatever the server answers
    ("bank-a's account", "$KV.ledger_0.bank-a.acct.a1"),
    ("bank-a's outgoing record", "$KV.ledger_0.bank-a.out.T1"),
    ("an outbox message naming bank-a as sender", "nb.0.to.bank-b.posting.bank-a.tok"),
    ("a confirm naming bank-a as sender", "nb.0.to.bank-b.confirm.bank-a.tok"),
    ("a submission for bank-a", "nb.0.to.bank-a.submit.bank-a.tok"),
    ("a legacy subject without a sender", "nb.0.to.bank-b.posting.tok"),
    ("its own funding key", "$KV.ledger_0.bank-c.fund.REF1"),
    ("the registry", "$KV.participants.bank-z"),
    ("the topology record", "$KV.participants._topology"),
    ("bank-a's dead letters", "nb.dlq.bank-a"),
]


@pytest.mark.parametrize(("what", "subject"), WRITES, ids=[w for w, _ in WRITES])
async def test_bank_c_cannot_write(provisioned: Provisioned, what: str, subject: str) -> None:
    cluster = provisioned.cluster
    async with connected(cluster, Role.AUDIT) as audit:
        before = {s: await _last(audit, s) for s in (LEDGER, "KV_participants", "DEADLETTER")}
        async with watched(cluster, Role.SERVICE, "bank-c") as bank_c:
            answered = await _attempt(bank_c, subject, b'{"forged": true}')
        assert answered is None or b'"seq"' not in answered, answered
        after = {s: await _last(audit, s) for s in before}
    assert after == before


API_CALLS = [  # (what, subject under the bank's prefix): refused, nothing changes
    ("delete the ledger", "$JS.ledger.API.STREAM.DELETE.KV_ledger_0"),
    ("delete the ledger (own API)", "$JS.API.STREAM.DELETE.KV_ledger_0"),
    ("purge the ledger", "$JS.ledger.API.STREAM.PURGE.KV_ledger_0"),
    ("delete bank-a's consumer", "$JS.ledger.API.CONSUMER.DELETE.KV_ledger_0.inbox_bank-a_0"),
    ("delete its own consumer", "$JS.ledger.API.CONSUMER.DELETE.KV_ledger_0.inbox_bank-c_0"),
    ("delete DEADLETTER", "$JS.ledger.API.STREAM.DELETE.DEADLETTER"),
    ("create a consumer", "$JS.ledger.API.CONSUMER.CREATE.KV_ledger_0.spy"),
    ("list every key", "$JS.ledger.API.STREAM.INFO.KV_ledger_0"),
    ("read bank-a's key", "$JS.ledger.API.DIRECT.GET.KV_ledger_0.$KV.ledger_0.bank-a.acct.a1"),
]


@pytest.mark.parametrize(("what", "subject"), API_CALLS, ids=[w for w, _ in API_CALLS])
async def test_bank_c_cannot_use_the_api_against_others(
    provisioned: Provisioned, what: str, subject: str
) -> None:
    cluster = provisioned.cluster
    async with watched(cluster, Role.SERVICE, "bank-c") as bank_c:
        answered = await _attempt(bank_c, subject, json.dumps({"name": "spy"}).encode())
    assert answered is None or (b'"success":true' not in answered and b"bank-a" not in answered)
    async with connected(cluster, Role.AUDIT) as audit:
        js = audit.jetstream()
        assert {s async for s in _names(js)} >= {LEDGER, "DEADLETTER", "KV_participants"}
        consumers = {c.name for c in await js.consumers_info(LEDGER)}
        assert {"inbox_bank-a_0", "inbox_bank-c_0", "submit_bank-a_0"} <= consumers
        assert "spy" not in consumers


async def _names(js):
    for name in await js.streams_info():
        yield name.config.name


async def test_bank_c_cannot_fetch_or_ack_bank_as_inbox(provisioned: Provisioned) -> None:
    cluster = provisioned.cluster
    async with (
        connected(cluster, Role.SERVICE, "bank-b") as bank_b,
        connected(cluster, Role.SERVICE, "bank-a") as bank_a,
        connected(cluster, Role.SERVICE, "bank-c") as bank_c,
        connected(cluster, Role.AUDIT) as audit,
    ):
        for token in ("t1", "t2"):
            await bank_b.jetstream().publish(f"nb.0.to.bank-a.result.bank-b.{token}", b"{}")
        spy = await bank_c.jetstream().pull_subscribe_bind("inbox_bank-a_0", stream=LEDGER)
        with pytest.raises(Exception):  # noqa: B017 -- no responder, a timeout: nothing comes
            await spy.fetch(1, timeout=REFUSAL_WAIT_S)
        own = await bank_a.jetstream().pull_subscribe_bind("inbox_bank-a_0", stream=LEDGER)
        first, second = await own.fetch(2, timeout=5)
        await bank_c.publish(first.reply, b"+ACK")  # bank-a's ack subject, from bank-c
        await bank_c.flush()  # the server has read it (and routed it, were it allowed)...
        # ...so bank-a's acknowledged ack of the second message is queued to the consumer after
        # it: once that is answered, a forged ack that got through would have been applied.
        await second.ack_sync(timeout=5)
        info = await audit.jetstream().consumer_info(LEDGER, "inbox_bank-a_0")
        assert info.num_ack_pending == 1  # the first: still bank-a's to ack
        await first.ack_sync(timeout=5)  # bank-a's own ack is taken
        info = await audit.jetstream().consumer_info(LEDGER, "inbox_bank-a_0")
        assert info.num_ack_pending == 0


async def test_funding_funds_and_bank_c_reads_only_its_own_account(
    provisioned: Provisioned,
) -> None:
    cluster = provisioned.cluster
    async with connected(cluster, Role.FUNDING) as funding:
        funded = await IndependentLedger(funding, AUTH.partitions).fund_account(
            "bank-c", "c1", "7.00", "REF-7"
        )
    assert funded.balance == 1200
    async with connected(cluster, Role.SERVICE, "bank-c") as bank_c:
        own = await read_last(bank_c, LEDGER, "$KV.ledger_0.bank-c.acct.c1")
        assert own is not None
        with pytest.raises(Exception):  # noqa: B017 -- no responder: not imported for bank-c
            await read_last(
                bank_c, LEDGER, "$KV.ledger_0.bank-a.acct.a1", retry_seconds=0, timeout=1
            )
