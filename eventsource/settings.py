"""One typed Settings struct: defaults, then environment (NATSBANK_*, NATS_URL), then flags."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec


def default_home() -> Path:
    return Path(os.environ.get("NATSBANK_HOME") or Path.home() / ".natsbank")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Comma-separated server URLs; empty means "find the dev cluster under home".
    nats_url: str = ""
    home: str = ""
    streams_file: str = ""
    pg_dsn: str = ""
    # Group commit: how many inbox messages one service instance takes per fetch.
    fetch_batch: int = 256
    # Seconds an unacknowledged inbox message waits before JetStream redelivers it.
    ack_wait: float = 30.0
    # `serve`: port of /healthz, /readyz and /metrics; 0 means no HTTP endpoint.
    http_port: int = 0
    # Where accounts live: "independent" (a ledger per participant's partition, three-phase
    # protocol) or "shared" (one stream for all, one atomic step per transfer).
    store: str = "independent"

    @property
    def home_path(self) -> Path:
        return Path(self.home) if self.home else default_home()


_ENV = {
    "nats_url": "NATS_URL",
    "home": "NATSBANK_HOME",
    "streams_file": "NATSBANK_STREAMS_FILE",
    "pg_dsn": "NATSBANK_PG_DSN",
    "fetch_batch": "NATSBANK_FETCH_BATCH",
    "ack_wait": "NATSBANK_ACK_WAIT",
    "http_port": "NATSBANK_HTTP_PORT",
    "store": "NATSBANK_STORE",
}


def load_settings(**flags: object) -> Settings:
    """Defaults < environment < flags (a flag given as None counts as not given)."""
    values: dict[str, object] = {}
    for field, var in _ENV.items():
        if os.environ.get(var):
            values[field] = os.environ[var]
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        from eventsource.core.errors import ConfigError

        raise ConfigError(f"bad setting: {exc}") from None
