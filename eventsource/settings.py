"""One typed Settings struct: defaults, then environment (NATSBANK_*, NATS_URL), then flags."""

from __future__ import annotations

import enum
import os
import re
from pathlib import Path
from typing import Annotated

import msgspec

from eventsource.core.errors import ConfigError
from eventsource.core.limits import FETCH_BATCH, FETCH_BATCH_MAX, WAIT_MAX_S

PORT_MAX = 65_535


class Store(enum.StrEnum):
    """Where accounts live."""

    INDEPENDENT = "independent"  # a ledger per participant's partition, three-phase protocol
    SHARED = "shared"  # every account in one stream, one atomic step per transfer


class Transport(enum.StrEnum):
    """How the independent store's protocol messages travel (`serve --mode`)."""

    JETSTREAM = "jetstream"  # an outbox in the ledger; the server delivers and redelivers
    CORE = "core"  # core NATS messages after the commit; the endpoints resend on a clock


def default_home() -> Path:
    return Path(os.environ.get("NATSBANK_HOME") or Path.home() / ".natsbank")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Comma-separated server URLs; empty means "find the dev cluster under home".
    nats_url: str = ""
    # Credentials (adapters/credentials.py): a creds file, an nkey seed file, or user and
    # password; none given: the dev cluster's own, if it has them.
    creds: str = ""
    nkey: str = ""
    user: str = ""
    password: str = ""
    # Connect as this identity (`service.bank-a`, `audit`, core/permissions.py) whatever the
    # command's own role: a deployed process holds one credential, and its probes use it too.
    identity: str = ""
    # TLS: the CA file that signs the servers' certificates (`tls://` URLs); none given: the
    # dev cluster's own when it runs with TLS, else the system's trust store.
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    home: str = ""
    streams_file: str = ""
    # `streams init`: register the public signing keys of this file (`natsbank deploy keys`
    # writes it: adapters/signing_key_file.py) instead of generating dev keys.
    signing_keys: str = ""
    pg_dsn: str = ""
    # Group commit: how many inbox messages one service instance takes per fetch (a fetch of 0
    # is refused by nats-py on every attempt: a service would retry it for ever).
    fetch_batch: Annotated[int, msgspec.Meta(ge=1, le=FETCH_BATCH_MAX)] = FETCH_BATCH
    # Seconds an unacknowledged inbox message waits before JetStream redelivers it.
    ack_wait: Annotated[float, msgspec.Meta(gt=0, le=WAIT_MAX_S)] = 30.0
    # `serve`: port of /healthz, /readyz and /metrics; 0 means no HTTP endpoint.
    http_port: Annotated[int, msgspec.Meta(ge=0, le=PORT_MAX)] = 0
    store: Store = Store.INDEPENDENT
    transport: Transport = Transport.JETSTREAM

    @property
    def home_path(self) -> Path:
        return Path(self.home) if self.home else default_home()


_ENV = {
    "nats_url": "NATS_URL",
    "home": "NATSBANK_HOME",
    "creds": "NATSBANK_CREDS",
    "nkey": "NATSBANK_NKEY",
    "user": "NATSBANK_USER",
    "password": "NATSBANK_PASSWORD",
    "identity": "NATSBANK_IDENTITY",
    "tls_ca": "NATSBANK_TLS_CA",
    "tls_cert": "NATSBANK_TLS_CERT",
    "tls_key": "NATSBANK_TLS_KEY",
    "streams_file": "NATSBANK_STREAMS_FILE",
    "signing_keys": "NATSBANK_SIGNING_KEYS",
    "pg_dsn": "NATSBANK_PG_DSN",
    "fetch_batch": "NATSBANK_FETCH_BATCH",
    "ack_wait": "NATSBANK_ACK_WAIT",
    "http_port": "NATSBANK_HTTP_PORT",
    "store": "NATSBANK_STORE",
    "transport": "NATSBANK_TRANSPORT",
}


def load_settings(**flags: object) -> Settings:
    """Defaults < environment < flags (a flag given as None counts as not given)."""
    values: dict[str, object] = {}
    given: dict[str, str] = {}  # field -> where its value came from, for the error
    for field, var in _ENV.items():
        if os.environ.get(var):
            values[field], given[field] = os.environ[var], var
    for field, value in flags.items():
        if value is not None:
            values[field], given[field] = value, f"--{field.replace('_', '-')}"
    for field, kind in (("store", Store), ("transport", Transport)):
        if field in values and str(values[field]) not in set(kind):
            choices = " or ".join(kind)
            raise ConfigError(f"unknown {field} {str(values[field])!r:.40}: use {choices}")
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        found = _AT_FIELD.search(str(exc))
        field = found[1] if found else ""
        where = f" {given[field]}={str(values[field])[:40]}" if field in given else ""
        raise ConfigError(f"bad setting{where}: {_AT_FIELD.sub('', str(exc))}") from None


_AT_FIELD = re.compile(r" - at `\$\.(\w+)`")
