"""I8, every movement has a cause: money minted or moved by writing straight into the ledger's
KV subjects (as a client with no credentials could on an open cluster) is reported by
`natsbank audit`, each forgery under I8; an honest ledger reports none."""

from __future__ import annotations

from eventsource.adapters.cluster import ClusterInfo
from eventsource.core.account import Account, EntryKind
from eventsource.core.events import (
    AccountChanged,
    AccountSnapshot,
    Entry,
    PostingAccepted,
    TransferState,
    account_event_decoder,
    encoder,
)
from eventsource.core.model import Outcome, Side, validate_transfer
from eventsource.core.money import format_amount
from eventsource.core.protocol import Phase
from eventsource.core.signing import Signer, funding_bytes, new_seed
from eventsource.core.subjects import account_key, incoming_key, ledger_bucket, state_subject
from eventsource.services.audit import audit
from tests.integration.live_bank import LiveBank, live_bank, transfer


async def _account(bank: LiveBank, key: str) -> Account:
    kv = await bank.nc.jetstream().key_value(ledger_bucket(0))
    return account_event_decoder.decode((await kv.get(key)).value).state.to_account()


async def _write_entries(
    bank: LiveBank, participant: str, name: str, entries: list[tuple[EntryKind, str, int]], **extra
) -> None:
    """One forged AccountChanged with a consistent snapshot: only the cause is missing."""
    key = account_key(participant, name)
    account = await _account(bank, key)
    written = []
    for kind, ref, minor in entries:
        account = account.apply(kind, minor)
        written.append(Entry(kind, ref, format_amount(minor, account.currency)))
    event = AccountChanged(state=AccountSnapshot.of(account), at=0, entries=written, **extra)
    await bank.nc.jetstream().publish(state_subject(0, key), encoder.encode(event))


async def _i8(bank: LiveBank) -> list[str]:
    report = await audit(bank.nc, bank.partitions, expect_final=False)
    return report.violations.get("I8", [])


async def test_the_audit_reports_minted_and_stolen_money_and_forged_credits(nats1: ClusterInfo):
    async with live_bank(nats1) as bank:
        bank.start_all()
        await bank.submit(transfer("t-1", "alpha/a1", "beta/b1", "3.00"))
        await bank.wait("alpha", ["t-1"])
        await bank.quiet()
        clean = await audit(bank.nc, bank.partitions, expect_final=True)
        assert clean.ok, clean.violations
        assert clean.violations.get("I8", []) == []
        assert clean.signatures["verified"] >= 3 and clean.signatures["refused"] == 0

        # Mint: a FUNDED entry with no signature, and one signed by a key that is not the
        # operator's.
        await _write_entries(bank, "alpha", "a2", [(EntryKind.FUNDED, "mint-1", 500_00)])
        stranger = Signer(new_seed())
        signature = stranger.sign(funding_bytes("alpha", "a2", "EUR", "mint-2", "600.00"))
        await _write_entries(
            bank,
            "alpha",
            "a2",
            [(EntryKind.FUNDED, "mint-2", 600_00)],
            signatures={"mint-2": signature},
        )
        found = await _i8(bank)
        assert any("FUNDED mint-1" in v and "no signature" in v for v in found), found
        assert any("FUNDED mint-2" in v and "does not verify" in v for v in found), found

        # Steal: beta/b2 loses 50.00 and alpha/a2 gains it: balanced (I1 holds), no transfer.
        await _write_entries(
            bank,
            "beta",
            "b2",
            [(EntryKind.RESERVED, "steal-1", 50_00), (EntryKind.DEBITED, "steal-1", 50_00)],
        )
        await _write_entries(
            bank,
            "alpha",
            "a2",
            [
                (EntryKind.CREDIT_PENDING, "beta.steal-1", 50_00),
                (EntryKind.CREDITED, "beta.steal-1", 50_00),
            ],
        )
        found = await _i8(bank)
        for key, ref in (("beta.acct.b2", "steal-1"), ("alpha.acct.a2", "beta.steal-1")):
            assert any(v.startswith(f"{key}: ") and ref in v for v in found), (key, found)

        # A forged pending credit with a forged receiver record: no posting of alpha behind it.
        ghost = validate_transfer(transfer("ghost", "alpha/a1", "beta/b1", "9.00"), "alpha")
        state = TransferState(
            transfer=ghost, digest="g", side=Side.RECEIVER, phase=Phase.DECIDED, outcome=Outcome.OK
        )
        record = incoming_key("beta", "alpha", "ghost")
        await bank.nc.jetstream().publish(
            state_subject(0, record), encoder.encode(PostingAccepted(state=state, at=0))
        )
        await _write_entries(bank, "beta", "b1", [(EntryKind.CREDIT_PENDING, "alpha.ghost", 900)])
        found = await _i8(bank)
        assert any(v.startswith(f"{record}: ") and "no decided posting" in v for v in found), found
