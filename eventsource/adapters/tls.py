"""TLS for client connections: which CA a command trusts and which certificate it shows.

The CA: `--tls-ca`/`NATSBANK_TLS_CA`, else the dev cluster's own (`<dev state>/tls/ca.pem`,
written by `natsbank dev up --tls`), else the system trust store for `tls://` URLs. A client
certificate (`--tls-cert`/`--tls-key`, `NATSBANK_TLS_CERT`/`NATSBANK_TLS_KEY`) is shown to
servers that require one (`verify: true`, mutual TLS)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from eventsource.adapters.pki import CA_CERT, TLS_DIR
from eventsource.core.errors import ConfigError
from eventsource.settings import Settings


class _QuietSslEof(logging.Filter):
    """asyncio warns on every TLS connection nats-py closes ("returning true from
    eof_received() has no effect when using ssl"): harmless, and noise on every command."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


_QUIET = _QuietSslEof()
UNTRUSTED = "CERTIFICATE_VERIFY_FAILED"  # in the error of a server whose CA is not trusted


def tls_options(settings: Settings, url: str, dev_state: Path | None) -> dict:
    """nats.connect options for TLS: `{"tls": SSLContext}`, or {} for plain connections."""
    if "tls://" in url or settings.tls_ca or dev_state is not None:
        logging.getLogger("asyncio").addFilter(_QUIET)  # a filter is added once
    ca = settings.tls_ca or _dev_ca(dev_state)
    client_cert = settings.tls_cert or settings.tls_key
    if not ca and not client_cert:
        return {}  # a tls:// URL still gets nats-py's default context (system trust store)
    try:
        context = ssl.create_default_context(cafile=ca or None)
        if client_cert:
            if not (settings.tls_cert and settings.tls_key):
                raise ConfigError("give both NATSBANK_TLS_CERT (--tls-cert) and NATSBANK_TLS_KEY")
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"TLS files unusable: {exc}") from None
    return {"tls": context}


def _dev_ca(dev_state: Path | None) -> str:
    if dev_state is None:
        return ""
    ca = Path(dev_state) / TLS_DIR / CA_CERT
    return str(ca) if ca.is_file() else ""
