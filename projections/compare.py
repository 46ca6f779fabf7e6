"""I6: the projection equals the KV state at quiescence. The expected rows are built from the
ledger buckets in the same shape as ProjectedState, so one comparison serves every backend."""

from __future__ import annotations

import asyncio
import time

from nats.aio.client import Client

from eventsource.adapters.registry import layout_of
from eventsource.adapters.views import list_accounts, list_transfers
from eventsource.core.limits import PROJECTION_POLL_S
from projections.store import ProjectedState, ProjectionDb


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
    expected: ProjectedState,
    projected: ProjectedState,
    participant: str | None = None,
    *,
    archived: bool = False,
) -> list[str]:
    """Every key whose projected row differs from the state (phase timestamps aside). With
    `archived` (a live horizon), transfer rows the live state no longer holds are the archived
    final ones the projection keeps: only live keys are compared."""

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
                if archived and kind == "transfer":
                    continue
                found.append(f"{kind} {key} is in the projection but not in the state")
            elif want[key] != have[key]:
                found.append(f"{kind} {key}: projection {have[key]} != state {want[key]}")
    return found


async def differences_once_caught_up(
    nc: Client,
    partitions: int,
    db: ProjectionDb,
    *,
    patience: float,
    participant: str | None = None,
) -> list[str]:
    """I6 at quiescence: compare until the open `db` equals the state, for at most `patience`
    seconds (the projector may still be applying the last events); what still differs."""
    deadline = time.monotonic() + patience
    archived = (await layout_of(nc)).history.bounded
    while True:
        expected, projected = await expected_rows(nc, partitions), await db.state()
        found = differences(expected, projected, participant, archived=archived)
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(PROJECTION_POLL_S)
