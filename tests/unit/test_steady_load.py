"""A steady load: the work is made one slice at a time, each slice the rate's share of it, and
everything made is submitted (no server: a fake submit that ACKs at once)."""

from __future__ import annotations

import time

from ulid import ULID

from benchmark.load import push, push_steady
from benchmark.workload import random_transfers, standard_banks
from eventsource.services.client import Submitted

BANKS = standard_banks(3, 2)


async def test_each_slice_is_made_and_submitted_at_the_rate_s_share() -> None:
    made: list[tuple[int, int]] = []
    submitted: list[str] = []

    def make(count: int, index: int):
        made.append((index, count))
        return random_transfers(BANKS, count, seed=index)

    async def submit(submitter: str, chunk) -> Submitted:
        submitted.extend(t.id for t in chunk)
        return Submitted([t.id for t in chunk], len(submitted), False, 0.0)

    report = await push_steady(submit, make, rate=1000, seconds=0.05, slice_s=0.01)

    assert made == [(index, 10) for index in range(5)]
    assert report.submitted == report.acked == len(submitted) == len(set(submitted)) == 50
    assert report.acked_ids == []  # a long soak keeps no ids


async def test_a_rate_below_one_per_slice_still_offers_its_share() -> None:
    counts: list[int] = []

    def make(count: int, index: int):
        counts.append(count)
        return random_transfers(BANKS, count, seed=index)

    async def submit(submitter: str, chunk) -> Submitted:
        return Submitted([t.id for t in chunk], 1, False, 0.0)

    report = await push_steady(submit, make, rate=150, seconds=0.1, slice_s=0.01)

    assert sum(counts) == report.acked == 15  # 1.5 per slice: alternately 1 and 2


async def test_a_last_partial_slice_offers_only_its_part() -> None:
    counts: list[int] = []

    def make(count: int, index: int):
        counts.append(count)
        return random_transfers(BANKS, count, seed=index)

    async def submit(submitter: str, chunk) -> Submitted:
        return Submitted([t.id for t in chunk], 1, False, 0.0)

    await push_steady(submit, make, rate=1000, seconds=0.025, slice_s=0.01)

    assert counts == [10, 10, 5]


async def test_a_paced_push_mints_each_id_when_it_sends_the_transfer() -> None:
    """A paced bench made its ids up front: at 500/s with a 30 s horizon, 93% of a 10x run's
    transfers were refused ID_EXPIRED. Minted at send time, an id is as young as its message."""
    work = random_transfers(BANKS, 30, seed=3)
    sent: list[tuple[str, str, int]] = []

    async def submit(submitter: str, chunk) -> Submitted:
        sent.extend((submitter, t.id, ULID.from_str(t.id).milliseconds) for t in chunk)
        return Submitted([t.id for t in chunk], len(sent), False, 0.0)

    started_ms = int(time.time() * 1000)
    report = await push(submit, work, rate=600, per_message=5, mint_ids=True)

    assert report.acked == 30
    assert sorted(report.acked_ids) == sorted((s, i) for s, i, _ in sent)
    assert not {i for _, i, _ in sent} & {w.id for w in work}
    assert all(ms >= started_ms for _, _, ms in sent)
    # the last chunk is sent ~40 ms after the first: its ids say so, made ones would not
    assert max(ms for *_, ms in sent) > min(ms for *_, ms in sent)
    # what each id stands for is kept: the same debtors, in the same order
    assert [s for s, _, _ in sent] == [w.debtor.participant for w in _by_chunk(work, 5)]


def _by_chunk(work, per_message: int):
    """The transfers in push's order: per submitter, chunks of `per_message`, in arrival order
    of each chunk's last transfer, then the rests."""
    chunks, queues = [], {}
    for transfer in work:
        queue = queues.setdefault(transfer.debtor.participant, [])
        queue.append(transfer)
        if len(queue) >= per_message:
            chunks.append(queue[:])
            queue.clear()
    chunks.extend(q for q in queues.values() if q)
    return [t for chunk in chunks for t in chunk]
