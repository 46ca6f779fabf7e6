"""A service never trusts a snapshot that its own fold of the entries does not reproduce (issue
13, 3b). The server lets only a bank's service and the operator's funding role write a bank's
account keys; here the funding credential (stolen, or buggy) writes snapshots that look possible
but disagree with the entries. bank-a's service quarantines both accounts, the one it had cached
(its commit is refused as stale, the re-read re-folds) and the one it reads cold, and moves
nothing; the audit names only the forged accounts (I5) and the two transfers it never decided
(I7: acknowledged, then dead-lettered QUARANTINED)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from eventsource.adapters.cluster import ClusterInfo
from eventsource.core.events import AccountChanged, AccountSnapshot, encoder
from eventsource.core.model import Outcome
from eventsource.core.permissions import Role
from eventsource.core.protocol import Phase
from eventsource.core.subjects import account_key, incoming_key, outgoing_key, state_subject
from eventsource.services.client import read_transfer, submit, wait_final
from eventsource.services.independent.ledger import IndependentLedger
from tests.integration.authorized import AUTH, connected
from tests.integration.hostile import FUNDED_A1, Switch, running_switch
from tests.integration.live_bank import transfer
from tests.integration.polling import until

pytestmark = pytest.mark.timeout(180)
RICHER = 9_900_00  # what the forged snapshots add, with no entry behind it


async def forge_richer(switch: Switch, participant: str, name: str) -> int:
    """As the funding role: an AccountChanged with no entry whose snapshot says RICHER more
    (possible: nothing negative, no overdraft). Returns the forged balance."""
    account = await switch.account(participant, name)
    forged = replace(account, balance=account.balance + RICHER)
    event = AccountChanged(state=AccountSnapshot.of(forged), at=0, entries=[])
    async with connected(switch.cluster, Role.FUNDING) as funding:
        key = account_key(participant, name)
        await funding.jetstream().publish(state_subject(0, key), encoder.encode(event))
    return forged.balance


async def test_a_possible_snapshot_the_entries_do_not_fold_to_is_quarantined(
    authorized: ClusterInfo,
) -> None:
    async with running_switch(authorized) as switch:
        async with connected(authorized, Role.FUNDING) as funding:
            await IndependentLedger(funding, AUTH.partitions).open_account(
                "bank-a", "a3", "EUR", "20.00"
            )
        assert await switch.honest_transfer("before") is Outcome.OK  # bank-a caches a1
        cached = await forge_richer(switch, "bank-a", "a1")
        cold = await forge_richer(switch, "bank-a", "a3")
        async with connected(authorized, Role.CLIENT, "bank-a") as bank_a:
            await submit(
                bank_a,
                AUTH.partitions,
                "bank-a",
                [
                    transfer("on-cached", "bank-a/a1", "bank-b/b1", "50.00"),
                    transfer("on-cold", "bank-a/a3", "bank-b/b1", "50.00"),
                ],
            )

        async def both_letters() -> list | None:
            letters = await switch.letters("QUARANTINED")
            return letters if len(letters) >= 2 else None

        letters = await until(both_letters, "both items dead-lettered QUARANTINED")
        details = sorted(letter.detail for letter in letters)
        assert [letter.participant for letter in letters] == ["bank-a", "bank-a"]
        for name, detail in zip(("a1", "a3"), details, strict=True):
            assert f"bank-a.acct.{name}" in detail
            assert "its snapshot says balance" in detail and "its entries fold to" in detail

        # Nothing moved: the forged snapshots are the last word in the ledger, bank-b got only
        # the honest transfer, and bank-a recorded neither transfer.
        assert await switch.balance("bank-a", "a1") == (cached, 0, 0)
        assert await switch.balance("bank-a", "a3") == (cold, 0, 0)
        assert cached == FUNDED_A1 - 1000 + RICHER
        assert await switch.balance("bank-b", "b1") == (1000, 0, 0)
        for tid in ("on-cached", "on-cold"):
            key = outgoing_key("bank-a", tid)
            assert await read_transfer(switch.operator, AUTH.partitions, "bank-a", key) is None

        # The switch carries on for everyone else, and the audit names only the forged keys.
        async with connected(authorized, Role.CLIENT, "bank-c") as bank_c:
            await submit(
                bank_c,
                AUTH.partitions,
                "bank-c",
                [transfer("c-pays", "bank-c/c1", "bank-b/b1", "1.00")],
            )
            final = await wait_final(bank_c, AUTH.partitions, "bank-c", ["c-pays"], timeout=60)
        assert final["c-pays"].outcome is Outcome.OK
        paid = incoming_key("bank-b", "bank-c", "c-pays")

        async def confirmed() -> bool:
            found = await read_transfer(switch.operator, AUTH.partitions, "bank-b", paid)
            return found is not None and found[0].phase is Phase.CONFIRMED

        await until(confirmed, "bank-b confirmed c-pays")
        report = await switch.audit()
        forged_keys = (account_key("bank-a", "a1"), account_key("bank-a", "a3"))
        i5 = report.violations.get("I5", [])
        assert i5 and all(any(k in line for k in forged_keys) for line in i5), i5
        stuck = sorted(report.violations.get("I7", []))  # ACKed, never decided: quarantined
        assert [line.split(":")[0] for line in stuck] == ["bank-a.on-cached", "bank-a.on-cold"]
        others = {i: v for i, v in report.violations.items() if v and i not in ("I5", "I7")}
        assert others == {}, others
