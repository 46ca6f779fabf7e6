"""`natsbank health`: an exec probe for containers. Exit 0 healthy, 1 unhealthy, 2 bad config.

It checks what an instance depends on: NATS answers, JetStream answers, every ledger stream
(and the dead-letter stream) has a leader, and each `--participant` is registered with its inbox
consumer on every partition. It cannot see inside a running `serve` process: that is for a
metrics or health port on the service itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import typer
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from eventsource.adapters.access import resolve_access
from eventsource.adapters.cluster import server_list
from eventsource.adapters.credentials import Credential
from eventsource.adapters.jetstream import connect
from eventsource.adapters.registry import TOPOLOGY_KEY, is_registered, partitions_from
from eventsource.cli.common import console, print_json, run, settings
from eventsource.cli.options import participant_option, seconds_option
from eventsource.core.errors import NatsbankError
from eventsource.core.permissions import Identity, Role
from eventsource.core.subjects import (
    DEAD_LETTER_STREAM,
    PARTICIPANTS_BUCKET,
    inbox_consumers,
    ledger_stream,
)

DEFAULT_TIMEOUT = 5.0
PARTICIPANTS = participant_option("Also check this participant's inbox (repeatable).", default=())


class Unhealthy(NatsbankError):
    """A dependency of the service is not usable right now (not a mistake of the caller)."""

    exit_code = 1


@dataclasses.dataclass
class Report:
    server: str = ""
    partitions: int = 0
    leaders: dict[str, str] = dataclasses.field(default_factory=dict)
    participants: list[str] = dataclasses.field(default_factory=list)


def register(app: typer.Typer) -> None:
    app.command("health")(health)


def health(
    participants: list[str] = PARTICIPANTS,
    timeout: float = seconds_option(DEFAULT_TIMEOUT, "--timeout", "Seconds for the whole check."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check NATS, JetStream, the ledger streams' leaders and the participants' inboxes.

    As a bank's service (`--identity service.P`), it checks what that credential reaches: the
    registry and P's inbox consumers."""
    config = settings()
    # no NATS_URL and no dev cluster: a config error, exit 2
    url, credential = resolve_access(config, Identity(Role.AUDIT))
    report = Report()
    try:
        run(lambda: asyncio.wait_for(_check(url, credential, participants, report), timeout))
    except TimeoutError:
        _unhealthy(f"no complete answer within {timeout:g} s", report, as_json)
    except Unhealthy as exc:
        _unhealthy(str(exc), report, as_json)
    leaders = ", ".join(f"{stream} leader {leader}" for stream, leader in report.leaders.items())
    inboxes = f"; inboxes of {', '.join(report.participants)} ok" if report.participants else ""
    if as_json:
        print_json({"healthy": True} | dataclasses.asdict(report))
    else:
        line = "; ".join(part for part in (f"healthy: {report.server}", leaders) if part)
        line += inboxes
        console.print(line, highlight=False, soft_wrap=True)


def _unhealthy(reason: str, report: Report, as_json: bool) -> None:
    if as_json:
        print_json({"healthy": False, "reason": reason} | dataclasses.asdict(report))
        raise typer.Exit(Unhealthy.exit_code)
    raise Unhealthy(f"unhealthy: {reason}")


async def _check(url: str, credential: Credential, participants: list[str], report: Report) -> None:
    async with _connect(url, credential) as nc:
        report.server = f"connected to {nc.connected_url.netloc if nc.connected_url else url}"
        js = nc.jetstream()
        # A bank's credential reaches only its own consumers and the registry (its account
        # imports no more): JetStream answering those is its health.
        bank = credential.identity is not None and credential.identity.participant is not None
        if not bank:
            try:
                await js.account_info()
            except Exception as exc:  # ServiceUnavailable, NoResponders, a timeout: "down"
                raise Unhealthy(f"JetStream does not answer: {_describe(exc)}") from None
        registry = await _registry(js)
        report.partitions = await _partitions(registry)
        streams = [ledger_stream(k) for k in range(report.partitions)] + [DEAD_LETTER_STREAM]
        for stream in [] if bank else streams:
            report.leaders[stream] = await _leader(js, stream)
        for participant in participants:
            await _check_inbox(nc, participant, report.partitions)
            report.participants.append(participant)


@contextlib.asynccontextmanager
async def _connect(url: str, credential: Credential):
    async def quiet(exc: Exception) -> None:
        """nats-py logs every failed attempt with a traceback; the probe says it once."""

    try:
        nc: Client = await connect(
            ",".join(server_list(url)),
            credential=credential,
            name="natsbank-health",
            connect_timeout=2,
            allow_reconnect=False,
            # One try per server: 0 would mean "forever" to nats-py's first connect.
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            error_cb=quiet,
        )
    except Exception as exc:
        raise Unhealthy(f"cannot connect to NATS at {url}: {_describe(exc)}") from None
    try:
        yield nc
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def _registry(js):
    try:
        return await js.key_value(PARTICIPANTS_BUCKET)
    except NotFoundError:
        raise Unhealthy("the streams are not set up: run `natsbank streams init`") from None


async def _partitions(registry) -> int:
    try:
        entry = await registry.get(TOPOLOGY_KEY)
    except NotFoundError:
        raise Unhealthy("the streams are not set up: run `natsbank streams init`") from None
    return partitions_from(entry.value)


async def _leader(js, stream: str) -> str:
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        raise Unhealthy(f"stream {stream} does not exist: run `natsbank streams init`") from None
    except Exception as exc:
        raise Unhealthy(f"stream {stream} does not answer: {_describe(exc)}") from None
    if info.cluster is None:
        return "(single server)"
    if not info.cluster.leader:
        raise Unhealthy(f"stream {stream} has no leader")
    return info.cluster.leader


async def _check_inbox(nc: Client, participant: str, partitions: int) -> None:
    if not await is_registered(nc, participant):
        raise Unhealthy(f"participant {participant} is not registered")
    js = nc.jetstream()
    for k in range(partitions):
        for durable in inbox_consumers(participant, k):
            try:
                await js.consumer_info(ledger_stream(k), durable)
            except NotFoundError:
                raise Unhealthy(f"inbox consumer {durable} of {participant} is missing") from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
