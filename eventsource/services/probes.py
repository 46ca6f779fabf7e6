"""Readiness of a serve process, and the periodic consumer-lag sample for the metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client

from eventsource.services.metrics import ServiceMetrics

log = logging.getLogger("natsbank.probes")
LAG_INTERVAL_S = 5.0  # between consumer-info samples
PROBE_TIMEOUT_S = 2.0  # one consumer-info request


async def not_ready(nc: Client, services: list, *, timeout: float = PROBE_TIMEOUT_S) -> list[str]:
    """Why this process is not ready to serve; empty when it is: connected, every served
    participant's inbox consumers exist and are bound, and (core mode) its core subscription
    listens."""
    if not nc.is_connected or not all(s.nc.is_connected for s in services):
        return ["not connected to NATS"]
    reasons = []
    for service in services:
        p = service.participant
        js = service.nc.jetstream()  # a bank's own connection: its credential reads its consumers
        unbound = sorted(d for _, d in service.consumers if d not in service.bound)
        if unbound:
            reasons.append(f"{p}: inbox consumer(s) {unbound} not bound")
        for stream, durable in service.consumers:
            try:
                await js.consumer_info(stream, durable, timeout=timeout)
            except Exception as exc:
                reasons.append(f"{p}: consumer {durable}: {exc or type(exc).__name__}")
        listening = getattr(service.carrier, "listening", None)
        if listening is not None and not listening.is_set():
            reasons.append(f"{p}: core subscription not listening")
    return reasons


async def sample_lag(
    nc: Client, services: list, metrics: ServiceMetrics, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        for service in services:
            p = service.participant
            js = service.nc.jetstream()
            for stream, durable in service.consumers:
                try:
                    info = await js.consumer_info(stream, durable, timeout=PROBE_TIMEOUT_S)
                except Exception as exc:  # the next sample tries again
                    log.debug("consumer info of %s failed: %s", durable, exc)
                    continue
                metrics.pending.labels(p, durable).set(info.num_pending or 0)
                metrics.ack_pending.labels(p, durable).set(info.num_ack_pending or 0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LAG_INTERVAL_S)
