"""`natsbank bench`'s flags, and the run they ask for."""

from __future__ import annotations

from pathlib import Path

import typer

from benchmark.bench import DEFAULT_LOSSES, BenchOptions
from benchmark.durability import Durability, at_interval, parse_durability
from benchmark.faults import ProcessFaults
from benchmark.projection import ProjectorChoice
from benchmark.soak import DEFAULT_HORIZON, DEFAULT_SAMPLE_EVERY
from eventsource.adapters.topology import seconds
from eventsource.cli import edge
from eventsource.cli.options import (
    remote_decide_after_option,
    remote_delay_option,
    remote_duplicate_option,
    remote_loss_option,
    remote_plan,
    remote_reject_option,
    remote_timeout_option,
    require_simulated_if_faulty,
)
from eventsource.core.errors import ConfigError
from eventsource.core.remote import RemoteMode, RemotePlan
from eventsource.settings import Store, Transport

BENCH_CHART = Path("natsbank-bench.png")
SOAK_CHART = Path("natsbank-soak.png")

MODES = typer.Option(
    [Transport.JETSTREAM, Transport.CORE],
    "--mode",
    help="Transport mode(s); repeat for several.",
)
LOSSES = typer.Option(
    ",".join(f"{x:g}" for x in DEFAULT_LOSSES),
    "--loss",
    help="Comma-separated shares of protocol messages dropped; one run per mode and rate.",
)
DUPLICATE = typer.Option(0.0, "--duplicate", help="Share duplicated, every run.")
DELAY = typer.Option(0.0, "--delay", help="Share delayed up to --max-delay s.")
MAX_DELAY = typer.Option(0.5, "--max-delay")
RESEND_AFTER = typer.Option(
    2.0,
    "--resend-after",
    help="Seconds before a resend: core mode's resend clock and JetStream's ack wait.",
)
KILL_SERVICE_EVERY = typer.Option(
    None, "--kill-service-every", help="kill -9 a random service process every ~S seconds."
)
KILL_NODE_AT = typer.Option(
    None, "--kill-node-at", help="kill -9 a random nats-server node S seconds in."
)
NODE_DOWN = typer.Option(5.0, "--node-down", help="Seconds before it restarts.")
RECEIVER_DOWN = typer.Option(
    None, "--receiver-down", help="The last participant starts S seconds late."
)
SCALES = typer.Option(
    "",
    "--scale",
    help="Comma-separated factors, e.g. 10,100: each mode again at 0% loss with "
    "--transfers x factor, to see whether throughput and memory stay flat; with --rate "
    "offered at that same rate (N x lasts N times longer), else all at once.",
)
SETTLE_TIMEOUT = typer.Option(
    None,
    "--settle-timeout",
    help="Seconds to wait for the last transfer; then it is lost. "
    "Default: 900, or 1 per 100 transfers if more.",
)
CHART = typer.Option(
    BENCH_CHART,
    "--chart",
    help="PNG of the sweep (with 2+ runs); with --soak, of the "
    f"samples over time ({SOAK_CHART}), and its report as JSON beside it.",
)
TRANSFERS = typer.Option(20000, "--transfers", "-n", min=1, help="Transfers per run.")
PARTICIPANTS = typer.Option(4, "--participants", min=2, max=26)
PROCESSES = typer.Option(2, "--processes", min=1, max=8, help="Service processes.")
INSTANCES = typer.Option(
    1,
    "--instances",
    min=1,
    max=8,
    help="Instances of each participant, spread over the processes (2+: they share work).",
)
NODES = typer.Option(3, "--nodes", help="1 or 3 nats-server nodes.")
RATE = typer.Option(
    None,
    "--rate",
    help="Target transfers/s; full speed if not given.",
    callback=edge.checked(edge.rate, "--rate"),
)
SYNC_INTERVAL = typer.Option(
    None,
    "--sync-interval",
    help="Instead of --durability: nats-server's fsync interval (e.g. 1s) against pgbench "
    "with fsync on; 'always' is --durability always.",
)
DURABILITY = typer.Option(
    None,
    "--durability",
    help="always: nats-server fsyncs every write, pgbench every commit (the headline); default: "
    "nats-server's 2 min interval, pgbench with synchronous_commit=off; both (the default): "
    "the sweep at always, then its first point again at default.",
)
RATE_SWEEP = typer.Option(
    "",
    "--rate-sweep",
    help="Comma-separated percents of the first run's peak, e.g. 10,25,50,75,100: that point "
    "again, paced at each rate for --point-seconds, for latency against offered rate (PNG).",
)
POINT_SECONDS = typer.Option(
    20.0, "--point-seconds", min=0.1, help="With --rate-sweep: how long each rate is offered."
)
PG_SECONDS = typer.Option(15, "--pg-seconds", min=1, help="pgbench -T.")
PG_SCALE = typer.Option(10, "--pg-scale", min=1, help="pgbench -i -s.")
PG_CLIENTS = typer.Option(8, "--pg-clients", min=1, help="pgbench -c.")
SKIP_POSTGRES = typer.Option(
    False, "--skip-postgres", help="No baseline (quick runs); the ratio is then null."
)
PROJECTOR = typer.Option(
    ProjectorChoice.NONE,
    "--projector",
    help="After the headline run (measured without it): a projector into this database, "
    "catching up the ledger, then following as many transfers again at full speed.",
)
SEED = typer.Option(1, "--seed", help="Shape of the random workload.")
STORES = typer.Option(
    "independent",
    "--store",
    help="Comma-separated: independent (each mode at each loss rate) and/or shared (all "
    "accounts in one stream, one atomic step per transfer; once per scale, at 0% loss).",
)
SOAK = typer.Option(
    None,
    "--soak",
    help="Instead of the sweep: offer --rate transfers/s for this long (30m, 90s) on one "
    "cluster, sample every --sample-every, and judge whether each series stays flat.",
)
HORIZON = typer.Option(
    None,
    "--horizon",
    help="streams.yaml's history.horizon (period half of it); finite starts one "
    f"`natsbank archive run` beside each run; 'forever' keeps everything live. Default: "
    f"{DEFAULT_HORIZON} with --soak, else forever.",
)
WARMUP = typer.Option(
    "0s",
    "--warmup",
    help="With --rate: this long (60s, 2m) of the same load before each run's measured "
    "transfers, unmeasured but kept (history), so that a short run is measured at the steady "
    "state of the servers' memory.",
)
SAMPLE_EVERY = typer.Option(
    DEFAULT_SAMPLE_EVERY, "--sample-every", help="With --soak: the sample interval."
)
AS_JSON = typer.Option(False, "--json")
REMOTE_BANK = typer.Option(
    "off",
    "--remote-bank",
    help="simulated: every receiver is a proxy to a remote bank its serve process simulates "
    "(serve --remote-bank); off (default).",
)
REMOTE_DELAY = remote_delay_option()
REMOTE_LOSS = remote_loss_option()
REMOTE_DUPLICATE = remote_duplicate_option()
REMOTE_REJECT = remote_reject_option()
REMOTE_TIMEOUT = remote_timeout_option()
REMOTE_DECIDE_AFTER = remote_decide_after_option()


