"""Where a service's re-fold of an account starts, on a real server (issue 13, 3b;
adapters/snapshot_verify.py): at the account's opening, at the first live event after an
archive cut (a carried copy), at a state the reader already trusts, or, for a long history, at
the event REFOLD_EVENTS_MAX back; and what each start can and cannot see."""

from __future__ import annotations

from dataclasses import replace

import pytest
from nats.aio.client import Client

from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.jetstream import connect
from eventsource.adapters.provision import apply_topology
from eventsource.adapters.snapshot_verify import refold_problem
from eventsource.adapters.state_reader import StateReader
from eventsource.adapters.topology import Topology
from eventsource.core.account import Account, EntryKind
from eventsource.core.archive_fold import CARRIED_HEADER
from eventsource.core.events import AccountChanged, AccountOpened, AccountSnapshot, Entry, encoder
from eventsource.core.quarantine import Quarantined
from eventsource.core.subjects import account_key, ledger_stream, state_subject
from tests.integration.archiving import HISTORY

pytestmark = pytest.mark.timeout(120)
STREAM = ledger_stream(0)
KEY = account_key("bank-a", "a1")
SUBJECT = state_subject(0, KEY)


class History:
    """bank-a/a1's events as its writers would append them; `account` is the true fold."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.account = Account("bank-a", "a1", "EUR")
        self.seqs: list[int] = []
        self.lie = 0  # what the forged snapshot added, carried by every later snapshot

    async def open(self) -> None:
        await self._put(AccountOpened(state=AccountSnapshot.of(self.account), at=0))

    async def fund(self, ref: str, minor: int = 1_00) -> None:
        self.account = self.account.apply(EntryKind.FUNDED, minor)
        entry = Entry(EntryKind.FUNDED, ref, f"{minor // 100}.{minor % 100:02d}")
        await self._put(AccountChanged(state=self._said(), at=0, entries=[entry]))

    async def forge(self, richer: int = 9_900_00) -> None:
        """A possible snapshot with no entry: every later honest snapshot builds on it."""
        self.account = replace(self.account, balance=self.account.balance + richer)
        await self._put(AccountChanged(state=self._said(), at=0, entries=[]))
        self.account = replace(self.account, balance=self.account.balance - richer)
        self.lie += richer

    def _said(self) -> AccountSnapshot:
        return AccountSnapshot.of(replace(self.account, balance=self.account.balance + self.lie))

    async def _put(self, event, headers: dict | None = None) -> int:
        ack = await self.nc.jetstream().publish(SUBJECT, encoder.encode(event), headers=headers)
        self.seqs.append(ack.seq)
        return ack.seq

    async def problem(self, **options) -> str | None:
        return await refold_problem(self.nc, STREAM, SUBJECT, KEY, self.seqs[-1], **options)


@pytest.fixture
async def nc(nats1: ClusterInfo):
    client = await connect(nats1.url)
    # A live horizon: the ledger may be purged below an archive cut, as the archiver does.
    await apply_topology(client, Topology(replicas=1, participants=["bank-a"], history=HISTORY))
    yield client
    await client.close()


async def test_a_forgery_among_the_last_events_is_seen_an_older_one_is_not(nc: Client) -> None:
    history = History(nc)
    await history.open()
    await history.fund("F0")
    await history.forge()
    for i in range(8):  # honest entries on top, as a writer that does not check would add
        await history.fund(f"F{i + 1}")
    assert await history.problem() == (
        "its snapshot says balance 9909.00, its entries fold to balance 9.00"
    )
    # The forged event is the 9th last. A window of 10 starts at the event before it and folds
    # through it; a window of 9 starts at it, and a start's snapshot is taken as it says.
    assert await history.problem(events_max=10) is not None
    assert await history.problem(events_max=9) is None


async def test_after_an_archive_cut_the_fold_starts_at_the_carried_copy(nc: Client) -> None:
    history = History(nc)
    await history.open()
    await history.fund("F0")
    trusted = (history.account, history.seqs[-1])  # as a reader cached it
    for i in range(1, 3):
        await history.fund(f"F{i}")
    last = AccountChanged(
        state=AccountSnapshot.of(history.account),
        at=0,
        entries=[Entry(EntryKind.FUNDED, "F2", "1.00")],
    )  # the archiver's copy of the last event before the cut, byte for byte
    carried = await history._put(last, {CARRIED_HEADER: str(history.seqs[-1])})
    await nc.jetstream().purge_stream(STREAM, seq=carried, subject=SUBJECT)
    assert await history.problem() is None  # the copy is the start; it is not folded again
    await history.fund("F3")
    assert await history.problem() is None

    # A reader that trusted an older state whose successors were purged folds again from the
    # first live event rather than quarantine an honest account.
    reader = StateReader(nc, 0)
    reader.remember({KEY: trusted[0]}, {KEY: trusted[1]})
    found = await reader.load({KEY}, stale={KEY})
    assert found[KEY] == (history.account, history.seqs[-1])
    assert reader.quarantined == set()

    await history.forge()
    found = await StateReader(nc, 0).load({KEY})
    assert isinstance(found[KEY][0], Quarantined)
    assert "its entries fold to balance 4.00" in found[KEY][0].detail
