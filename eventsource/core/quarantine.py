"""A stored record whose last event does not decode is quarantined: it is reported (log,
metrics, audit) and nothing is ever decided on it, while the other records of a group go on.

Every decode of stored state goes through `decode_stored`, so that one corrupt record can
never make a service, a sweep or a read fail as a whole."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from eventsource.core.errors import NatsbankError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Quarantined:
    """In place of a state: the record at `key` whose last event (at `sequence`) is junk."""

    key: str
    sequence: int
    detail: str

    def describe(self) -> str:
        return (
            f"record {self.key} is quarantined: its event at sequence {self.sequence} {self.detail}"
        )


def decode_stored(
    key: str, data: bytes, sequence: int, decode: Callable[[bytes], T]
) -> T | Quarantined:
    """`decode(data)`, or a Quarantined in its place when the stored bytes do not decode (or
    decode to values the domain refuses, such as an amount that does not parse)."""
    try:
        return decode(data)
    except (msgspec.DecodeError, NatsbankError, ValueError, TypeError) as exc:
        return Quarantined(key, sequence, f"does not decode: {str(exc)[:200]}")


def decode_each(
    values: dict[str, bytes], decode: Callable[[bytes], T]
) -> tuple[dict[str, T], list[Quarantined]]:
    """Decode each key's latest value (no sequence known): the decoded, and the quarantined."""
    decoded: dict[str, T] = {}
    quarantined: list[Quarantined] = []
    for key, data in values.items():
        value = decode_stored(key, data, 0, decode)
        if isinstance(value, Quarantined):
            quarantined.append(value)
        else:
            decoded[key] = value
    return decoded, quarantined
