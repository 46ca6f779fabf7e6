"""What one participant instance counts, for `serve --stats-file` and the benchmark."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class ServiceStats:
    groups: int = 0
    messages: int = 0  # inbox messages (or pieces of big ones) committed
    items: int = 0  # transfers, postings, results, confirms and CANCELs in them
    conflicts: int = 0
    dead_letters: int = 0
    dead_letters_unstored: int = 0  # dead letters that could not be stored (retried later)
    retries: int = 0
    outbox_messages: int = 0  # protocol messages committed to the ledger (JetStream mode)
    given_up: int = 0  # transfers this instance gave up on (DESIGN.md section 5)
    redelivered: int = 0  # inbox deliveries the server made more than once
    window_full: int = 0  # core mode: looks at the inbox skipped, too many records waiting
    started: float = field(default_factory=time.monotonic)


def service_figures(service) -> dict:
    """One instance's counters (a ParticipantService), core mode's included."""
    figures = {
        "participant": service.participant,
        "mode": "core" if service.core is not None else "jetstream",
        **{k: v for k, v in vars(service.stats).items() if k != "started"},
        "faults": {str(k): v for k, v in service.faults.counts.items()},
    }
    if service.core is not None:
        figures |= vars(service.core.stats) | {"waiting": len(service.core.schedule)}
    return figures
