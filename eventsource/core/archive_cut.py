"""Where an archive run cuts a ledger stream, pure (services/archiver.py does the reading).

The stream's subjects fall in purge groups: its state subjects (`$KV.<bucket>.>`) and one
inbox per registered participant (`nb.<k>.to.<P>.>`). A run archives every message below its
cut, but purges a group only below what every consumer reading that group has acknowledged:
a participant that is down keeps its unread inbox live (and only that), and a stopped
projector keeps the state events it has not projected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConsumerFloor:
    """A consumer of the stream: its filters, and the first sequence it has not acked."""

    name: str
    filters: tuple[str, ...]  # () reads every subject
    next_unacked: int


def subjects_overlap(a: str, b: str) -> bool:
    """Whether some subject matches both patterns (`*` one token, `>` one or more at the end)."""
    left, right = a.split("."), b.split(".")
    for i in range(max(len(left), len(right))):
        if i >= len(left) or i >= len(right):
            return False
        x, y = left[i], right[i]
        if x == ">" or y == ">":
            return True
        if x != y and "*" not in (x, y):
            return False
    return True


def cut_sequence(start: int, by_time: int, last_seq: int, max_messages: int) -> int:
    """The run's cut: below the first message young enough to stay (`by_time`), and at most
    `max_messages` past `start`. Never below `start`."""
    return max(start, min(by_time, last_seq + 1, start + max_messages))


def group_ends(
    groups: Sequence[str], consumers: Iterable[ConsumerFloor], end: int
) -> dict[str, tuple[int, str | None]]:
    """Per purge group, the sequence it may be purged below, and the consumer that holds it
    back (None: nobody, it goes to `end`)."""
    ends = {group: (end, None) for group in groups}
    for consumer in consumers:
        for group in groups:
            covered = not consumer.filters or any(
                subjects_overlap(f, group) for f in consumer.filters
            )
            if covered and consumer.next_unacked < ends[group][0]:
                ends[group] = (consumer.next_unacked, consumer.name)
    return ends
