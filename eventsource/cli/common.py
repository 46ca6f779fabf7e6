"""Plumbing shared by the commands: settings, the connection, JSON output, exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client
from nats.js.errors import BadRequestError, NotFoundError
from rich.console import Console

from eventsource.adapters.access import resolve_access
from eventsource.adapters.jetstream import connect
from eventsource.adapters.leader_node import leader_first
from eventsource.adapters.retry import watch_refusals
from eventsource.adapters.tls import UNTRUSTED
from eventsource.bootstrap import home_stream, open_ledger
from eventsource.core.errors import ConfigError
from eventsource.core.permissions import Identity
from eventsource.services.ledger import Ledger
from eventsource.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")
CONNECT_TIMEOUT = 10.0


def run(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(main())  # type: ignore[arg-type]


def stop_on_signals() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets: long-running commands stop cleanly on it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def settings(**flags: object) -> Settings:
    return load_settings(**flags)


@contextlib.asynccontextmanager
async def nats_connection(
    config: Settings, identity: Identity, *, url: str | None = None
) -> AsyncIterator[Client]:
    """A connection as `identity` (the role the command needs: adapters/access.py). With
    `url` (the configured servers in another order), the servers are tried in its order."""
    resolved, credential = resolve_access(config, identity)
    ordered = {"dont_randomize": True} if url else {}
    url = url or resolved
    connecting = True
    failures: list[Exception] = []
    refused = watch_refusals()  # a refused request fails at once instead of being retried

    async def report(exc: Exception) -> None:
        # nats-py retries a first connect forever, logging a traceback each time: stay quiet
        # until connected, and let the timeout below say it once.
        if connecting:
            failures.append(exc)
        elif "permissions violation" in str(exc):  # the credential's role: one line, no trace
            refused(exc)
            logging.getLogger("natsbank").error(
                "NATS refused the credential used as %s: %s", identity.name, exc
            )
        else:
            logging.getLogger("nats.aio.client").error("nats: encountered error", exc_info=exc)

    try:
        nc = await asyncio.wait_for(
            connect(url, credential=credential, error_cb=report, **ordered), CONNECT_TIMEOUT
        )
    except TimeoutError:
        refused = [e for e in failures if "authorization" in str(e).lower()]
        if any(UNTRUSTED in repr(e) for e in failures):
            raise ConfigError(
                f"NATS at {url}: the server's TLS certificate is not signed by a CA this "
                "command trusts: give it with NATSBANK_TLS_CA (--tls-ca)"
            ) from None
        if refused:
            raise ConfigError(
                f"NATS at {url} refused the credential of {identity.name} "
                f"({credential.describe()}): {refused[-1]}"
            ) from None
        raise ConfigError(
            f"no NATS server answered at {url} within {CONNECT_TIMEOUT:g} s: "
            "fix NATS_URL, or unset it and run `natsbank dev up`"
        ) from None
    connecting = False
    try:
        yield nc
    except NotFoundError as exc:  # a stream, consumer or bucket the recorded layout names
        raise ConfigError(
            f"NATS: {exc.description} (err_code {exc.err_code}): the streams are not as "
            "recorded: run `natsbank streams init`"
        ) from None
    except BadRequestError as exc:  # a setting the server refuses (streams.yaml)
        raise ConfigError(f"NATS refused it: {exc.description} (err_code {exc.err_code})") from None
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()


async def leader_node_url(config: Settings, identity: Identity, participant: str) -> str | None:
    """The configured servers with the node that leads `participant`'s home partition first
    (adapters/leader_node.py), found with a connection of its own; None: keep the order."""
    url, credential = resolve_access(config, identity)
    async with nats_connection(config, identity) as probe:
        stream = home_stream(await open_ledger(probe, config.store), participant)
        return await leader_first(probe, url, credential, stream)


def on_nats(config: Settings, identity: Identity, action: Callable[[Client], Awaitable[T]]) -> T:
    """Connect as `identity` and run `action` with the connection."""

    async def main() -> T:
        async with nats_connection(config, identity) as nc:
            return await action(nc)

    return run(main)


def on_ledger(
    config: Settings,
    identity: Identity,
    action: Callable[[Ledger], Awaitable[T]],
    *,
    provisioned: bool = True,
) -> T:
    """Connect as `identity`, open the configured store's ledger, and run `action` on it."""

    async def main() -> T:
        async with nats_connection(config, identity) as nc:
            return await action(await open_ledger(nc, config.store, provisioned=provisioned))

    return run(main)


def print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
