"""The transfers the projection tests project: OK ones between the three banks, and one of each
refusal."""

from __future__ import annotations

from tests.integration.live_bank import LiveBank, transfer


async def run_transfers(bank: LiveBank, count: int = 12) -> None:
    """OK transfers both ways and a few REJECTED ones, all final, inboxes drained."""
    bank.start_all()
    by_submitter: dict[str, list] = {}
    for i in range(count):
        debtor, creditor = [("alpha/a1", "beta/b1"), ("beta/b2", "gamma/g1"),
                            ("gamma/g1", "alpha/a2")][i % 3]  # fmt: skip
        by_submitter.setdefault(debtor.split("/")[0], []).append(
            transfer(f"ok-{i}", debtor, creditor, f"{i + 1}.25")
        )
    by_submitter["alpha"] += [
        transfer("no-funds", "alpha/a1", "beta/b1", "5000.00"),
        transfer("no-acct", "alpha/a1", "beta/nope"),
        transfer("bad-ccy", "alpha/a2", "gamma/usd"),
        transfer("bad-amount", "alpha/a2", "beta/b1", "1.001"),
    ]
    for submitter, requests in by_submitter.items():
        await bank.submit(*requests)
        final = await bank.wait(submitter, [r.id for r in requests])
        assert len(final) == len(requests)
    await bank.quiet()
