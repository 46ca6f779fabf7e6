"""What archiving a ledger period costs (issue 12): `python -m benchmark.archive`.

Starts its own one-node nats-server, fills ledger partition 0 with natsbank transfer events of
about `--size` bytes (ULID ids; each transfer reserved, settled, accepted and confirmed, as the
ledger holds them), then times each archive operation once and prints the figures: bytes per
message archived, messages per second written (reading the ledger included, and alone), read
and verified, the process's peak memory above its baseline during each, and a lookup by id.
A command that reports, not a test that asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

from nats.aio.client import Client

from eventsource.adapters import archive_store
from eventsource.adapters.archive_store import (
    ZERO_CHAIN,
    PeriodExtras,
    find_record,
    read_period,
    verify_period,
    write_period,
)
from eventsource.adapters.cluster import LocalCluster
from eventsource.adapters.jetstream import connect
from eventsource.adapters.provision import apply_topology
from eventsource.adapters.stream_reader import read_messages
from eventsource.adapters.topology import Topology
from eventsource.core.account import EntryKind
from eventsource.core.archive_format import id_time_ms
from eventsource.core.events import (
    AccountChanged,
    AccountSnapshot,
    Entry,
    FundsReserved,
    OutcomeConfirmed,
    PostingAccepted,
    TransferSettled,
    TransferState,
    encoder,
)
from eventsource.core.limits import ARCHIVE_BUCKET
from eventsource.core.model import AccountRef, Outcome, Side, Transfer
from eventsource.core.protocol import Phase
from eventsource.core.subjects import ledger_stream, state_subject

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
WORDS = "invoice rent salary refund order payment fee march april loan share gift"
ENTRY_BYTES = 48  # ["DEBITED","<ULID>","1234.00"],
STEPS = (
    (FundsReserved, "bank-a.out.{id}", Side.SUBMITTER, Phase.RESERVED, None),
    (PostingAccepted, "bank-b.in.bank-a.{id}", Side.RECEIVER, Phase.DECIDED, Outcome.OK),
    (TransferSettled, "bank-a.out.{id}", Side.SUBMITTER, Phase.SETTLED, Outcome.OK),
    (OutcomeConfirmed, "bank-b.in.bank-a.{id}", Side.RECEIVER, Phase.CONFIRMED, Outcome.OK),
)


def ulid(rng: random.Random, time_ms: int) -> str:
    value = (time_ms << 80) | rng.getrandbits(80)
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def transfer_events(rng: random.Random, time_ms: int, size: int) -> list[tuple[str, bytes]]:
    """One transfer's four state events (a comment of up to 280 characters), then one account
    event of its debtor holding as many entries (a group commit's) as bring the five messages
    to `size` bytes on average."""
    transfer = Transfer(
        id=ulid(rng, time_ms),
        debtor=AccountRef("bank-a", f"acct-{rng.randrange(1000)}"),
        creditor=AccountRef("bank-b", f"acct-{rng.randrange(1000)}"),
        amount=f"{rng.randrange(1, 100_000)}.{rng.randrange(100):02d}",
        currency="EUR",
        comment=" ".join(rng.choice(WORDS.split()) for _ in range(rng.randrange(5, 60)))[:280],
    )
    events = []
    for step in STEPS:
        kind, key = step[0], step[1]
        payload = encoder.encode(kind(state=_state(transfer, step), at=time_ms))
        events.append((state_subject(0, key.format(id=transfer.id)), payload))
    budget = 5 * size - sum(len(payload) for _, payload in events)
    account = account_event(rng, transfer, time_ms, [])
    entries = [
        Entry(
            EntryKind.DEBITED,
            ulid(rng, time_ms - rng.randrange(1000)),
            f"{rng.randrange(1, 9999)}.00",
        )
        for _ in range(max(1, (budget - len(account)) // ENTRY_BYTES))
    ]
    subject = state_subject(0, f"bank-a.acct.{transfer.debtor.account}")
    events.append((subject, account_event(rng, transfer, time_ms, entries)))
    return events


def account_event(rng: random.Random, transfer: Transfer, time_ms: int, entries: list) -> bytes:
    snapshot = AccountSnapshot(
        participant="bank-a",
        account=transfer.debtor.account,
        currency="EUR",
        balance=f"{rng.randrange(10**6)}.{rng.randrange(100):02d}",
        pending_debits="0.00",
        pending_credits="0.00",
    )
    return encoder.encode(AccountChanged(state=snapshot, at=time_ms, entries=entries))


def _state(transfer: Transfer, step: tuple) -> TransferState:
    _, _, side, phase, outcome = step
    return TransferState(
        transfer=transfer, digest=transfer.digest, side=side, phase=phase, outcome=outcome
    )


def memory_kib() -> tuple[int, int]:
    """(current, peak since the last reset) resident memory of this process."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def reset_peak() -> int:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak starts again from now
    return memory_kib()[0]


async def fill(nc: Client, messages: int, size: int) -> tuple[int, int, str]:
    js, rng = nc.jetstream(), random.Random(12)
    start_ms, published, payload_bytes, some_id = 1_732_060_000_000, 0, 0, ""
    while published < messages:
        for subject, payload in transfer_events(rng, start_ms + published * 10, size):
            if published == messages:
                break
            await js.publish_async(subject, payload)
            published += 1
            payload_bytes += len(payload)
            some_id = some_id or subject.rsplit(".", 1)[1]
    await js.publish_async_completed()
    return published, payload_bytes, some_id


async def timed(what: str, operation, messages: int) -> object:
    baseline = reset_peak()
    started = time.perf_counter()
    result = await operation()
    seconds = time.perf_counter() - started
    peak = memory_kib()[1] - baseline
    print(
        f"{what:<36} {seconds:7.2f} s {messages / seconds:9,.0f} msg/s  peak +{peak / 1024:.0f} MiB"
    )
    return result


async def run(url: str, messages: int, size: int) -> None:
    nc = await connect(url)
    await apply_topology(nc, Topology(replicas=1, participants=["bank-a", "bank-b"]))
    count, payload_bytes, some_id = await fill(nc, messages, size)
    print(f"ledger: {count:,} messages, {payload_bytes / count:.0f} B average payload")

    async def read_ledger() -> int:
        return sum([1 async for _ in read_messages(nc, ledger_stream(0))])

    def extras() -> PeriodExtras:  # the archiver's fold is not measured here
        return PeriodExtras(snapshot=b"[]", problems=[], settled={}, confirmed={})

    async def write() -> object:
        source = read_messages(nc, ledger_stream(0))
        return await write_period(
            nc, 0, 0, source, ZERO_CHAIN, first_seq=1, end_seq=count + 1, extras=extras
        )

    async def read() -> int:
        return sum([1 async for _ in read_period(nc, 0, 0)])

    await timed("read the ledger alone", read_ledger, count)
    manifest = await timed("write_period (ledger read included)", write, count)
    await timed("read_period", read, count)
    await timed("verify_period", lambda: verify_period(nc, 0, 0, ZERO_CHAIN), count)
    store = await nc.jetstream().object_store(ARCHIVE_BUCKET)
    events = (await store.get_info("k0/p00000000.events")).size
    shards = manifest.ids_shards  # type: ignore[attr-defined]
    ids = sum([(await store.get_info(f"k0/p00000000.ids.{n:04d}")).size for n in range(shards)])
    ratio = payload_bytes / events
    print(f"events object: {events:,} B = {events / count:.1f} B/message ({ratio:.1f}x smaller)")
    print(
        f"ids shards: {shards}, {ids:,} B = {ids / count:.1f} B/message "
        "(2 final records per 5 messages, each with its final event)"
    )
    total = (events + ids) / count
    print(f"archive: {total:.1f} B/message for {payload_bytes / count:.0f} B payloads")
    archive_store.ids_cache.clear()
    for label in ("find_record (shard cold)", "find_record (shard cached)"):
        started = time.perf_counter()
        found = await find_record(nc, 0, f"bank-a.out.{some_id}", id_time_ms(some_id))
        size = len(found or b"")
        print(f"{label:<36} {(time.perf_counter() - started) * 1000:7.1f} ms  {size} B event")
    await lookup_misses(nc, some_id, (await store.get_info("k0/p00000000.filter")).size)
    await nc.close()


async def lookup_misses(nc: Client, some_id: str, filter_bytes: int) -> None:
    """A lookup of an id of an archived time that the archive does not hold: the key filter
    answers it (a false positive, 0.82% of keys, reads the shard and says so)."""
    print(f"key filter: {filter_bytes:,} B")
    archive_store.ids_cache.clear()
    archive_store.filter_cache.clear()
    missing = f"bank-a.out.{some_id[:10]}{'0' * 16}"  # the same time, never submitted
    for label in ("find_record miss (filter cold)", "find_record miss (filter cached)"):
        shards = archive_store.ids_cache.reads
        started = time.perf_counter()
        found = await find_record(nc, 0, missing, id_time_ms(some_id))
        elapsed_ms = (time.perf_counter() - started) * 1000
        read = archive_store.ids_cache.reads - shards
        print(f"{label:<36} {elapsed_ms:7.1f} ms  {read} shard read, found {found is not None}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=800, help="payload bytes to aim at")
    options = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    with (
        tempfile.TemporaryDirectory(prefix="natsbank-archive-") as state,
        LocalCluster(Path(state) / "nats", nodes=1) as info,
    ):
        asyncio.run(run(info.url, options.messages, options.size))
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")


if __name__ == "__main__":
    main()
