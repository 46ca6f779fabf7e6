"""Transient unavailability of JetStream, retried the same way everywhere.

For several seconds after a node dies, or while a new stream elects its leader, a JetStream
request gets "no responders" (status 503), "JetStream system temporarily unavailable", or no
answer at all. A client must treat these like a timeout: repeat the operation with exponential
backoff and jitter for at most TRANSIENT_RETRY_SECONDS, then fail with one line that says what
failed and for how long it was retried. Any other error goes through at once, unchanged.

Wrap only operations that are safe to repeat: reads, create-or-update of a stream or consumer,
a KV create or update that expects a revision (or a put of the same value), a publish with a
`Nats-Msg-Id` (repeated well inside the duplicate window), and a commit that is known not to
have landed. Every call site says why its operation is safe.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

from nats.errors import (
    ConnectionReconnectingError,
    NoRespondersError,
    StaleConnectionError,
)
from nats.js.errors import (
    APIError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from eventsource.core.errors import AccessRefused, InfrastructureError, TemporarilyUnavailable

T = TypeVar("T")
log = logging.getLogger("natsbank.retry")

# An election ends within about 10 s (nats-server: election timeout up to 9 s; a leader that
# lost its quorum steps down after 10 s); 30 s covers that with room, and still fails fast
# enough for a person at a terminal.
TRANSIENT_RETRY_SECONDS = 30.0
BACKOFF_SECONDS_FIRST = 0.1
BACKOFF_SECONDS_MAX = 2.0
BACKOFF_GROWTH = 2.0

STATUS_SERVICE_UNAVAILABLE = 503  # "no responders", or a 503 API error without an err_code
# JetStream API errors that mean "not now" (err_code, from nats-server's errors.json). Others
# with status 503 are not transient: 10039/10076 JetStream not enabled, 10023 insufficient
# resources, 10063 expected stream sequence does not match.
JS_CLUSTER_INCOMPLETE = 10004  # 503 "incomplete results"
JS_CLUSTER_NOT_AVAILABLE = 10008  # 503 "JetStream system temporarily unavailable"
JS_CLUSTER_NOT_LEADER = 10009  # 500 "JetStream cluster can not handle request"
JS_BATCH_INCOMPLETE = 10176  # 400: a message of an atomic batch was lost; nothing is stored
JS_MEMBER_CHANGE_IN_FLIGHT = 10202  # 400 "cluster member change is in progress"
JS_ATOMIC_TOO_MANY_IN_FLIGHT = 10210  # 429 "atomic publish too many inflight"
TRANSIENT_ERR_CODES = frozenset(
    {
        JS_CLUSTER_INCOMPLETE,
        JS_CLUSTER_NOT_AVAILABLE,
        JS_CLUSTER_NOT_LEADER,
        JS_BATCH_INCOMPLETE,
        JS_MEMBER_CHANGE_IN_FLIGHT,
        JS_ATOMIC_TOO_MANY_IN_FLIGHT,
    }
)

# TimeoutError covers asyncio's and nats-py's (nats.errors.TimeoutError subclasses it).
_TRANSIENT_TYPES = (
    TemporarilyUnavailable,
    NoRespondersError,
    NoStreamResponseError,  # js.publish's name for "no responders"
    TimeoutError,
    ConnectionReconnectingError,
    StaleConnectionError,
)


# A refusal that makes requests time out: the subscription to the connection's reply inbox, or
# a publish to the JetStream API (nats-py reports both through its error callback only).
_REQUEST_REFUSAL = re.compile(
    r'permissions violation for (subscription to "_inbox\.|publish to "\$JS\.)', re.IGNORECASE
)
_refusals: ContextVar[list[str] | None] = ContextVar("natsbank_refusals", default=None)


def watch_refusals() -> Callable[[BaseException], None]:
    """Collect, for the current task, the server's refusals of what requests need; give what
    it returns the errors of the connection's error callback. A request the server refused
    times out, and no retry can change that: the retries below then fail at once."""
    refused: list[str] = []
    _refusals.set(refused)

    def note(error: BaseException) -> None:
        if _REQUEST_REFUSAL.search(str(error)):
            refused.append(" ".join(str(error).split()))

    return note


def _refused_request(error: BaseException) -> str | None:
    refused = _refusals.get()
    return refused[-1] if refused and isinstance(error, TimeoutError) else None


def is_transient_reply(code: int | None, err_code: int | None) -> bool:
    """A JetStream error reply (status `code`, `err_code`) that a retry may cure."""
    if err_code in TRANSIENT_ERR_CODES:
        return True
    return code == STATUS_SERVICE_UNAVAILABLE and not err_code


def is_transient(error: BaseException) -> bool:
    """True for the errors of a leader election, a reconnect or a slow server."""
    if isinstance(error, NotFoundError):
        return False
    if isinstance(error, APIError):
        # Some subclasses (KV errors) never set code and err_code.
        code, err_code = getattr(error, "code", None), getattr(error, "err_code", None)
        if isinstance(error, ServiceUnavailableError) and code is None:
            return not err_code  # nats-py's bare form: "no responders" on an API request
        return is_transient_reply(code, err_code)
    return isinstance(error, _TRANSIENT_TYPES)


def backoff_delay(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """The pause after failed attempt `attempt` (1-based): exponential up to a cap, then a
    random half of it cut off, so that clients failed by one election do not retry in step."""
    ceiling = min(BACKOFF_SECONDS_MAX, BACKOFF_SECONDS_FIRST * BACKOFF_GROWTH ** (attempt - 1))
    return ceiling * (0.5 + 0.5 * rng())


def describe(error: BaseException) -> str:
    """An error on one line, for a message that must stay one line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if type(error).__name__ in text else f"{type(error).__name__}: {text}"


