"""`natsbank audit` on a real ledger reports each kind of corruption under the invariant it breaks:
the audit is only worth running if it can fail."""

from __future__ import annotations

import msgspec

from eventsource.adapters.cluster import ClusterInfo
from eventsource.core.events import TransferSettled, encoder, transfer_event_decoder
from eventsource.core.messages import SubmitTransfers
from eventsource.core.model import Outcome
from eventsource.core.subjects import (
    account_key,
    ledger_bucket,
    outgoing_key,
    partition_of,
    state_subject,
    submission_subject,
)
from eventsource.services.audit import audit
from tests.integration.live_bank import live_bank, transfer


async def test_the_audit_reports_forged_replayed_lost_and_deleted_records(nats1: ClusterInfo):
    async with live_bank(nats1) as bank:
        for participant in ("alpha", "beta"):  # gamma stays down: its submissions wait
            bank.start(participant)
        await bank.submit(transfer("t-1", "alpha/a1", "beta/b1", "3.00"))
        await bank.wait("alpha", ["t-1"])
        await bank.quiet()
        clean = await audit(bank.nc, bank.partitions, expect_final=True)
        assert clean.ok, clean.violations
        js = bank.nc.jetstream()

        async def latest(participant: str, key: str):
            k = partition_of(participant, bank.partitions)
            entry = await (await js.key_value(ledger_bucket(k))).get(key)
            return state_subject(k, key), entry.value

        async def violations(invariant: str) -> list[str]:
            report = await audit(bank.nc, bank.partitions, expect_final=False)
            return report.violations.get(invariant, [])

        # A credit replayed: the receiver's last account event written a second time.
        subject, data = await latest("beta", account_key("beta", "b1"))
        await js.publish(subject, data)
        assert any("applied twice (I3)" in v for v in await violations("I3"))

        # A final outcome rewritten.
        subject, data = await latest("alpha", outgoing_key("alpha", "t-1"))
        settled = transfer_event_decoder.decode(data)
        flipped = msgspec.structs.replace(settled.state, outcome=Outcome.REJECTED)
        await js.publish(subject, encoder.encode(TransferSettled(state=flipped, at=0)))
        assert any("alpha.out.t-1" in v for v in await violations("I4"))

        # ACKed by the inbox, but the submitter's service never ran: not lost yet, not final.
        gamma = transfer("t-2", "gamma/usd", "alpha/a1", "1.00", currency="USD")
        await js.publish(
            submission_subject(partition_of("gamma", bank.partitions), "gamma", "x"),
            msgspec.json.encode(SubmitTransfers(transfers=[gamma])),
        )
        assert any("gamma.t-2" in v for v in await violations("I7"))

        # A record deleted from the KV bucket.
        k = partition_of("beta", bank.partitions)
        await (await js.key_value(ledger_bucket(k))).delete(account_key("beta", "b2"))
        assert any("beta.acct.b2" in v for v in await violations("I5"))