def bench_options(params: dict) -> BenchOptions:
    """The run `natsbank bench`'s parameters (by name) ask for; bad values raise ConfigError."""
    durabilities = durabilities_for(params["durability"], params["sync_interval"])
    chosen = params["durability"] is not None or params["sync_interval"] is not None
    return BenchOptions(
        modes=tuple(dict.fromkeys(params["modes"])),
        losses=parse_losses(params["losses"]),
        duplicate=params["duplicate"],
        delay=params["delay"],
        max_delay=params["max_delay"],
        resend_after=params["resend_after"],
        scales=parse_scales(params["scales"]),
        settle_timeout=params["settle_timeout"],
        process_faults=ProcessFaults(
            kill_service_every=params["kill_service_every"],
            kill_node_at=params["kill_node_at"],
            node_down=params["node_down"],
            receiver_down=params["receiver_down"],
        ),
        transfers=params["transfers"],
        participants=params["participants"],
        instances=params["instances"],
        processes=params["processes"],
        nodes=params["nodes"],
        rate=params["rate"],
        warmup_s=warmup_seconds(params["warmup"], params["rate"]),
        # The soak runs at the one chosen; unchosen, at nats-server's default as it always has.
        sync_interval=durabilities[0].sync_interval if chosen else None,
        durabilities=durabilities,
        rate_sweep=parse_rate_sweep(params["rate_sweep"]),
        point_seconds=params["point_seconds"],
        seed=params["seed"],
        pg_seconds=params["pg_seconds"],
        pg_scale=params["pg_scale"],
        pg_clients=params["pg_clients"],
        pg_threads=min(2, params["pg_clients"]),  # pgbench refuses more threads than clients
        skip_postgres=params["skip_postgres"],
        projector=params["projector"],
        stores=parse_stores(params["stores"]),
        horizon=params["horizon"] or "forever",
        remote=bench_remote(params),
    )


def warmup_seconds(text: str, rate: float | None) -> float:
    try:
        warmup = seconds(text)
    except ValueError:
        raise ConfigError(f"--warmup: {text!r} is not a duration like 60s or 2m") from None
    if warmup < 0:
        raise ConfigError("--warmup must not be negative")
    if warmup and rate is None:
        raise ConfigError("--warmup needs --rate (the warm-up offers the measured run's rate)")
    return warmup


def bench_remote(params: dict) -> RemotePlan:
    plan = remote_plan(
        params["remote_bank"],
        params["remote_delay"],
        params["remote_loss"],
        params["remote_duplicate"],
        params["remote_reject"],
        timeout_ms=params["remote_timeout"],
        decide_after_ms=params["remote_decide_after"],
        seed=params["seed"],
    )
    if plan.mode is RemoteMode.EXTERNAL:
        raise ConfigError("bench --remote-bank takes off or simulated (it starts every process)")
    require_simulated_if_faulty(plan)
    return plan


def durabilities_for(durability: str | None, sync_interval: str | None) -> tuple[Durability, ...]:
    if durability is not None and sync_interval is not None:
        raise ConfigError("give --durability or --sync-interval, not both")
    if sync_interval is not None:
        return (at_interval(sync_interval),)
    return parse_durability(durability or "both")


def parse_rate_sweep(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(
            f"--rate-sweep takes comma-separated percents of the peak, not {text!r}"
        ) from None


def parse_losses(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--loss takes comma-separated numbers, not {text!r}") from None
    if not values or any(not 0 <= v < 1 for v in values):
        raise ConfigError("--loss rates must be in [0, 1), e.g. 0,0.01,0.1")
    return values


def parse_scales(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--scale takes comma-separated whole factors, not {text!r}") from None
    if any(v < 1 for v in values):
        raise ConfigError("--scale factors must be at least 1")
    return values


def parse_stores(text: str) -> tuple[Store, ...]:
    values = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not values or set(values) - set(Store):
        raise ConfigError(
            f"--store takes independent, shared or both, comma-separated, not {text!r}"
        )
    return tuple(Store(v) for v in values)
