"""Options that several commands share, each defined once: `--store`, the `--remote-*` options
of a proxy participant (`serve`, `remote-bank`, `bench`), and the give-up limits of `submit`
(`--deadline`, `--max-attempts`, DESIGN.md section 5). The deadline is a duration counted from
the submitter's admission, so submitting the same transfer again carries the same limits and is
a duplicate, not an id conflict."""

from __future__ import annotations

import math
import re
from typing import Annotated

import msgspec
import typer

from eventsource.cli import edge
from eventsource.core.errors import UsageError
from eventsource.core.limits import REMOTE_TIMEOUT_MS
from eventsource.core.model import MAX_ATTEMPTS, MAX_DEADLINE_MS, TransferRequest
from eventsource.core.remote import RemoteMode, RemotePlan, parse_delay


def store_option():
    return typer.Option(
        None,
        "--store",
        help="independent (default): each participant's own ledger and the three-phase "
        "protocol; shared: all accounts in one stream, one atomic step per transfer "
        "(env NATSBANK_STORE).",
    )


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, None: 1000}


def parse_duration(text: str) -> int:
    """`30s`, `500ms`, `2m`, `1h` or plain seconds (`1.5`) -> milliseconds."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise UsageError(f"--deadline: {text!r} is not a duration like 30s, 500ms, 2m or 1h")
    ms = math.ceil(float(found[1]) * _UNIT_MS[found[2]])
    if not 1 <= ms <= MAX_DEADLINE_MS:
        raise UsageError(f"--deadline must be between 1ms and {MAX_DEADLINE_MS // 3_600_000}h")
    return ms


def deadline_option():
    return typer.Option(
        None,
        "--deadline",
        help="Give up (outcome CANCELLED) if no outcome within this long after the "
        "submitter's bank accepted it, e.g. 30s, 500ms, 2m.",
    )


def attempts_option():
    return typer.Option(
        None,
        "--max-attempts",
        min=1,
        max=MAX_ATTEMPTS,
        help="Give up after this many attempts to reach the receiver (see README: Giving up).",
    )


def with_limits(
    requests: list[TransferRequest], deadline: str | None, attempts: int | None
) -> list[TransferRequest]:
    """The limits given on the command line, for each request that does not set its own."""
    if deadline is None and attempts is None:
        return requests
    deadline_ms = parse_duration(deadline) if deadline is not None else msgspec.UNSET
    limited = []
    for request in requests:
        if request.deadline_ms is msgspec.UNSET and deadline_ms is not msgspec.UNSET:
            request = msgspec.structs.replace(request, deadline_ms=deadline_ms)
        if request.max_attempts is msgspec.UNSET and attempts is not None:
            request = msgspec.structs.replace(request, max_attempts=attempts)
        limited.append(request)
    return limited


# Names, ids and waits that several commands take, checked at the edge (cli/edge.py).
ParticipantArg = Annotated[
    str, typer.Argument(callback=edge.checked(edge.participant, "PARTICIPANT"))
]
AccountArg = Annotated[str, typer.Argument(callback=edge.checked(edge.account, "ACCOUNT"))]
TransferIdArg = Annotated[str, typer.Argument(callback=edge.checked(edge.transfer_id, "ID"))]


def participant_option(help: str | None = None, *, default: tuple[()] | None = None):
    """`--participant`/`-p`: a participant name, not given, or (with a list default) several."""
    check = edge.checked(edge.participant, "--participant")
    return typer.Option(default, "--participant", "-p", help=help, callback=check)


def seconds_option(default: float | None, flag: str, help: str):
    """A wait in seconds: 0 up to WAIT_MAX_S (core/limits.py), never negative or NaN."""
    return typer.Option(default, flag, help=help, callback=edge.checked(edge.seconds, flag))


# A participant as a proxy to a remote bank (core/remote.py): `serve`, `remote-bank`, `bench`.
def remote_delay_option():
    return typer.Option(
        "0",
        "--remote-delay",
        help="The remote bank answers after this many ms: 50, or a uniform range 20-80.",
    )


def remote_loss_option():
    return typer.Option(
        0.0, "--remote-loss", help="Share of the remote bank's answers lost (below 1)."
    )


def remote_duplicate_option():
    return typer.Option(
        0.0, "--remote-duplicate", help="Share of the remote bank's answers sent twice."
    )


def remote_reject_option():
    return typer.Option(
        0.0,
        "--remote-reject",
        help="Share of credits the simulated remote bank declines (REMOTE_REJECTED), drawn "
        "from the transfer id.",
    )


def remote_timeout_option():
    return typer.Option(
        REMOTE_TIMEOUT_MS, "--remote-timeout", help="Ms an ask waits before it is asked again."
    )


def remote_decide_after_option():
    return typer.Option(
        0.0,
        "--remote-decide-after",
        help="Ms after which the proxy declines a credit itself (REMOTE_TIMEOUT) and tells the "
        "remote bank; 0 (default): it waits for the remote bank's answer, however long.",
    )


def remote_plan(mode: str, delay: str, loss: float, duplicate: float, reject: float, **more):
    """The RemotePlan of the command line; a bad value raises ConfigError (exit 2)."""
    try:
        chosen = RemoteMode(mode)
    except ValueError:
        modes = ", ".join(m.value for m in RemoteMode)
        raise UsageError(f"--remote-bank takes {modes}, not {mode!r:.40}") from None
    low, high = parse_delay(delay)
    return RemotePlan(
        mode=chosen,
        delay_ms_min=low,
        delay_ms_max=high,
        loss=loss,
        duplicate=duplicate,
        reject=reject,
        **more,
    )


def require_simulated_if_faulty(plan: RemotePlan) -> None:
    """Answers delayed, lost, duplicated or declined are what a simulated remote bank does."""
    if plan.faulty and plan.mode is not RemoteMode.SIMULATED:
        raise UsageError("--remote-delay, -loss, -duplicate, -reject need --remote-bank simulated")
