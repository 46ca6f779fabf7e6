"""`natsbank serve --store shared`: participants' instances on the shared store."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from eventsource.cli.common import err_console, nats_connection, run, stop_on_signals
from eventsource.core.errors import UsageError
from eventsource.settings import Settings

log = logging.getLogger("natsbank.serve")


def serve_shared(
    participants: list[str], config: Settings, *, core: bool, faults: str, stats: Path | None
) -> None:
    # The shared store sends no protocol messages: nothing to carry over core NATS, nothing
    # to lose or duplicate in transit.
    if core:
        raise UsageError("--mode core has no meaning with --store shared: no protocol messages")
    if faults:
        raise UsageError("--faults has no meaning with --store shared: no protocol messages")
    if config.http_port:
        raise UsageError("--http-port is not available with --store shared yet")
    from eventsource.adapters.provision import require_participant_name
    from eventsource.adapters.shared_provision import require_shared_store
    from eventsource.cli.serve import _write_stats
    from eventsource.services.shared_service import SharedStoreService, shared_figures

    for participant in participants:
        require_participant_name(participant)

    async def main() -> None:
        stop = stop_on_signals()
        async with nats_connection(config) as nc:
            await require_shared_store(nc, participants)
            services = [
                SharedStoreService(nc, p, fetch_batch=config.fetch_batch) for p in participants
            ]
            err_console.print(
                f"serving {', '.join(participants)} (shared store)", soft_wrap=True, highlight=False
            )
            path = stats / f"{os.getpid()}.json" if stats else None
            writer = asyncio.create_task(_write_stats(services, path, stop, shared_figures))
            try:
                await asyncio.gather(*(s.run(stop) for s in services))
            finally:
                stop.set()
                await writer

    run(main)
