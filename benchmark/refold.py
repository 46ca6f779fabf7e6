"""What re-folding an account costs before a service trusts its snapshot (issue 13, 3b):
`python -m benchmark.refold --events 1000,10000,50000`.

Starts its own one-node nats-server (R1, file storage), and for each size writes an account's
history on partition 0: an AccountOpened, then that many AccountChanged events of one entry
each, interleaved with as many events of other accounts (`--others` per account event, so that
the account's subject is sparse in the stream, as in a real ledger). Then it times the cold
re-fold a service does on a cache miss (adapters/snapshot_verify.py: batched direct gets with
`next_by_subj`, checked to reach the leader's last sequence) over the whole history and bounded
to REFOLD_EVENTS_MAX events (the default), and a warm one from a trusted state 100 events back.
A command that reports, not a test that asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from nats.aio.client import Client

from eventsource.adapters.cluster import LocalCluster
from eventsource.adapters.jetstream import connect, read_last
from eventsource.adapters.provision import apply_topology
from eventsource.adapters.snapshot_verify import refold_problem
from eventsource.adapters.topology import Topology
from eventsource.core.account import Account, EntryKind
from eventsource.core.events import AccountChanged, AccountOpened, AccountSnapshot, Entry, encoder
from eventsource.core.subjects import account_key, ledger_stream, state_subject

STREAM = ledger_stream(0)
PIPELINE = 2000  # publishes in flight while filling
WARM_BACK = 100  # events after the trusted state in the warm case


async def fill(nc: Client, name: str, events: int, others: int) -> tuple[str, int, Account, int]:
    """The account's history; returns its key, last sequence, and the state WARM_BACK events
    before the end with its sequence."""
    js = nc.jetstream()
    key = account_key("bank-a", name)
    account = Account("bank-a", name, "EUR")
    opened = AccountOpened(state=AccountSnapshot.of(account), at=0)
    await js.publish(state_subject(0, key), encoder.encode(opened))
    pending, warm, warm_seq = [], account, 0
    for i in range(events):
        account = account.apply(EntryKind.FUNDED, 1)
        entry = Entry(EntryKind.FUNDED, f"F{i}", "0.01")
        data = encoder.encode(
            AccountChanged(state=AccountSnapshot.of(account), at=0, entries=[entry])
        )
        pending.append(js.publish(state_subject(0, key), data))
        for j in range(others):
            other = state_subject(0, account_key("bank-b", f"{name}-o{j % 50}"))
            pending.append(js.publish(other, data))
        if len(pending) >= PIPELINE or i == events - WARM_BACK - 1:
            acks = await asyncio.gather(*pending)
            pending = []
            if i == events - WARM_BACK - 1:
                warm, warm_seq = account, max(a.seq for a in acks)
    await asyncio.gather(*pending)
    last = await read_last(nc, STREAM, state_subject(0, key), leader=True)
    assert last is not None
    return key, last[1], warm, warm_seq


async def run(url: str, sizes: list[int], others: int) -> None:
    nc = await connect(url)
    await apply_topology(nc, Topology(replicas=1, participants=["bank-a", "bank-b"]))
    print(
        f"{'events':>8} {'stream msgs':>12} {'cold, whole':>12} {'events/s':>9} "
        f"{'cold, bounded':>14} {'warm':>9}"
    )
    for n, events in enumerate(sizes):
        key, last_seq, warm, warm_seq = await fill(nc, f"r{n}", events, others)
        subject = state_subject(0, key)
        started = time.perf_counter()
        problem = await refold_problem(nc, STREAM, subject, key, last_seq, events_max=events + 1)
        cold_s = time.perf_counter() - started
        assert problem is None, problem
        started = time.perf_counter()
        problem = await refold_problem(nc, STREAM, subject, key, last_seq)  # REFOLD_EVENTS_MAX
        bounded_s = time.perf_counter() - started
        assert problem is None, problem
        started = time.perf_counter()
        problem = await refold_problem(nc, STREAM, subject, key, last_seq, trusted=(warm, warm_seq))
        warm_s = time.perf_counter() - started
        assert problem is None, problem
        info = await nc.jetstream().stream_info(STREAM)
        print(
            f"{events:>8} {info.state.messages:>12} {cold_s * 1000:>9.0f} ms "
            f"{events / cold_s:>9.0f} {bounded_s * 1000:>11.0f} ms {warm_s * 1000:>6.1f} ms"
        )
    await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="1000,10000,50000", help="account events per size")
    parser.add_argument("--others", type=int, default=1, help="other keys' events per event")
    options = parser.parse_args()
    sizes = [int(s) for s in options.events.split(",")]
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    with (
        tempfile.TemporaryDirectory(prefix="natsbank-refold-") as state,
        LocalCluster(Path(state) / "nats", nodes=1) as info,
    ):
        asyncio.run(run(info.url, sizes, options.others))
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")


if __name__ == "__main__":
    main()
