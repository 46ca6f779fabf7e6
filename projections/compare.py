"""I6: the projection equals the KV state at quiescence. The expected rows are built from the
store's state (its Source) in the same shape as ProjectedState, so one comparison serves every
backend and both stores."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from nats.aio.client import Client

from eventsource.adapters.views import list_accounts, list_transfers
from eventsource.core.events import AccountSnapshot, TransferState
from eventsource.core.limits import PROJECTION_POLL_S
from eventsource.core.subjects import account_key
from projections.model import sql_text
from projections.store import ProjectedState, ProjectionDb

if TYPE_CHECKING:
    from projections.source import Source


async def expected_rows(nc: Client, partitions: int) -> ProjectedState:
    """The independent store's rows, from its ledger buckets."""
    accounts = {
        account_key(a.participant, a.account): account_tuple(a)
        for a in await list_accounts(nc, partitions)
    }
    records = await list_transfers(nc, partitions, "*.out.*")
    records |= await list_transfers(nc, partitions, "*.in.*.*")
    transfers = {key: transfer_tuple(key, s) for key, s in records.items()}
    return ProjectedState(accounts=accounts, transfers=transfers)


def account_tuple(a: AccountSnapshot) -> tuple:
    """An account in the shape of ProjectedState.accounts."""
    return (
        a.participant, a.account, a.currency, a.balance, a.pending_debits, a.pending_credits,
        a.closed,
    )  # fmt: skip


def transfer_tuple(key: str, s: TransferState) -> tuple:
    """A record in the shape of ProjectedState.transfers, without its phase times."""
    return (
        key.split(".")[0], s.side.value, s.transfer.id, sql_text(s.transfer.amount),
        sql_text(s.transfer.currency), s.phase.value, s.outcome and s.outcome.value,
        s.cause and s.cause.value, sql_text(s.detail),
    )  # fmt: skip


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
    source: Source,
    db: ProjectionDb,
    *,
    patience: float,
    participant: str | None = None,
) -> list[str]:
    """I6 at quiescence: compare until the open `db` equals the state, for at most `patience`
    seconds (the projector may still be applying the last events); what still differs."""
    deadline = time.monotonic() + patience
    archived = await source.archived(nc)
    while True:
        expected, projected = await source.expected(nc), await db.state()
        found = differences(expected, projected, participant, archived=archived)
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(PROJECTION_POLL_S)
