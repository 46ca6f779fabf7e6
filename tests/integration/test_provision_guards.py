"""`streams init` never weakens a guarantee silently: settings that would refuse submissions,
drop events or stop redelivery are applied only with --force, on a new system as on a running
one; --dry-run shows every consumer it would touch."""

from __future__ import annotations

import msgspec
import pytest
from nats.js.errors import NotFoundError

from eventsource.adapters.jetstream import connect
from eventsource.adapters.provision import Action, apply_topology
from eventsource.adapters.registry import Registration, put_registration
from eventsource.adapters.topology import InboxConfig, LedgerConfig, Topology
from eventsource.core.subjects import inbox_consumer, ledger_stream

GIVES_UP = Topology(inbox=InboxConfig(max_deliver=5), participants=["alpha"])
TINY = Topology(ledger=LedgerConfig(max_msg_size=10), participants=["alpha"])


async def test_settings_that_break_a_guarantee_need_force_on_a_new_system(nats1):
    nc = await connect(nats1.url)
    try:
        for layout, setting in ((GIVES_UP, "inbox.max_deliver"), (TINY, "ledger.max_msg_size")):
            changes = await apply_topology(nc, layout)
            assert [(c.name, c.action) for c in changes] == [(setting, Action.REFUSED)]
            assert "--force" in changes[0].detail
            with pytest.raises(NotFoundError):  # nothing was created
                await nc.jetstream().stream_info(ledger_stream(0))
        await apply_topology(nc, GIVES_UP, force=True)
        info = await nc.jetstream().consumer_info(ledger_stream(0), inbox_consumer("alpha", 0))
        assert info.config.max_deliver == 5
    finally:
        await nc.close()


async def test_a_running_system_is_not_weakened_without_force(nats1):
    nc = await connect(nats1.url)
    try:
        await apply_topology(nc, Topology(participants=["alpha"]))
        refused = await apply_topology(nc, GIVES_UP)
        assert {c.action for c in refused} == {Action.REFUSED}
        info = await nc.jetstream().consumer_info(ledger_stream(0), inbox_consumer("alpha", 0))
        assert info.config.max_deliver in (-1, None)  # still never gives up
    finally:
        await nc.close()


async def test_dry_run_shows_the_consumers_of_every_registered_participant(nats1):
    nc = await connect(nats1.url)
    try:
        await apply_topology(nc, Topology(participants=["alpha"]))
        # registered after init (as `accounts open` does), with no consumer yet
        await put_registration(nc.jetstream(), Registration("late", 0))
        changes = await apply_topology(nc, Topology(participants=["alpha"]), dry_run=True)
        late = [c for c in changes if c.kind == "consumer" and "inbox_late" in c.name]
        assert [c.action for c in late] == [Action.CREATED]
        with pytest.raises(NotFoundError):  # a dry run changes nothing
            await nc.jetstream().consumer_info(ledger_stream(0), inbox_consumer("late", 0))
    finally:
        await nc.close()


def test_a_max_deliver_the_server_refuses_is_one_clear_line():
    with pytest.raises(msgspec.ValidationError, match="max_deliver"):
        msgspec.convert({"max_deliver": 1}, InboxConfig)
