"""A steady load: the work is made one slice at a time, each slice the rate's share of it, and
everything made is submitted (no server: a fake submit that ACKs at once)."""

from __future__ import annotations

from benchmark.load import push_steady
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
