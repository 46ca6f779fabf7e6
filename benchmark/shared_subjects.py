"""Subjects per transfer of the shared store (issue 12): `python -m benchmark.shared_subjects`.

Starts a one-node cluster, provisions the shared store, pushes `--transfers` through real
`natsbank serve --store shared` processes, then counts the subjects of stream KV_shared by kind.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
from pathlib import Path

import nats

from benchmark.scenario import bootstrap, drive, start_services, stop_services
from benchmark.subject_memory import stream_info
from benchmark.workload import standard_banks
from eventsource.adapters.cluster import LocalCluster
from eventsource.core.shared.layout import SHARED_STREAM
from eventsource.settings import Store


async def subjects_by_kind(url: str) -> collections.Counter[str]:
    """The transfer records (`xfer`), the submission inbox (`submit`), the rest (accounts)."""
    nc = await nats.connect(url)
    try:
        state = (await stream_info(nc, SHARED_STREAM, {"subjects_filter": ">"}))["state"]
    finally:
        await nc.close()
    kinds = collections.Counter(
        next((kind for kind in ("xfer", "submit") if f".{kind}." in subject), "other")
        for subject in state.get("subjects") or {}
    )
    if kinds.total() != state["num_subjects"]:
        raise RuntimeError("more subjects than one STREAM.INFO page lists")
    return kinds


async def run(home: Path, transfers: int) -> None:
    banks = standard_banks(4, 5)
    with LocalCluster(home / "nats", nodes=1) as cluster:
        await bootstrap(cluster.url, banks, store=Store.SHARED)
        before = await subjects_by_kind(cluster.url)
        names = [b.participant for b in banks]
        args = ("--store", "shared")
        services = start_services(cluster.url, names, 1, home / "logs", serve_args=args)
        try:
            result = await drive(cluster.url, banks, transfers, store=Store.SHARED)
        finally:
            stop_services(services)
        after = await subjects_by_kind(cluster.url)
    done, ok = result.measurement.completed, result.audit.ok
    print(f"shared store: {transfers:,} transfers, {done:,} final, audit ok: {ok}")
    for when, kinds in (("provisioned", before), ("after", after)):
        parts = ", ".join(f"{count:,} {kind}" for kind, count in kinds.items())
        print(f"  {when}: num_subjects of {SHARED_STREAM} {kinds.total():,} ({parts})")
    print(f"  subjects per transfer: {(after.total() - before.total()) / transfers:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transfers", type=int, default=2000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="natsbank-shared-subjects-") as state:
        asyncio.run(run(Path(state), options.transfers))


if __name__ == "__main__":
    main()
