"""No submission can be ACKed into limbo: only registered participants' inboxes take messages,
so a submission for anybody else is refused before any ACK, by natsbank's client and by the
server itself; registering opens the inbox, also when registrations race."""

from __future__ import annotations

import asyncio

import pytest
from nats.js.errors import NoStreamResponseError

from eventsource.adapters.topology import Topology
from eventsource.core.errors import DomainError, RejectionCause
from eventsource.core.events import encoder
from eventsource.core.messages import SubmitTransfers
from eventsource.core.model import Outcome
from eventsource.core.subjects import inbox_filter, ledger_stream, submission_subject
from tests.integration.live_bank import LiveBank, transfer


async def test_an_unregistered_submitter_is_refused_before_any_ack(bank: LiveBank):
    stored = (await bank.nc.jetstream().stream_info(ledger_stream(0))).state.messages
    with pytest.raises(DomainError) as refused:
        await bank.ledger.submit("ghost", [transfer("t-ghost", "ghost/g1", "alpha/a1")])
    assert refused.value.cause is RejectionCause.UNKNOWN_PARTICIPANT
    assert (await bank.nc.jetstream().stream_info(ledger_stream(0))).state.messages == stored


async def test_the_server_takes_no_message_for_an_unregistered_inbox(bank: LiveBank):
    payload = encoder.encode(SubmitTransfers(transfers=[transfer("t1", "ghost/g1", "alpha/a1")]))
    subject = submission_subject(0, "ghost", "t1")
    with pytest.raises(NoStreamResponseError):  # no stream matches: no ACK
        await bank.nc.jetstream().publish(subject, payload, timeout=2)
    await bank.ledger.register(Topology(), "ghost")
    ack = await bank.nc.jetstream().publish(subject, payload, timeout=5)
    assert ack.stream == ledger_stream(0)
    await bank.ledger.open_account("ghost", "g1", "EUR", "20.00")
    bank.start_all()
    bank.start("ghost")
    final = await bank.wait("ghost", ["t1"])
    assert final["t1"].outcome is Outcome.OK
    assert (await bank.audit()).ok


async def test_racing_registrations_all_open_their_inboxes(bank: LiveBank):
    names = [f"racer-{i}" for i in range(8)]
    await asyncio.gather(*(bank.ledger.register(Topology(), name) for name in names))
    info = await bank.nc.jetstream().stream_info(ledger_stream(0))
    for name in [*names, *bank.participants]:
        assert inbox_filter(0, name) in info.config.subjects, name
