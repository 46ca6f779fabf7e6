"""What a crash can take, on each side of a comparison: natsbank and pgbench are only compared
at equal durability.

- always: nats-server fsyncs every write (`sync_interval: always`), against PostgreSQL with
  `synchronous_commit=on` (its default: the commit waits for the WAL fsync). Nothing
  acknowledged is lost on power loss. The headline pair.
- default: nats-server's default `sync_interval` (an fsync every 2 minutes; R3 replicas in
  memory cover a single node's crash), against PostgreSQL with `synchronous_commit=off` (the
  commit returns before the WAL fsync; up to 3 x wal_writer_delay, 600 ms, lost on power loss).
  The like-for-like pair for the faster setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventsource.core.errors import ConfigError


@dataclass(frozen=True)
class Durability:
    name: str
    sync_interval: str | None  # nats-server's; None: its default (2 min)
    synchronous_commit: str  # PostgreSQL's, for the pgbench sessions
    nats_fsync: str  # in words, for the report
    postgres_fsync: str


ALWAYS = Durability(
    "always",
    "always",
    "on",
    "fsync on every write",
    "fsync on every commit (synchronous_commit=on)",
)
DEFAULT = Durability(
    "default",
    None,
    "off",
    "nats-server's default sync_interval (fsync every 2 min)",
    "no fsync wait at commit (synchronous_commit=off)",
)
BY_NAME = {"always": (ALWAYS,), "default": (DEFAULT,), "both": (ALWAYS, DEFAULT)}


def parse_durability(text: str) -> tuple[Durability, ...]:
    try:
        return BY_NAME[text.strip()]
    except KeyError:
        raise ConfigError(f"--durability takes always, default or both, not {text!r}") from None


def at_interval(sync_interval: str) -> Durability:
    """`--sync-interval S`: natsbank at S against pgbench with fsync on, as before the pairs."""
    if sync_interval == "always":
        return ALWAYS
    return Durability(
        f"sync_interval {sync_interval}",
        sync_interval,
        "on",
        f"fsync every {sync_interval}",
        ALWAYS.postgres_fsync,
    )
