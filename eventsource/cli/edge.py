"""What a user types, checked at the edge: a name or an id becomes a NATS subject token or a KV
key, and a number becomes a wait, a loop or a rate. One that cannot be meant is refused here,
in one line and exit 2 (UsageError), before anything connects: a wildcard or an empty token
never reaches a subject, and a negative or NaN wait never reaches a timer.

Each check takes the value and the flag or argument it came from, and returns the value. Used
as typer callbacks through `checked`, so that a command cannot forget one."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

from eventsource.core.errors import UsageError
from eventsource.core.limits import SUBMIT_RANDOM_MAX, SUBMIT_RATE_MAX, WAIT_MAX_S
from eventsource.core.model import is_token
from eventsource.core.subjects import participant_problem

T = TypeVar("T")
_TOKEN_RULE = "use 1-64 of A-Z a-z 0-9 _ -"


def participant(value: str, flag: str) -> str:
    if (problem := participant_problem(value)) is not None:
        raise UsageError(f"{flag}: {problem}")
    return value


def account(value: str, flag: str) -> str:
    if not is_token(value):
        raise UsageError(f"{flag}: {value!r:.40} is not an account name: {_TOKEN_RULE}")
    return value


def transfer_id(value: str, flag: str) -> str:
    if not is_token(value):
        raise UsageError(f"{flag}: {value!r:.40} is not a transfer id: {_TOKEN_RULE}")
    return value


def seconds(value: float, flag: str) -> float:
    """A wait: 0 up to WAIT_MAX_S (core/limits.py); never negative, NaN or infinite."""
    if not (math.isfinite(value) and 0 <= value <= WAIT_MAX_S):
        raise UsageError(
            f"{flag}: {value:g} is not a number of seconds from 0 to {WAIT_MAX_S:.0f} "
            f"({WAIT_MAX_S / 86400:g} days)"
        )
    return value


def transfers(value: int, flag: str) -> int:
    if not 1 <= value <= SUBMIT_RANDOM_MAX:
        raise UsageError(
            f"{flag}: {value} is not a count of transfers from 1 to {SUBMIT_RANDOM_MAX}"
        )
    return value


def rate(value: float, flag: str) -> float:
    if not (math.isfinite(value) and 0 < value <= SUBMIT_RATE_MAX):
        raise UsageError(
            f"{flag}: {value:g} is not a rate above 0 and up to {SUBMIT_RATE_MAX:.0f} a second"
        )
    return value


def checked(check: Callable[[T, str], T], flag: str) -> Callable[[T | None], T | None]:
    """A typer callback that applies `check` to the value (or to each value of a repeatable
    option); an option that was not given (None) passes."""

    def callback(value):
        if value is None:
            return None
        if isinstance(value, list | tuple):
            return [check(item, flag) for item in value]
        return check(value, flag)

    return callback
