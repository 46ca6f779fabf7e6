"""NATS_URL: the comma-separated server URLs every command may be pointed at."""

from __future__ import annotations

from urllib.parse import urlsplit

from eventsource.core.errors import ConfigError

_SCHEMES = ("nats", "tls", "ws", "wss")
_WEBSOCKET = ("ws", "wss")
_URL_HELP = (
    "give nats://HOST:PORT (comma-separated for several), or unset it and run `natsbank dev up`"
)


def server_list(nats_url: str) -> list[str]:
    """Split a comma-separated NATS_URL into the list that `nats.connect(servers=...)` needs.

    Refuses what nats-py cannot use: with no server at all (`" "`, `",,,"`) its first connect
    loops for ever without yielding to the event loop, so no timeout can stop it."""
    servers = [part.strip() for part in nats_url.split(",") if part.strip()]
    if not servers:
        raise ConfigError(f"NATS_URL {nats_url!r:.80} names no server: {_URL_HELP}")
    for server in servers:
        if (problem := _url_problem(server)) is not None:
            raise ConfigError(f"NATS_URL: {server!r:.80} {problem}: {_URL_HELP}")
    if len({_scheme(server) in _WEBSOCKET for server in servers}) > 1:
        raise ConfigError(f"NATS_URL mixes websocket and other servers: {_URL_HELP}")
    return servers


def _scheme(server: str) -> str:
    return server.partition("://")[0] if "://" in server else "nats"


def _url_problem(server: str) -> str | None:
    """Why nats-py could not connect to `server` however long it tried, or None."""
    if _scheme(server) not in _SCHEMES:
        return f"has the scheme {_scheme(server)!r:.20}, not one of {', '.join(_SCHEMES)}"
    try:
        parsed = urlsplit(server if "://" in server else f"nats://{server}")
        parsed.port  # noqa: B018 -- raises ValueError for a port that is not 0-65535
    except ValueError:
        return "is not a URL"
    if not parsed.hostname:
        return "has no host"
    return None
