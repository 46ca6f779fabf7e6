"""I6: the projection equals the KV state at quiescence. The expected rows are built from the
ledger buckets in the same shape as ProjectedState, so one comparison serves every backend."""

from __future__ import annotations

from nats.aio.client import Client

from eventsource.adapters.views import list_accounts, list_transfers
from projections.store import ProjectedState


async def expected_rows(nc: Client, partitions: int) -> ProjectedState:
    accounts = {
        f"{a.participant}.acct.{a.account}": (
            a.participant,
            a.account,
            a.currency,
            a.balance,
            a.pending_debits,
            a.pending_credits,
            a.closed,
        )
        for a in await list_accounts(nc, partitions)
    }
    records = await list_transfers(nc, partitions, "*.out.*")
    records |= await list_transfers(nc, partitions, "*.in.*.*")
    transfers = {
        key: (
            key.split(".")[0],
            s.side.value,
            s.transfer.id,
            s.transfer.amount,
            s.transfer.currency,
            s.phase.value,
            s.outcome and s.outcome.value,
            s.cause and s.cause.value,
            s.detail,
        )
        for key, s in records.items()
    }
    return ProjectedState(accounts=accounts, transfers=transfers)


def differences(
    expected: ProjectedState, projected: ProjectedState, participant: str | None = None
) -> list[str]:
    """Every key whose projected row differs from the state (phase timestamps aside)."""

    def mine(key: str) -> bool:
        return participant is None or key.split(".", 1)[0] == participant

    found = []
    for kind, want, have in (
        ("account", expected.accounts, projected.accounts),
        ("transfer", expected.transfers, {k: v[:9] for k, v in projected.transfers.items()}),
    ):
        for key in sorted(k for k in set(want) | set(have) if mine(k)):
            if key not in have:
                found.append(f"{kind} {key} is missing from the projection")
            elif key not in want:
                found.append(f"{kind} {key} is in the projection but not in the state")
            elif want[key] != have[key]:
                found.append(f"{kind} {key}: projection {have[key]} != state {want[key]}")
    return found
