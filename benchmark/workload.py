"""Random transfer workloads for `submit --random`, `demo` and `bench`: seeded, reproducible,
with a share of transfers that must be rejected."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ulid import ULID

from eventsource.core.model import AccountRef, TransferRequest


@dataclass(frozen=True)
class Bank:
    participant: str
    accounts: list[str]


def standard_banks(participants: int, accounts: int) -> list[Bank]:
    return [
        Bank(
            f"bank{chr(ord('a') + i)}" if i < 26 else f"bank{i}",
            [f"acc{j:03d}" for j in range(accounts)],
        )
        for i in range(participants)
    ]


def random_transfers(
    banks: list[Bank],
    count: int,
    *,
    seed: int = 1,
    currency: str = "EUR",
    reject_share: float = 0.05,
    max_amount: int = 100,
) -> list[TransferRequest]:
    """The seed fixes the shape of the work. `reject_share` of the transfers aim at an unknown
    account or ask for far more than any balance, so they must end REJECTED."""
    rng = random.Random(seed)
    transfers = []
    for _ in range(count):
        debtor_bank = rng.choice(banks)
        creditor_bank = rng.choice([b for b in banks if b is not debtor_bank] or banks)
        debtor = AccountRef(debtor_bank.participant, rng.choice(debtor_bank.accounts))
        creditor = AccountRef(creditor_bank.participant, rng.choice(creditor_bank.accounts))
        amount = f"{rng.randint(1, max_amount)}.{rng.randint(0, 99):02d}"
        if rng.random() < reject_share:
            if rng.random() < 0.5:
                creditor = AccountRef(creditor.participant, "no-such-account")
            else:
                amount = "999999999.00"
        transfers.append(
            TransferRequest(
                id=str(ULID()),  # fresh ids: a rerun with the same seed is new work, not duplicates
                debtor=debtor,
                creditor=creditor,
                amount=amount,
                currency=currency,
            )
        )
    return transfers
