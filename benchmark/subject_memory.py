"""Server memory per stored message (issue 12): `python -m benchmark.subject_memory`.

Starts its own one-node nats-server (file store, R1, loopback, a temp dir) per scenario and
reports the server's resident memory above its empty-stream baseline, per message: N messages
on distinct subjects (a subject per transfer id, as natsbank's ledger), on one subject, the
distinct ones after one purge below a sequence, and interior deletes left by filtered purges
that keep the first sequence; with the time of each purge call and of restarts (SIGTERM, and
SIGKILL as a crash). `python -m benchmark.shared_subjects` counts the shared store's subjects.
A command that reports, not a test that asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client

from benchmark.archive import ulid
from eventsource.adapters import nats_binary
from eventsource.adapters.topology import LEDGER_HISTORY

STREAM = "KV_ledger_0"
PREFIX = "$KV.ledger_0."
SETTLE_S = 15.0  # the file store drops a block's cache after 10 s unused
SAMPLES = 5
SAMPLE_GAP_S = 1.0
READY_TIMEOUT_S = 600.0
START_MS = 1_732_060_000_000


def per_message(rss_kib: int, baseline_kib: int, messages: int) -> float:
    """Bytes of server RSS per message above the empty-stream baseline."""
    return (rss_kib - baseline_kib) * 1024 / max(1, messages)


def kept_every_tenth(index: int, messages: int) -> bool:
    """Scenario 4 keeps the first, every 10th and the last message, so that every removed
    message is an interior delete: the first and last sequences do not move."""
    return index % 10 == 0 or index == messages - 1


def memstats(profile: str) -> dict[str, int]:
    """The `# runtime.MemStats` block at the end of a debug=1 heap profile."""
    fields = {}
    for line in profile.splitlines():
        name, sep, value = line.removeprefix("# ").partition(" = ")
        if sep and value.strip().isdigit():
            fields[name] = int(value)
    return fields


@dataclass
class Server:
    """One nats-server with a pprof port (to read its live heap), restartable on its store."""

    home: Path
    pid: int = 0
    nc: Client | None = None

    def __post_init__(self) -> None:
        client_port, monitor_port, self.prof_port = nats_binary.free_ports(3)
        self.url = f"nats://127.0.0.1:{client_port}"
        self.monitor_url = f"http://127.0.0.1:{monitor_port}"
        config = nats_binary.render_node_config(
            server_name="mem",
            client_port=client_port,
            monitor_port=monitor_port,
            store_dir=str(self.home / "jetstream"),
        )
        self.config = self.home / "nats.conf"
        self.config.write_text(config + f"prof_port: {self.prof_port}\n")

    async def start(self, messages: int | None = None) -> float:
        """Spawn, then wait until JetStream answers STREAM.INFO (with `messages` recovered)."""
        started = time.perf_counter()
        self.pid = nats_binary.spawn(self.config, self.home / "nats.log")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not nats_binary.is_nats_server(self.pid):
                raise RuntimeError(nats_binary.log_tail(self.home / "nats.log"))
            if nats_binary.not_ready_because(self.monitor_url, "mem", 1) is None:
                self.nc = await nats.connect(self.url, allow_reconnect=False)
                if (
                    messages is None
                    or (await stream_info(self.nc))["state"]["messages"] == messages
                ):
                    return time.perf_counter() - started
                await self.nc.close()
            await asyncio.sleep(0.01)
        raise RuntimeError(f"no stream after {READY_TIMEOUT_S:g} s")

    async def stop(self, crash: bool = False) -> float:
        """SIGTERM (the server writes its stream state), or SIGKILL as a crash would."""
        if self.nc is not None:
            await self.nc.close()
            self.nc = None
        started = time.perf_counter()
        if crash:
            nats_binary.kill(self.pid)
        if nats_binary.terminate([self.pid], grace=60.0):
            raise RuntimeError(f"nats-server {self.pid} survived SIGKILL")
        return time.perf_counter() - started

    async def rss_kib(self) -> int:
        """Median VmRSS of a few samples after a settle; sampled before any forced GC."""
        await asyncio.sleep(SETTLE_S)
        samples = []
        for _ in range(SAMPLES):
            status = Path(f"/proc/{self.pid}/status").read_text()
            samples.append(int(status.split("VmRSS:")[1].split()[0]))
            await asyncio.sleep(SAMPLE_GAP_S)
        return int(statistics.median(samples))

    def live_heap_kib(self) -> int:
        """Go heap in use after a forced GC (pprof heap?gc=1): RSS without the GC's slack."""
        url = f"http://127.0.0.1:{self.prof_port}/debug/pprof/heap?debug=1&gc=1"
        status, body = nats_binary.http_get(url, timeout=120)
        return memstats(body.decode())["HeapAlloc"] // 1024 if status == 200 else -1


async def api(nc: Client, subject: str, request: dict | None = None) -> dict:
    body = json.dumps(request).encode() if request is not None else b""
    reply = json.loads((await nc.request(subject, body, timeout=600)).data)
    if "error" in reply:
        raise RuntimeError(f"{subject}: {reply['error']}")
    return reply


async def stream_info(nc: Client, stream: str = STREAM, request: dict | None = None) -> dict:
    return await api(nc, f"$JS.API.STREAM.INFO.{stream}", request)


async def create_stream(nc: Client) -> None:
    """Configured as natsbank's ledger partition (file store, every revision kept)."""
    config = {
        "name": STREAM,
        "subjects": [f"{PREFIX}>", "keep.>"],
        "storage": "file",
        "num_replicas": 1,
        "max_msgs_per_subject": LEDGER_HISTORY,
        "discard": "new",
        "allow_direct": True,
        "deny_delete": True,
    }
    await api(nc, f"$JS.API.STREAM.CREATE.{STREAM}", config)


