"""`natsbank serve PARTICIPANT`: run one instance of a participant (start several for scale)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from pathlib import Path

import msgspec
import typer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from eventsource.adapters.http_probe import serve_http
from eventsource.adapters.log_format import configure_logging
from eventsource.adapters.registry import require_participant_name
from eventsource.adapters.remote_bank import RemoteBankResponder
from eventsource.adapters.signing_keys import SIGNING_KEY_ENV
from eventsource.bootstrap import (
    ServeOptions,
    check_serve_options,
    open_ledger,
    participant_service,
)
from eventsource.cli.common import (
    err_console,
    leader_node_url,
    nats_connection,
    run,
    settings,
    stop_on_signals,
)
from eventsource.cli.options import (
    remote_decide_after_option,
    remote_delay_option,
    remote_duplicate_option,
    remote_loss_option,
    remote_plan,
    remote_reject_option,
    remote_timeout_option,
    require_simulated_if_faulty,
    store_option,
)
from eventsource.core.errors import ConfigError, UsageError
from eventsource.core.faults import FaultPlan
from eventsource.core.limits import (
    CORE_UNCONFIRMED_PER_PEER,
    CORE_WINDOW,
    SWEEP_INTERVAL_S,
)
from eventsource.core.permissions import Identity, Role
from eventsource.core.remote import RemoteMode
from eventsource.core.resend import ResendPolicy
from eventsource.services.metrics import NO_OBSERVER, ServiceMetrics
from eventsource.services.participant import ParticipantService
from eventsource.services.probes import not_ready, sample_lag
from eventsource.settings import Transport

log = logging.getLogger("natsbank.serve")


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    participants: list[str] = typer.Argument(..., help="Participant(s) this instance serves."),
    mode: Transport | None = typer.Option(
        None,
        "--mode",
        help="jetstream (default): the outbox is in the ledger and the server redelivers; core: "
        "postings, results and confirms are core messages, resent on timers "
        "(env NATSBANK_TRANSPORT).",
    ),
    fetch_batch: int | None = typer.Option(None, "--fetch-batch", help="Messages per fetch."),
    faults: str = typer.Option(
        "",
        "--faults",
        envvar="NATSBANK_FAULTS",
        help="Inject transport faults, e.g. drop=0.1,duplicate=0.05,delay=0.05,max_delay=0.5,"
        "seed=7 (testing and benchmarks).",
    ),
    resend_after: float = typer.Option(
        2.0, "--resend-after", min=0.05, help="Core mode: seconds before the first resend."
    ),
    window: int = typer.Option(
        CORE_WINDOW,
        "--window",
        min=1,
        help="Core mode: admit no new submission while this many of the participant's own "
        "transfers wait for the receiver's answer.",
    ),
    unconfirmed_per_peer: int = typer.Option(
        CORE_UNCONFIRMED_PER_PEER,
        "--unconfirmed-per-peer",
        min=1,
        help="Core mode: decide no new posting of a peer while this many of its transfers wait "
        "here for its confirmation (shed: the peer resends them).",
    ),
    sweep_interval: float = typer.Option(
        SWEEP_INTERVAL_S,
        "--sweep-interval",
        min=1.0,
        help="Seconds between ledger sweeps: they adopt a dead sibling's give-up deadlines "
        "and, in core mode, what it left waiting for an answer.",
    ),
    stats_dir: Path | None = typer.Option(
        None, "--stats-dir", help="Write this instance's counters to DIR/<pid>.json every second."
    ),
    http_port: int | None = typer.Option(
        None,
        "--http-port",
        min=0,
        help="Serve /healthz, /readyz and /metrics on this port (env NATSBANK_HTTP_PORT; 0: none).",
    ),
    log_format: LogFormat = typer.Option(
        LogFormat.TEXT, "--log-format", help="text, or json: one JSON object per line."
    ),
    log_level: str = typer.Option("INFO", "--log-level"),
    store: str | None = store_option(),
    signing_key: Path | None = typer.Option(
        None,
        "--signing-key",
        help="The nkey seed file the participant signs its protocol messages with (env "
        f"{SIGNING_KEY_ENV}; default: its dev key, made when it was registered).",
    ),
    remote_bank: str = typer.Option(
        "off",
        "--remote-bank",
        help="off; simulated: the receiving side is a proxy to a remote bank that this process "
        "also simulates; external: a `natsbank remote-bank P` process answers (README: A "
        "participant as a proxy).",
    ),
    remote_delay: str = remote_delay_option(),
    remote_loss: float = remote_loss_option(),
    remote_duplicate: float = remote_duplicate_option(),
    remote_reject: float = remote_reject_option(),
    remote_timeout: float = remote_timeout_option(),
    remote_decide_after: float = remote_decide_after_option(),
) -> None:
    """Serve the participants' inboxes until SIGTERM or Ctrl-C. Instances share the work."""
    configure_logging(log_level, log_format)
    config = settings(fetch_batch=fetch_batch, http_port=http_port, store=store, transport=mode)
    metrics = ServiceMetrics() if config.http_port else None
    options = ServeOptions.of(
        config,
        faults=FaultPlan.parse(faults),
        resend=ResendPolicy(first=resend_after),
        sweep_interval=sweep_interval,
        window=window,
        unconfirmed_per_peer=unconfirmed_per_peer,
        instance=str(os.getpid()),
        observer=metrics or NO_OBSERVER,
        signing_key=signing_key,
        remote=remote_plan(
            remote_bank,
            remote_delay,
            remote_loss,
            remote_duplicate,
            remote_reject,
            timeout_ms=remote_timeout,
            decide_after_ms=remote_decide_after,
        ),
    )
    require_simulated_if_faulty(options.remote)
    check_serve_options(config.store, options)
    if len(participants) > 1 and (signing_key or os.environ.get(SIGNING_KEY_ENV)):
        raise UsageError("one signing key signs for one participant: serve them separately")
    for participant in participants:
        require_participant_name(participant)

    async def main() -> None:
        stop = stop_on_signals()
        async with contextlib.AsyncExitStack() as connections:
            # One connection per participant, as that bank's service (its own credential).
            services, responders = [], []
            for p in participants:
                identity = Identity(Role.SERVICE, p)
                # On the node that leads its partition: its batches skip a route hop.
                url = await leader_node_url(config, identity, p)
                nc = await connections.enter_async_context(
                    nats_connection(config, identity, url=url)
                )
                ledger = await open_ledger(nc, config.store)
                await ledger.require([p])
                services.append(participant_service(ledger, p, options))
                if options.remote.mode is RemoteMode.SIMULATED:
                    responder = RemoteBankResponder(nc, p, options.remote, salt=options.instance)
                    await responder.start()
                    responders.append(responder)
            extras, server = [], None
            if metrics is not None:
                metrics.watch(services)
                try:
                    server = await serve_http(
                        "0.0.0.0", config.http_port, routes(nc, services, metrics)
                    )
                except OSError as exc:
                    raise ConfigError(
                        f"cannot serve HTTP on port {config.http_port}: {exc}"
                    ) from None
                extras.append(asyncio.create_task(sample_lag(nc, services, metrics, stop)))
            _announce(participants, config, options, log_format)
            path = stats_dir / f"{os.getpid()}.json" if stats_dir else None
            writer = asyncio.create_task(_write_stats([*services, *responders], path, stop))
            try:
                await asyncio.gather(*(s.run(stop) for s in services))
            finally:
                stop.set()
                if server is not None:
                    server.close()
                await asyncio.gather(writer, *extras)

    run(main)


