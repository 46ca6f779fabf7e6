"""Core-NATS mode's sending side: fire-and-forget publishes, through the transport fault
injector (drop, duplicate, delay). A lost publish is covered by the resend clock."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client

from eventsource.core.faults import Fate, FaultInjector

log = logging.getLogger("natsbank.core")


class CoreSender:
    def __init__(self, nc: Client, faults: FaultInjector) -> None:
        self.nc = nc
        self.faults = faults
        self.published = 0  # protocol messages handed to NATS (first sends and resends)
        self._held: set[asyncio.Task] = set()  # delayed sends in flight

    async def send(self, subject: str, payload: bytes, headers: dict | None = None) -> None:
        fate, delay = self.faults.fate()
        if fate is Fate.DROP:
            return
        if fate is Fate.DELAY:
            task = asyncio.create_task(self._publish(subject, payload, 1, headers, after=delay))
            self._held.add(task)
            task.add_done_callback(self._held.discard)
            return
        await self._publish(subject, payload, 2 if fate is Fate.DUPLICATE else 1, headers)

    async def _publish(
        self, subject: str, payload: bytes, copies: int, headers: dict | None, after: float = 0
    ) -> None:
        if after:
            await asyncio.sleep(after)
        try:
            for _ in range(copies):
                await self.nc.publish(subject, payload, headers=headers)
                self.published += 1
        except Exception as exc:  # fire and forget: the resend clock covers a lost publish
            log.debug("publish to %s failed: %s", subject, exc)