async def fill(nc: Client, subjects, size: int) -> int:
    js, payload, count = nc.jetstream(publish_async_max_pending=20_000), os.urandom(size), 0
    for subject in subjects:
        await js.publish_async(subject, payload)
        count += 1
    await js.publish_async_completed()
    return count


def distinct(messages: int):
    """A subject per transfer id, as the ledger's `<N>.out.<ID>` records."""
    rng = random.Random(12)
    return (f"{PREFIX}bank-a.out.{ulid(rng, START_MS + i)}" for i in range(messages))


def every_tenth_apart(messages: int):
    """Kept messages on bank-b, the others on bank-a: one filtered purge removes 90%."""
    for index, subject in enumerate(distinct(messages)):
        yield subject.replace("bank-a", "bank-b") if kept_every_tenth(index, messages) else subject


async def measured(server: Server, what: str, base: tuple[int, int], count: int) -> None:
    """One line: RSS sampled first, then the live heap (its forced GC comes after)."""
    rss = await server.rss_kib()
    heap = server.live_heap_kib()
    print(
        f"{what:<40} {count:>9,} msgs  RSS {rss / 1024:7.1f} MiB "
        f"{per_message(rss, base[0], count):6.1f} B/msg  live heap {heap / 1024:7.1f} MiB "
        f"{per_message(heap, base[1], count):6.1f} B/msg",
        flush=True,
    )


@contextlib.asynccontextmanager
async def running(home: Path) -> AsyncIterator[tuple[Server, tuple[int, int]]]:
    """A fresh server with an empty stream, and its (RSS, live heap) baseline in KiB."""
    home.mkdir()
    server = Server(home)
    try:
        await server.start()
        await create_stream(server.nc)
        rss, heap = await server.rss_kib(), server.live_heap_kib()
        print(
            f"{home.name}: empty stream RSS {rss / 1024:.1f} MiB, live heap {heap / 1024:.1f} MiB"
        )
        yield server, (rss, heap)
    finally:
        await server.stop()


async def restart(server: Server, messages: int, crash: bool = False) -> None:
    stop_s = await server.stop(crash)
    start_s = await server.start(messages)
    how = "SIGKILL" if crash else "SIGTERM"
    print(f"  restart: {how} to exit {stop_s:.2f} s, spawn to stream recovered {start_s:.2f} s")


async def purge(server: Server, request: dict) -> None:
    started = time.perf_counter()
    reply = await api(server.nc, f"$JS.API.STREAM.PURGE.{STREAM}", request)
    seconds = time.perf_counter() - started
    print(f"  purge {json.dumps(request)}: 1 call, {reply['purged']:,} purged in {seconds:.3f} s")


async def distinct_then_purged(home: Path, n: int, size: int) -> None:
    """Scenarios 1 and 3, each restarted, on one server."""
    async with running(home) as (server, base):
        await fill(server.nc, distinct(n), size)
        await measured(server, "1. distinct subjects", base, n)
        await restart(server, n)
        await measured(server, "1. distinct subjects, restarted", base, n)
        await restart(server, n, crash=True)
        left = n // 10
        await purge(server, {"seq": n + 1 - left})
        await measured(server, "3. purged below seq (per kept msg)", base, left)
        await restart(server, left)
        await measured(server, "3. purged below seq, restarted", base, left)
        await restart(server, left, crash=True)


async def single(home: Path, n: int, size: int) -> None:
    async with running(home) as (server, base):
        await fill(server.nc, itertools.repeat(f"{PREFIX}bank-a.acct.a1", n), size)
        await measured(server, "2. one subject", base, n)
        await restart(server, n)
        await measured(server, "2. one subject, restarted", base, n)
        await restart(server, n, crash=True)


async def interior(home: Path, n: int, size: int, every_tenth: bool) -> None:
    """Scenario 4: the removed messages become interior deletes (`num_deleted`)."""
    label = "4a. every 10th kept" if every_tenth else "4b. first and last kept"
    async with running(home) as (server, base):
        if every_tenth:
            await fill(server.nc, every_tenth_apart(n), size)
            await purge(server, {"filter": f"{PREFIX}bank-a.>"})
        else:
            total = await fill(server.nc, itertools.chain(["keep.x"], distinct(n)), size)
            await purge(server, {"filter": f"{PREFIX}>", "seq": total})  # the last one stays
        state = (await stream_info(server.nc))["state"]
        deleted = state["num_deleted"]
        print(
            f"  {label}: first_seq {state['first_seq']}, last_seq {state['last_seq']:,}, "
            f"messages {state['messages']:,}, num_deleted {deleted:,}"
        )
        await measured(server, f"{label} (per deleted msg)", base, deleted)
        await restart(server, state["messages"])
        await measured(server, f"{label}, restarted", base, deleted)


async def run(home: Path, n: int, size: int) -> None:
    print(f"N={n:,} messages of {size} B; RSS: median of {SAMPLES} samples after {SETTLE_S:g} s")
    await distinct_then_purged(home / "distinct", n, size)
    await single(home / "single", n, size)
    await interior(home / "tenth", n, size, every_tenth=True)
    await interior(home / "first", n, size, every_tenth=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=300, help="payload bytes")
    options = parser.parse_args()
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    with tempfile.TemporaryDirectory(prefix="natsbank-subject-memory-") as state:
        asyncio.run(run(Path(state), options.messages, options.size))
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")


if __name__ == "__main__":
    main()
