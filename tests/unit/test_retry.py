"""The retry policy for transient unavailability: which errors are transient, how the pauses
grow, and that the bound ends in one clear line. Operations here are fakes that fail on
purpose; the real servers are in tests/integration/test_transient_retry.py."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from nats.errors import ConnectionClosedError, ConnectionReconnectingError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import (
    APIError,
    BadRequestError,
    FetchTimeoutError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
    NoStreamResponseError,
    NotFoundError,
    ServerError,
    ServiceUnavailableError,
)

from eventsource.adapters.retry import (
    BACKOFF_GROWTH,
    BACKOFF_SECONDS_FIRST,
    BACKOFF_SECONDS_MAX,
    TRANSIENT_RETRY_SECONDS,
    Backoff,
    backoff_delay,
    is_transient,
    is_transient_reply,
    transient_retry,
    watch_refusals,
)
from eventsource.adapters.topology import Topology, seconds
from eventsource.core.errors import (
    AccessRefused,
    DomainError,
    InfrastructureError,
    TemporarilyUnavailable,
)


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    @property
    def fake(self) -> dict:
        return {"clock": self.clock, "sleep": self.sleep}


class Flaky:
    """An operation that raises `error` on its first `failures` calls, then returns "done"."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error or NoRespondersError()
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


TRANSIENT = [
    NoRespondersError(),
    NoStreamResponseError(),
    NatsTimeout(),
    FetchTimeoutError(),
    TimeoutError(),
    ConnectionReconnectingError(),
    ServiceUnavailableError(),  # what nats-py raises for "no responders" on an API request
    ServiceUnavailableError(code=503, err_code=10008, description="temporarily unavailable"),
    ServiceUnavailableError(code=503, err_code=10004, description="incomplete results"),
    ServerError(code=500, err_code=10009, description="cluster can not handle request"),
    BadRequestError(code=400, err_code=10176, description="atomic batch is incomplete"),
    APIError(code=503),
    TemporarilyUnavailable("stream KV_ledger_0 has no leader yet"),
]
NOT_TRANSIENT = [
    NotFoundError(code=404, err_code=10059, description="stream not found"),
    BadRequestError(code=400, err_code=10071, description="wrong last sequence"),
    ServiceUnavailableError(code=503, err_code=10076, description="JetStream not enabled"),
    ServiceUnavailableError(code=503, err_code=10063, description="sequence does not match"),
    ServiceUnavailableError(code=503, err_code=10023, description="insufficient resources"),
    ServerError(code=500, err_code=10049, description="stream create failed"),
    KeyNotFoundError(),  # the KV errors never set code and err_code
    KeyDeletedError(),
    KeyWrongLastSequenceError("wrong last sequence: 7"),
    NoKeysError(),
    ConnectionClosedError(),
    InfrastructureError("read of x failed: still unavailable after retrying for 30.0 s"),
    DomainError("account bank-a/alice already exists"),
    ValueError("bad batch"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: repr(e)[:60])
def test_election_and_connection_errors_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize("error", NOT_TRANSIENT, ids=lambda e: repr(e)[:60])
def test_answers_that_a_repeat_cannot_change_are_not_transient(error: BaseException) -> None:
    assert not is_transient(error)


def test_a_json_error_reply_is_classified_by_its_err_code_before_its_status() -> None:
    assert is_transient_reply(503, 10008)
    assert is_transient_reply(500, 10009)
    assert is_transient_reply(503, None)  # a bare 503 status: no responders
    assert not is_transient_reply(503, 10039)  # JetStream not enabled for the account
    assert not is_transient_reply(400, 10071)
    assert not is_transient_reply(404, 10037)


def test_the_pause_doubles_from_the_first_delay_up_to_the_cap() -> None:
    ceilings = [backoff_delay(attempt, rng=lambda: 1.0) for attempt in range(1, 10)]
    assert ceilings[0] == BACKOFF_SECONDS_FIRST
    assert ceilings[1] == BACKOFF_SECONDS_FIRST * BACKOFF_GROWTH
    assert max(ceilings) == BACKOFF_SECONDS_MAX
    assert ceilings == sorted(ceilings)


def test_jitter_keeps_each_pause_between_half_and_all_of_its_ceiling() -> None:
    for attempt in range(1, 12):
        ceiling = backoff_delay(attempt, rng=lambda: 1.0)
        assert backoff_delay(attempt, rng=lambda: 0.0) == ceiling / 2
        assert ceiling / 2 <= backoff_delay(attempt) <= ceiling


async def test_an_operation_that_fails_a_few_times_succeeds_after_growing_pauses() -> None:
    time = FakeTime()
    operation = Flaky(failures=4)
    assert await transient_retry(operation, what="open x", **time.fake) == "done"
    assert operation.calls == 5
    assert len(time.sleeps) == 4
    for attempt, slept in enumerate(time.sleeps, 1):
        ceiling = backoff_delay(attempt, rng=lambda: 1.0)
        assert ceiling / 2 <= slept <= ceiling


async def test_a_non_transient_error_goes_through_at_once_and_unchanged() -> None:
    time = FakeTime()
    refusal = BadRequestError(code=400, err_code=10071, description="wrong last sequence")
    operation = Flaky(failures=1, error=refusal)
    with pytest.raises(BadRequestError) as caught:
        await transient_retry(operation, what="open x", **time.fake)
    assert caught.value is refusal
    assert operation.calls == 1
    assert time.sleeps == []


async def test_at_the_bound_one_line_says_what_failed_and_for_how_long() -> None:
    time = FakeTime()
    operation = Flaky(failures=10**6)
    with pytest.raises(InfrastructureError) as caught:
        await transient_retry(operation, what="open account bank-a/alice", **time.fake)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("open account bank-a/alice failed: ")
    assert f"after retrying for {TRANSIENT_RETRY_SECONDS:.1f} s" in message
    assert f"({operation.calls} attempts)" in message
    assert "no responders" in message
    assert isinstance(caught.value.__cause__, NoRespondersError)
    # An outer retry must not repeat a bound that was already reached.
    assert not is_transient(caught.value)


async def test_no_attempt_starts_after_the_bound_and_the_last_pause_is_cut_to_fit() -> None:
    time = FakeTime()
    operation = Flaky(failures=10**6)
    with pytest.raises(InfrastructureError):
        await transient_retry(operation, what="read of x", retry_seconds=5.0, **time.fake)
    assert time.now == pytest.approx(5.0)
    assert sum(time.sleeps) == pytest.approx(5.0)
    assert operation.calls == len(time.sleeps) + 1
    assert max(time.sleeps) <= BACKOFF_SECONDS_MAX


async def test_the_bound_is_real_time_by_default() -> None:
    operation = Flaky(failures=10**6)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(InfrastructureError, match=r"read of x failed: .* after retrying for 0\.3"):
        await transient_retry(operation, what="read of x", retry_seconds=0.3)
    assert 0.3 <= loop.time() - started < 1.0
    assert operation.calls >= 3


async def test_before_retry_runs_between_attempts_only() -> None:
    time = FakeTime()
    seen: list[str] = []

    async def note(error: BaseException) -> None:
        seen.append(type(error).__name__)

    operation = Flaky(failures=2, error=NatsTimeout())
    await transient_retry(operation, what="x", **time.fake, before_retry=note)
    assert seen == ["TimeoutError", "TimeoutError"]


async def test_a_caller_may_widen_what_counts_as_transient() -> None:
    time = FakeTime()
    operation = Flaky(failures=2, error=ConnectionError("database down"))
    assert not is_transient(operation.error)
    result = await transient_retry(operation, what="x", **time.fake, transient=lambda error: True)
    assert result == "done"


async def test_progress_restarts_the_bound() -> None:
    time = FakeTime()
    budget = Backoff("read of x", 1.0, **time.fake)
    for _ in range(3):  # a resumable read that fails after every bit of progress
        await budget.pause(NoRespondersError())
        time.now += 0.9
        budget.restart()
    await budget.pause(NoRespondersError())
    assert budget.attempts == 1


def test_a_repeated_submit_stays_inside_the_default_duplicate_window() -> None:
    """submit repeats one publish (10 s timeout each) with the same Nats-Msg-Id until the
    bound: the last repeat must still be deduplicated against the first."""
    assert BACKOFF_SECONDS_FIRST < BACKOFF_SECONDS_MAX < TRANSIENT_RETRY_SECONDS
    publish_timeout_seconds = 10
    window_seconds = seconds(Topology().ledger.duplicate_window)
    assert TRANSIENT_RETRY_SECONDS + publish_timeout_seconds < window_seconds


def _timing_out(attempts: list[int]):
    async def operation() -> None:
        attempts.append(1)
        raise NatsTimeout

    return operation


async def _no_sleep(seconds: float) -> None:
    return None


async def _retried_after(refusal: str | None) -> int:
    """Attempts made by a retry of an operation that times out, after the connection's error
    callback saw `refusal` (in a task of its own: the refusals are watched per task)."""
    note = watch_refusals()
    if refusal is not None:
        note(Exception(refusal))
    attempts: list[int] = []
    clock = iter(range(0, 1000)).__next__
    with contextlib.suppress(InfrastructureError):
        await transient_retry(
            _timing_out(attempts), what="read", clock=lambda: float(clock()), sleep=_no_sleep
        )
    return len(attempts)


async def test_a_request_the_server_refused_fails_at_once_in_one_line() -> None:
    refusal = 'nats: permissions violation for subscription to "_inbox.funding.abc.*"'
    with pytest.raises(AccessRefused, match="refused this credential") as caught:
        await asyncio.create_task(_retried_after(refusal))
    assert "\n" not in str(caught.value) and "_inbox.funding" in str(caught.value)
    api = 'nats: Permissions Violation for Publish to "$JS.ledger.API.STREAM.INFO.KV_ledger_0"'
    with pytest.raises(AccessRefused):
        await asyncio.create_task(_retried_after(api))


async def test_other_refusals_and_no_refusal_leave_the_retries_as_they_were() -> None:
    core = 'nats: permissions violation for publish to "nb.core.bank-b.posting.bank-c"'
    assert await asyncio.create_task(_retried_after(core)) > 1
    assert await asyncio.create_task(_retried_after(None)) > 1
