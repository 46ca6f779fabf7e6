"""Ending a NATS subscription when its connection may already be gone.

A subscription dies with its connection, so a failed unsubscribe at shutdown, or before a
consumer is bound again after a server restart, loses nothing: it is logged at debug level and
dropped, never raised into the loop that is stopping or recovering.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("natsbank.subscriptions")


class Unsubscribable(Protocol):
    """A core NATS subscription, or a JetStream pull subscription (no common base class)."""

    async def unsubscribe(self) -> None: ...


async def unsubscribe_quietly(sub: Unsubscribable | None) -> None:
    """Unsubscribe `sub`, if there is one; a failure is logged, not raised."""
    if sub is None:
        return
    try:
        await sub.unsubscribe()
    except Exception as exc:  # gone with its connection anyway
        log.debug("unsubscribe failed: %s", exc)
