"""A batch as one statement's parameters (projections/model.py, postgres.py) and a delivery's
sequences read from its ack subject (projections/pull.py): what the projector writes must not
change with the way it is sent."""

from __future__ import annotations

import re

import msgspec
import pytest

from projections.model import (
    ACCOUNT_COLUMNS,
    TRANSFER_COLUMNS,
    TRANSFER_PHASE_ARGS,
    AccountRow,
    LedgerEvent,
    TransferRow,
    upserts_above,
)
from projections.postgres import _APPLY, apply_args
from projections.pull import delivery_sequences

STREAM = "KV_ledger_0"


def account(seq: int, key: str = "alpha.acct.a1", balance: str = "10.00") -> LedgerEvent:
    row = AccountRow(key, "alpha", key.rsplit(".", 1)[-1], "EUR", balance, "0.00", "0.00", False,
                     1_000 + seq)  # fmt: skip
    return LedgerEvent(STREAM, seq, row)


def transfer(seq: int, phase: str, key: str = "alpha.out.t1") -> LedgerEvent:
    row = TransferRow(key, "alpha", "submitter", "t1", "beta", "alpha/a1", "beta/b1", "1.25",
                      "EUR", "", phase, None, None, "", 1_000 + seq)  # fmt: skip
    return LedgerEvent(STREAM, seq, row)


def test_events_at_or_below_the_position_are_skipped() -> None:
    events = [account(5, balance="1.00"), transfer(6, "RESERVED"), account(7, balance="2.00")]
    upserts = upserts_above(events, 6)
    assert upserts.applied == 1 and upserts.transfers == []
    assert [row[4] for row in upserts.accounts] == ["2.00"]
    assert upserts.last_at == 1_007


def test_nothing_above_the_position_writes_no_row() -> None:
    upserts = upserts_above([account(3), transfer(4, "RESERVED")], 4)
    assert (upserts.accounts, upserts.transfers, upserts.applied, upserts.last_at) == (
        [],
        [],
        0,
        None,
    )


def test_a_batch_writes_one_upsert_per_key_with_every_phase_time() -> None:
    events = [transfer(1, "RESERVED"), account(2, balance="8.75"), transfer(3, "SETTLED")]
    upserts = upserts_above(events, 0)
    (row,) = upserts.transfers
    assert dict(zip(TRANSFER_COLUMNS, row, strict=True))["seq"] == 3
    assert row[TRANSFER_PHASE_ARGS] == (1_001, 1_003, None, None)
    (acct,) = upserts.accounts
    assert dict(zip(ACCOUNT_COLUMNS, acct, strict=True))["balance"] == "8.75"
    assert upserts.applied == 3


def test_the_statement_takes_each_table_s_rows_and_the_position() -> None:
    upserts = upserts_above([account(1), transfer(2, "RESERVED")], 0)
    args = apply_args(STREAM, 2, upserts)
    numbers = {int(n) for n in re.findall(r"\$(\d+)", _APPLY)}
    assert numbers == set(range(1, len(args) + 1))
    assert args[2:] == [STREAM, 2, 1_002]
    # Each table's rows as one JSON array of arrays, in its columns' order.
    assert msgspec.json.decode(args[0]) == [list(row) for row in upserts.accounts]
    assert msgspec.json.decode(args[1]) == [list(row) for row in upserts.transfers]


def test_every_column_is_read_from_its_place_in_a_row() -> None:
    for table, columns in (("accounts", ACCOUNT_COLUMNS), ("transfers", TRANSFER_COLUMNS)):
        select = _APPLY.split(f"INSERT INTO {table} (", 1)[1].split("FROM jsonb_array_elements")[0]
        assert re.findall(r"r->>(\d+)", select) == [str(i) for i in range(len(columns))]


def test_sequences_are_read_from_an_ack_subject() -> None:
    assert delivery_sequences("$JS.ACK.KV_ledger_0.projector_pg_0.1.4017.12.1764500000123.9") == (
        4017,
        12,
    )
    with_domain = "$JS.ACK.hub.ACCHASH.KV_ledger_0.projector_pg_0.2.88.7.1764500000123.0.rnd"
    assert delivery_sequences(with_domain) == (88, 7)
    assert delivery_sequences(with_domain.rsplit(".", 1)[0]) == (88, 7)


@pytest.mark.parametrize(
    "reply", ["", "_INBOX.abc", "$JS.ACK.s.c.1.2", "$JS.API.s.c.1.2.3.4.5", "$JS.ACK.s.c.1.x.3.4.5"]
)
def test_a_reply_that_is_not_an_ack_subject_is_refused(reply: str) -> None:
    with pytest.raises(ValueError):
        delivery_sequences(reply)
