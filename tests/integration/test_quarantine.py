"""One corrupt record never wedges a service: a stored event that does not decode is
quarantined (log, metrics, audit), the items that would read it are dead-lettered QUARANTINED,
and every other transfer of the same group, the give-up clock and the reads go on."""

from __future__ import annotations

import pytest

from eventsource.core.errors import RecordQuarantined
from eventsource.core.events import AccountChanged, AccountSnapshot, encoder
from eventsource.core.model import Outcome
from eventsource.core.subjects import account_key, outgoing_key, state_subject
from eventsource.services.client import read_transfer
from tests.integration.ledger_reads import dead_letters
from tests.integration.live_bank import LiveBank, transfer
from tests.integration.polling import until

JUNK = b"\x00 not an event"


async def corrupt(bank: LiveBank, key: str) -> None:
    """A foreign write onto a record's subject (what a bug or an attacker could leave)."""
    await bank.nc.jetstream().publish(state_subject(0, key), JUNK)


async def test_an_innocent_transfer_in_the_same_submission_is_decided(bank: LiveBank):
    await corrupt(bank, account_key("alpha", "a1"))
    bank.start_all()
    stuck = transfer("stuck", "alpha/a1", "beta/b1")  # its debtor account is quarantined
    innocent = transfer("innocent", "alpha/a2", "beta/b1")  # same message, another account
    await bank.submit(stuck, innocent)
    final = await bank.wait("alpha", ["innocent"])
    assert final["innocent"].outcome is Outcome.OK
    letters = [(h["Natsbank-Reason"], h["Natsbank-Detail"]) for _, h, _ in await dead_letters(bank)]
    assert [reason for reason, _ in letters] == ["QUARANTINED"]
    assert "alpha.acct.a1" in letters[0][1]
    assert (
        await read_transfer(bank.nc, bank.partitions, "alpha", outgoing_key("alpha", "stuck"))
        is None
    )
    alpha = next(s for s, _ in bank.services if s.participant == "alpha")
    assert account_key("alpha", "a1") in alpha.quarantined()
    assert alpha.figures()["quarantined_records"] >= 1
    # The reads go on: the listing leaves the corrupt account out, the rest is there.
    listed = {f"{a.participant}/{a.account}" for a in await bank.ledger.accounts()}
    assert "alpha/a2" in listed and "alpha/a1" not in listed
    report = await bank.audit(patience=5)
    assert any("quarantined" in problem for problem in report.violations["I5"])


async def test_a_corrupt_transfer_record_does_not_stop_the_give_up_clock(bank: LiveBank):
    await corrupt(bank, outgoing_key("alpha", "junk-record"))
    limited = transfer("limited", "alpha/a1", "beta/b1", deadline_ms=1500)
    await bank.submit(limited)
    # beta is down; alpha's start-up catch-up reads the junk record among its records, goes
    # on, admits the transfer, and gives up on it at its deadline (both modes).
    alpha = bank.start("alpha")
    final = await bank.wait("alpha", ["limited"], timeout=30)
    assert final["limited"].outcome is Outcome.CANCELLED
    assert outgoing_key("alpha", "junk-record") in alpha.quarantined()
    with pytest.raises(RecordQuarantined, match=r"alpha\.out\.junk-record"):
        await read_transfer(bank.nc, bank.partitions, "alpha", outgoing_key("alpha", "junk-record"))


async def test_a_forged_account_snapshot_is_quarantined_not_trusted(bank: LiveBank):
    """An AccountChanged whose snapshot no fold can produce (here: an overdraft, a balance
    below what is reserved) is never decided on: the account is quarantined."""
    key = account_key("alpha", "a1")
    forged = AccountSnapshot(
        participant="alpha",
        account="a1",
        currency="EUR",
        balance="10.00",
        pending_debits="900.00",
        pending_credits="0.00",
    )
    event = AccountChanged(state=forged, entries=[], at=0)
    await bank.nc.jetstream().publish(state_subject(0, key), encoder.encode(event))
    bank.start_all()
    await bank.submit(transfer("on-forged", "alpha/a1", "beta/b1"))
    letters = await until(lambda: dead_letters(bank), "the item dead-lettered")
    assert [(h["Natsbank-Reason"]) for _, h, _ in letters] == ["QUARANTINED"]
    assert "overdraft" in letters[0][1]["Natsbank-Detail"]
    alpha = next(s for s, _ in bank.services if s.participant == "alpha")
    assert key in alpha.quarantined()
    assert (
        await read_transfer(bank.nc, bank.partitions, "alpha", outgoing_key("alpha", "on-forged"))
        is None
    )
