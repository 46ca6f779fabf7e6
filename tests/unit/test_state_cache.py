"""What a service remembers of the ledger's state after its own commits: bounded by a number of
keys, and with a bounded history by the horizon, so that its memory follows the horizon rather
than the history (issue 12). Forgetting is always safe: the ledger is read again."""

from __future__ import annotations

from eventsource.adapters.state_reader import StateReader


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def remember(reader: StateReader, *keys: str) -> None:
    reader.remember(dict.fromkeys(keys), {key: 1 for key in keys})


def test_a_key_untouched_for_longer_than_the_horizon_is_forgotten() -> None:
    clock = Clock()
    reader = StateReader(None, 0, keep_s=30.0, clock=clock)  # type: ignore[arg-type]
    remember(reader, "bank-a.out.1", "bank-a.out.2")
    clock.now += 20
    remember(reader, "bank-a.out.2")  # touched again: its 30 s start again
    clock.now += 11
    remember(reader, "bank-a.out.3")
    assert "bank-a.out.1" not in reader and "bank-a.out.2" in reader and len(reader) == 2
    clock.now += 31
    remember(reader, "bank-a.acct.alice")
    assert len(reader) == 1 and "bank-a.acct.alice" in reader


def test_without_a_horizon_only_the_capacity_bounds_what_is_remembered() -> None:
    clock = Clock()
    reader = StateReader(None, 0, capacity=3, clock=clock)  # type: ignore[arg-type]
    for n in range(5):
        remember(reader, f"bank-a.out.{n}")
        clock.now += 3600 * 24 * 365
    assert [f"bank-a.out.{n}" in reader for n in range(5)] == [False, False, True, True, True]


async def test_a_remembered_state_is_served_without_a_read() -> None:
    reader = StateReader(None, 0, keep_s=30.0, clock=Clock())  # type: ignore[arg-type]
    reader.remember({"bank-a.out.1": None}, {"bank-a.out.1": 7})
    assert await reader.load({"bank-a.out.1"}) == {"bank-a.out.1": (None, 7)}
