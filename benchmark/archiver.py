"""The archiver beside a bench run with a finite live horizon: one real process, started the way
the bench starts `serve` processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec

from eventsource.adapters.topology import HistoryConfig, Topology, seconds
from eventsource.core.errors import ConfigError
from eventsource.core.limits import ARCHIVE_PACE_SHARE

ARCHIVE_COMMAND = ("archive", "run")
SKEW_MS_MAX = 10_000  # a bench's max_clock_skew: 10 s, or a quarter of a short horizon


def history_for(horizon: str) -> HistoryConfig:
    """streams.yaml's `history` for a bench run: the period is half the horizon, the clock
    skew 10 s (a quarter of the horizon if that is less), so HistoryConfig's rules hold."""
    if horizon == "forever":
        return HistoryConfig()
    try:
        horizon_ms = round(seconds(horizon) * 1000)
        return HistoryConfig(
            horizon=horizon,
            period=f"{max(1, horizon_ms // 2)}ms",
            max_clock_skew=f"{min(SKEW_MS_MAX, horizon_ms // 4)}ms",
        )
    except ValueError as exc:
        raise ConfigError(f"--horizon: {exc}") from None


def fill_seconds(history: HistoryConfig) -> float:
    """How long the load runs before the "before" timings so that the live ledger holds what it
    holds in a steady state: the horizon, the clock skew, and two periods (one the archiver has
    not reached yet, one it is moving). 0 without a horizon: nothing ever leaves."""
    if history.horizon == "forever":
        return 0.0
    return seconds(history.horizon) + seconds(history.max_clock_skew) + 2 * seconds(history.period)


def archiver_for(url: str, topology: Topology, workdir: Path, logs: Path) -> subprocess.Popen:
    """The archiver of a run with a finite horizon: a round per period, paced over
    ARCHIVE_PACE_SHARE of it (as `archive run` is by default), with the run's streams.yaml."""
    streams_file = workdir / "streams.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    streams_file.write_bytes(msgspec.yaml.encode(topology))
    every_s = seconds(topology.history.period)
    return start_archiver(url, every_s, logs, env={"NATSBANK_STREAMS_FILE": str(streams_file)})


def start_archiver(
    url: str,
    every_s: float,
    log_dir: Path,
    env: dict[str, str] | None = None,
    pace: float = ARCHIVE_PACE_SHARE,
) -> subprocess.Popen:
    """`natsbank archive run --every S --pace P` against `url`, its output in
    log_dir/archiver.log."""
    command = [sys.executable, "-m", "eventsource.cli", *ARCHIVE_COMMAND]
    environment = {**os.environ, **(env or {}), "NATS_URL": url}
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "archiver.log", "ab") as log:
        return subprocess.Popen(
            [*command, "--every", f"{every_s:g}", "--pace", f"{pace:g}"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
