"""Readiness of a serve process, and the periodic consumer-lag sample for the metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client

from eventsource.core.subjects import inbox_consumer, ledger_stream
from eventsource.services.metrics import ServiceMetrics

log = logging.getLogger("natsbank.probes")
LAG_INTERVAL = 5.0  # seconds between consumer-info samples


async def not_ready(nc: Client, services: list, *, timeout: float = 2.0) -> list[str]:
    """Why this process is not ready to serve; empty when it is: connected, every served
    participant's inbox consumers exist and are bound, and (core mode) its core subscription
    listens."""
    if not nc.is_connected:
        return ["not connected to NATS"]
    reasons = []
    js = nc.jetstream()
    for service in services:
        p = service.participant
        unbound = sorted(set(range(service.partitions)) - service.bound)
        if unbound:
            reasons.append(f"{p}: inbox consumer(s) of partition(s) {unbound} not bound")
        for k in range(service.partitions):
            try:
                await js.consumer_info(ledger_stream(k), inbox_consumer(p, k), timeout=timeout)
            except Exception as exc:
                reasons.append(f"{p}: consumer {inbox_consumer(p, k)}: {exc or type(exc).__name__}")
        if service.core is not None and not service.core.listening.is_set():
            reasons.append(f"{p}: core subscription not listening")
    return reasons


async def sample_lag(
    nc: Client, services: list, metrics: ServiceMetrics, stop: asyncio.Event
) -> None:
    js = nc.jetstream()
    while not stop.is_set():
        for service in services:
            p = service.participant
            for k in range(service.partitions):
                try:
                    info = await js.consumer_info(ledger_stream(k), inbox_consumer(p, k), timeout=2)
                except Exception as exc:  # the next sample tries again
                    log.debug("consumer info of %s failed: %s", inbox_consumer(p, k), exc)
                    continue
                metrics.pending.labels(p, str(k)).set(info.num_pending or 0)
                metrics.ack_pending.labels(p, str(k)).set(info.num_ack_pending or 0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LAG_INTERVAL)
