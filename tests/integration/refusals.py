"""A request the server refuses gets no answer, but the server says at once that it refused the
publish (`-ERR 'Permissions Violation for Publish to "<subject>"'`, which nats-py hands to the
connection's error callback): an attacker's request ends on that word, or on its answer, instead
of waiting out a timeout for the answer it lacks."""

from __future__ import annotations

import asyncio
import contextlib
import re
import weakref
from collections.abc import AsyncIterator

import nats.errors
from nats.aio.client import Client

from eventsource.adapters.cluster import ClusterInfo
from eventsource.core.permissions import Role
from tests.integration.authorized import connected

_REFUSED = re.compile(r'permissions violation for publish to "(?P<subject>[^"]+)"', re.I)


class Refusals:
    """Give `error_cb` to a connection; `request` then ends on the server's refusal."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[None]] = {}

    async def error_cb(self, error: Exception) -> None:
        found = _REFUSED.search(str(error))
        waiting = self._waiting.get(found["subject"].lower()) if found else None
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def request(
        self,
        nc: Client,
        subject: str,
        payload: bytes,
        *,
        timeout: float,
        headers: dict | None = None,
    ) -> bytes | None:
        """The answer's bytes, or None when none came: refused, no responders, or `timeout`."""
        refused = asyncio.get_running_loop().create_future()
        self._waiting[subject.lower()] = refused
        asked = asyncio.ensure_future(nc.request(subject, payload, timeout, headers=headers))
        try:
            await asyncio.wait({asked, refused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            del self._waiting[subject.lower()]
        if not asked.done():  # refused: its answer cannot come
            asked.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asked
            return None
        try:
            return asked.result().data
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            return None


_WATCHED: weakref.WeakKeyDictionary[Client, Refusals] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def watched(
    cluster: ClusterInfo, role: Role, participant: str | None = None
) -> AsyncIterator[Client]:
    """`connected`, with the server's refusals of its publishes heard (see `answer`)."""
    refusals = Refusals()
    async with connected(cluster, role, participant, error_cb=refusals.error_cb) as nc:
        _WATCHED[nc] = refusals
        yield nc


async def answer(
    nc: Client, subject: str, payload: bytes, *, timeout: float, headers: dict | None = None
) -> bytes | None:
    """A request as an attacker sends it: the answer's bytes, or None when none came. On a
    `watched` connection, a refused publish ends it at once; else it waits out `timeout`."""
    refusals = _WATCHED.get(nc) or Refusals()
    return await refusals.request(nc, subject, payload, timeout=timeout, headers=headers)