class Backoff:
    """One retry budget: pauses that grow until `retry_seconds` have passed since the start (or
    the last `restart`). For loops that cannot be a single call, such as a stream read that
    resumes where it stopped; `transient_retry` is the usual way in."""

    def __init__(
        self,
        what: str,
        retry_seconds: float = TRANSIENT_RETRY_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.what = what
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._sleep = sleep
        self.attempts = 0
        self._started = clock()

    def restart(self) -> None:
        """The operation made progress: the bound counts from now."""
        self.attempts = 0
        self._started = self._clock()

    async def pause(self, error: BaseException) -> None:
        """After a transient failure: wait before the next attempt, or raise
        InfrastructureError when the bound is reached."""
        refusal = _refused_request(error)
        if refusal is not None:
            raise AccessRefused(
                f"{self.what} failed: the NATS server refused this credential what it needs "
                f"({refusal}): use the credential of the role this command needs"
            ) from error
        self.attempts += 1
        elapsed = self._clock() - self._started
        left = self.retry_seconds - elapsed
        if left <= 0:
            raise InfrastructureError(
                f"{self.what} failed: still unavailable after retrying for "
                f"{elapsed:.1f} s ({self.attempts} attempts); last error: {describe(error)}"
            ) from error
        delay = min(left, backoff_delay(self.attempts))
        log.debug(
            "%s: %s; attempt %d again in %.2f s",
            self.what,
            describe(error),
            self.attempts + 1,
            delay,
        )
        await self._sleep(delay)


async def transient_retry(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    retry_seconds: float = TRANSIENT_RETRY_SECONDS,
    transient: Callable[[BaseException], bool] = is_transient,
    before_retry: Callable[[BaseException], Awaitable[None]] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """Run `operation` until it succeeds, repeating it after a transient error.

    A non-transient error propagates unchanged. Once `retry_seconds` have passed, the last
    transient error becomes an InfrastructureError: "<what> failed: still
    unavailable after retrying for N s ...". No attempt starts after the bound, but one that
    started before it runs to its own timeout. `before_retry` runs before each new attempt
    (the projector reconnects its database there). `clock` and `sleep` are for tests.
    """
    budget = Backoff(what, retry_seconds, clock=clock, sleep=sleep)
    while True:
        try:
            return await operation()
        except Exception as error:
            if not transient(error):
                raise
            await budget.pause(error)
            if before_retry is not None:
                await before_retry(error)
