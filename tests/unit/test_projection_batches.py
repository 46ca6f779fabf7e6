"""A batch's upserts coalesced per key (projections/model.py) give the rows that applying every
upsert one after the other gives: the last snapshot of an account; for a transfer the last
values with each phase time the first one set (the upserts' COALESCE)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from projections.model import TRANSFER_PHASE_ARGS, last_per_key, merged_per_key

WIDTH = 21  # a transfer upsert's arguments


def _transfer(key: str, seq: int, phases: tuple) -> tuple:
    row = [f"{key}-v{seq}"] * WIDTH
    row[0], row[-1] = key, seq
    row[TRANSFER_PHASE_ARGS] = phases
    return tuple(row)


def _one_by_one(rows: list[tuple]) -> dict:
    """What the database holds after each upsert in turn (the SQL's ON CONFLICT rules)."""
    table: dict = {}
    for row in rows:
        old = table.get(row[0])
        if old is None:
            table[row[0]] = row
            continue
        times = tuple(
            o if o is not None else n
            for o, n in zip(old[TRANSFER_PHASE_ARGS], row[TRANSFER_PHASE_ARGS], strict=True)
        )
        new = list(row)
        new[TRANSFER_PHASE_ARGS] = times
        table[row[0]] = tuple(new)
    return table


def test_an_account_keeps_its_last_snapshot_of_the_batch() -> None:
    rows = [("a1", 100, 1), ("a2", 5, 2), ("a1", 90, 3), ("a1", 70, 4)]
    assert sorted(last_per_key(rows)) == [("a1", 70, 4), ("a2", 5, 2)]


def test_a_transfer_keeps_each_phase_time_first_set_and_its_last_values() -> None:
    rows = [
        _transfer("t1", 1, (10, None, None, None)),
        _transfer("t1", 2, (None, 20, None, None)),
        _transfer("t1", 3, (None, None, 30, 40)),
    ]
    (merged,) = merged_per_key(rows)
    assert merged[TRANSFER_PHASE_ARGS] == (10, 20, 30, 40)
    assert merged[-1] == 3 and merged[1] == "t1-v3"


phases = st.tuples(*[st.none() | st.integers(0, 9)] * 4)


@given(st.lists(st.tuples(st.sampled_from(["t1", "t2", "t3"]), phases), max_size=30))
def test_merged_upserts_equal_the_upserts_one_by_one(spec) -> None:
    rows = [_transfer(key, seq, times) for seq, (key, times) in enumerate(spec, 1)]
    assert {row[0]: row for row in merged_per_key(rows)} == _one_by_one(rows)
