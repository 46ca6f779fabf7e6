"""Where the messages through the servers go (issue 14, item 3): `python -m benchmark.traffic`.

Starts its own 3-node cluster with the project's launcher, the services as `natsbank bench`
runs them (two processes, jetstream mode, the bench's redelivery clock), then pushes transfers
at a steady rate and reads the servers' own counters (/varz, /connz?state=all, /routez) at
each phase's end: idle, the work until every inbox is quiet, the final scan that measures
completion, and the audit. Connections are told apart by name: `natsbank-load` submits,
`natsbank-watch` polls and reads, every other client is a service. With `--tap`, a connection
subscribed to `>` counts every message of the account by kind (benchmark/traffic_kinds.py);
its interest makes the servers forward everything to it, so take the route figures from a run
without it. A command that reports counts, not a test that asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmark.load import push
from benchmark.measure import LedgerScan, wait_quiescent
from benchmark.options import GENEROUS_FUNDING
from benchmark.scenario import bootstrap, default_banks, start_layout, stop_services
from benchmark.traffic_kinds import Kind, difference, kind_of, per_transfer, sum_counters
from benchmark.workload import random_transfers
from eventsource.adapters import nats_binary
from eventsource.adapters.cluster import LocalCluster
from eventsource.adapters.cluster_info import ClusterInfo
from eventsource.adapters.jetstream import connect
from eventsource.adapters.topology import quick_redelivery
from eventsource.bootstrap import open_ledger
from eventsource.settings import Store

CLASSES = {"natsbank-load": "load client", "natsbank-watch": "bench reads", "natsbank-tap": "tap"}
READY_TIMEOUT_S = 60.0
IDLE_S = 5.0


def counters(cluster: ClusterInfo) -> dict[str, dict[str, int]]:
    """Class -> in/out messages summed over the nodes: client connections by name (closed
    ones too), routes, and what /varz counts beyond both (the servers' internal clients)."""
    rows = []
    for node in cluster.nodes:
        varz = _get(node.monitor_url, "varz")
        connz = _get(node.monitor_url, "connz?state=all&limit=100000")
        routez = _get(node.monitor_url, "routez")
        conns = [
            (node.name, CLASSES.get(c.get("name", ""), "services"), c["in_msgs"], c["out_msgs"])
            for c in connz.get("connections") or []
        ]
        routes = [
            (node.name, "routes", r["in_msgs"], r["out_msgs"]) for r in routez.get("routes") or []
        ]
        rows += conns + routes
        seen_in = sum(r[2] for r in conns + routes)
        seen_out = sum(r[3] for r in conns + routes)
        rows.append((node.name, "internal", varz["in_msgs"] - seen_in, varz["out_msgs"] - seen_out))
        rows.append((node.name, "total (/varz)", varz["in_msgs"], varz["out_msgs"]))
    return sum_counters(rows)


def _get(monitor_url: str, path: str) -> dict:
    status, body = nats_binary.http_get(f"{monitor_url}/{path}", timeout=10.0)
    if status != 200:
        raise RuntimeError(f"{monitor_url}/{path}: {status} {body[:200]!r}")
    return json.loads(body)


class Tap:
    """Counts every message of the account by kind."""

    def __init__(self) -> None:
        self.kinds: Counter = Counter()

    async def start(self, url: str) -> None:
        self.nc = await connect(url, name="natsbank-tap")

        async def count(msg) -> None:
            self.kinds[kind_of(msg.subject, msg.reply or "", msg.headers, msg.data)] += 1

        await self.nc.subscribe(">", cb=count, pending_msgs_limit=-1, pending_bytes_limit=-1)

    def take(self) -> Counter:
        taken, self.kinds = self.kinds, Counter()
        return taken


async def _services_ready(watch, consumers: list[tuple[str, str]]) -> None:
    """Until every inbox consumer has a pull request waiting (its service is fetching)."""
    js = watch.jetstream()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        infos = [await js.consumer_info(stream, durable) for stream, durable in consumers]
        if all(i.num_waiting > 0 for i in infos):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the services did not start fetching")


async def drive(cluster: ClusterInfo, banks, args, tap: Tap | None) -> dict:
    url = cluster.url
    watch = await connect(url, name="natsbank-watch")
    load = await connect(url, name="natsbank-load")
    phases: dict[str, dict] = {}
    try:
        if tap is not None:
            await tap.start(url)
        watching = await open_ledger(watch, Store.INDEPENDENT)
        consumers = [c for b in banks for c in watching.consumers(b.participant)]
        await _services_ready(watch, consumers)
        mark = counters(cluster)
        if tap is not None:
            tap.take()

        async def phase(name: str) -> None:
            nonlocal mark
            now = counters(cluster)
            phases[name] = {"counts": difference(now, mark)}
            if tap is not None:
                await tap.nc.flush()
                phases[name]["kinds"] = dict(tap.take())
            mark = now

        await asyncio.sleep(IDLE_S)
        await phase("idle")
        started = time.monotonic()
        ledger = await open_ledger(load, Store.INDEPENDENT)
        work = random_transfers(banks, args.transfers, seed=1, reject_share=0.05)
        report = await push(ledger.submit, work, rate=args.rate, per_message=50, mint_ids=True)
        await wait_quiescent(watch, consumers, timeout=600.0, settle=0.25)
        phases["idle"]["seconds"] = IDLE_S
        await phase("work")
        phases["work"]["seconds"] = round(time.monotonic() - started, 2)
        scan = LedgerScan(watching.partitions)
        await scan.advance(watch)
        measured = scan.measurement(set(report.acked_ids))
        await phase("final scan")
        audit = await watching.audit(expect_final=True)
        await phase("audit")
        where = placement(cluster)
        return {
            "transfers": args.transfers,
            "rate": args.rate,
            "completed": measured.completed,
            "unfinished": len(measured.unfinished),
            "audit_ok": audit.ok,
            "phases": phases,
            "placement": where,
        }
    finally:
        for nc in (watch, load, *([tap.nc] if tap and hasattr(tap, "nc") else [])):
            await nc.close()


def run(args) -> dict:
    banks = default_banks(4, 5)
    with tempfile.TemporaryDirectory(prefix="natsbank-traffic-") as tmp:
        where = Path(tmp)
        with LocalCluster(where / "nats", nodes=args.nodes, remove_data=True) as cluster:
            topology = quick_redelivery(2.0, replicas=args.nodes)
            asyncio.run(bootstrap(cluster.url, banks, funding=GENEROUS_FUNDING, topology=topology))
            serve = ("--store", "independent", "--mode", "jetstream")
            names = [b.participant for b in banks]
            url = services_url(cluster, args.services_on)
            procs = start_layout(url, names, 2, 1, where / "logs", serve_args=serve)
            try:
                result = asyncio.run(drive(cluster, banks, args, Tap() if args.tap else None))
            finally:
                stop_services(procs)
    result["nodes"] = args.nodes
    result["tap"] = args.tap
    result["command"] = " ".join(["python -m benchmark.traffic", *sys.argv[1:]])
    return result


def services_url(cluster: ClusterInfo, where: str) -> str:
    """The NATS_URL the services get: every node (each process picks one at random), or only
    the ledger stream's leader, or only a node that is not its leader (an experiment)."""
    if where == "any":
        return cluster.url
    found = None
    for node in cluster.nodes:
        jsz = _get(node.monitor_url, "jsz?streams=1&raft=1")
        for account in jsz.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                if stream["name"] == "KV_ledger_0":
                    found = (stream.get("cluster") or {}).get("leader")
    chosen = [n for n in cluster.nodes if (n.name == found) == (where == "leader")]
    if found is None or not chosen:
        raise RuntimeError(f"no node for --services-on {where} (leader {found})")
    return chosen[0].url


def placement(cluster: ClusterInfo) -> dict:
    """Which node leads the ledger stream and each consumer, and where clients are connected."""
    leaders: dict[str, str] = {}
    clients: dict[str, list[str]] = {}
    for node in cluster.nodes:
        jsz = _get(node.monitor_url, "jsz?streams=1&consumers=1")
        for account in jsz.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                if (stream.get("cluster") or {}).get("leader"):
                    leaders[stream["name"]] = stream["cluster"]["leader"]
                for consumer in stream.get("consumer_detail") or []:
                    if (consumer.get("cluster") or {}).get("leader"):
                        leaders[consumer["name"]] = consumer["cluster"]["leader"]
        connz = _get(node.monitor_url, "connz")
        clients[node.name] = sorted(c.get("name", "") for c in connz.get("connections") or [])
    return {"leaders": leaders, "clients": clients}


def render(result: dict) -> str:
    done = result["completed"] or 1
    lines = [
        f"{result['completed']} of {result['transfers']} transfers final at {result['rate']}/s, "
        f"{result['nodes']} nodes, audit {'ok' if result['audit_ok'] else 'FAILED'}",
    ]
    for name, phase in result["phases"].items():
        lines.append(f"\n{name} ({phase.get('seconds', '')} s): in+out messages per transfer")
        for cls, value in sorted(per_transfer(phase["counts"], done).items()):
            counts = phase["counts"][cls]
            lines.append(
                f"  {cls:<16} {value:>8}  (in {counts['in_msgs']}, out {counts['out_msgs']})"
            )
        for kind, count in sorted((phase.get("kinds") or {}).items(), key=lambda kv: -kv[1]):
            lines.append(f"    {Kind(kind).value:<48} {count / done:>8.2f}  ({count})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=400.0, help="transfers per second")
    parser.add_argument("--nodes", type=int, default=3, choices=(1, 3))
    parser.add_argument("--tap", action="store_true", help="count the account's messages by kind")
    parser.add_argument(
        "--services-on",
        choices=("any", "leader", "follower"),
        default="any",
        help="the services' node: any (as deployed), the ledger's leader, another one",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=1) if args.json else render(result))


if __name__ == "__main__":
    main()
