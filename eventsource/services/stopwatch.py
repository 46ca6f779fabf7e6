"""Where an instance's time goes: wall seconds per stage of its loop (`serve --stats-dir`,
summed by `natsbank bench` into each run's `time_s`).

The stages of one group, in order: `decode` (decode and verify the signatures of a fetch),
`decide` (read the states it needs, then the pure decision), `commit` (the atomic batch's round
trip), `send` (core mode: the protocol messages after the commit), `ack`. They run one group at a
time (the engine's lock), so their sum is the time the instance was busy deciding. `fetch` is
the time its consumer loops waited in a fetch: they run side by side, so it overlaps the rest.
Each stage's time includes the moments its awaits waited for the event loop, which the other
participants of the process held meanwhile."""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Iterator


class Stage(enum.StrEnum):
    FETCH = "fetch"
    DECODE = "decode"
    DECIDE = "decide"
    COMMIT = "commit"
    SEND = "send"
    ACK = "ack"


class Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(Stage, 0.0)

    @contextlib.contextmanager
    def timing(self, stage: Stage) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started

    def figures(self) -> dict[str, float]:
        return {stage: round(seconds, 3) for stage, seconds in self.seconds.items()}
