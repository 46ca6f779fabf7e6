"""What the bounded-history tests share: a history short enough for a test, ids of a chosen age,
and whether a transfer's record is still in the live ledger."""

from __future__ import annotations

import time

from ulid import ULID

from eventsource.adapters.jetstream import read_last
from eventsource.adapters.topology import HistoryConfig
from eventsource.core.subjects import ledger_stream, outgoing_key, partition_of, state_subject
from tests.integration.live_bank import LiveBank

# Short enough for a test: what is final for 4 + 1 seconds leaves the live ledger. A fresh id
# stays LIVE for horizon - skew = 3 s after it is made: ample for its submission's ACK.
HISTORY = HistoryConfig(horizon="4s", period="2s", max_clock_skew="1s")
AGE_S = 4 + 1 + 1  # horizon + skew, and a second more


def new_id(age_s: float = 0.0) -> str:
    return str(ULID.from_timestamp(time.time() - age_s))


async def is_live(bank: LiveBank, submitter: str, transfer_id: str) -> bool:
    k = partition_of(submitter, bank.partitions)
    subject = state_subject(k, outgoing_key(submitter, transfer_id))
    return await read_last(bank.nc, ledger_stream(k), subject, leader=True) is not None