def _announce(participants: list[str], config, options: ServeOptions, log_format) -> None:
    started = (
        f"serving {', '.join(participants)} ({config.store} store, {options.transport} mode"
        + (f", faults {options.faults.encode()}" if options.faults.active else "")
        + (f", remote bank {options.remote.mode}" if options.remote.active else "")
        + (f", http on port {config.http_port}" if config.http_port else "")
        + ")"
    )
    if log_format is LogFormat.JSON:
        log.info("%s", started)  # every line of a JSON log is JSON
    else:
        err_console.print(started, soft_wrap=True, highlight=False)  # one line


def routes(nc, services: list[ParticipantService], metrics: ServiceMetrics) -> dict:
    async def healthz():
        return 200, "text/plain", b"ok\n"  # answered by the event loop itself: it runs

    async def readyz():
        reasons = await not_ready(nc, services)
        body = ("\n".join(reasons) or "ready") + "\n"
        return (503 if reasons else 200), "text/plain", body.encode()

    async def metrics_page():
        return 200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry)

    return {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_page}


async def _write_stats(services: list, path: Path | None, stop: asyncio.Event) -> None:
    """Counters for `bench`: rewritten every second, so a kill -9 loses at most a second."""
    if path is None:
        return
    while True:
        figures = [s.figures() for s in services]
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(figures))
        tmp.replace(path)
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
