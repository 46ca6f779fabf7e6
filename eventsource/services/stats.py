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
