"""`natsbank submit`: one transfer, an NDJSON file, or a random load."""

from __future__ import annotations

from pathlib import Path

import msgspec
import typer
from rich.progress import Progress
from ulid import ULID

from benchmark.load import push
from benchmark.workload import Bank, random_transfers
from eventsource.cli.common import console, on_ledger, print_json, settings
from eventsource.cli.options import (
    attempts_option,
    deadline_option,
    parse_duration,
    store_option,
    with_limits,
)
from eventsource.cli.render import describe, state_json
from eventsource.core.errors import UsageError
from eventsource.core.model import AccountRef, Outcome, TransferRequest
from eventsource.services.ledger import Ledger
from eventsource.services.submission import (
    SubmitReport,
    digest_of,
    precheck,
    submit_transfers,
)

MAX_LINE = 64 * 1024


def register(app: typer.Typer) -> None:
    app.command("submit")(submit_command)


def submit_command(
    debtor: str | None = typer.Option(None, "--from", help="Debtor as PARTICIPANT/ACCOUNT."),
    creditor: str | None = typer.Option(None, "--to", help="Creditor as PARTICIPANT/ACCOUNT."),
    amount: str | None = typer.Option(None, "--amount", help="Decimal string, e.g. 10.50."),
    currency: str = typer.Option("EUR", "--currency"),
    transfer_id: str | None = typer.Option(None, "--id", help="Idempotency key (default: ULID)."),
    comment: str = typer.Option("", "--comment"),
    file: Path | None = typer.Option(None, "--file", help="NDJSON file, one transfer per line."),
    random_count: int | None = typer.Option(None, "--random", help="Submit N random transfers."),
    rate: float | None = typer.Option(None, "--rate", help="Transfers per second for --random."),
    seed: int = typer.Option(1, "--seed", help="Seed for --random."),
    deadline: str | None = deadline_option(),
    max_attempts: int | None = attempts_option(),
    wait: bool = typer.Option(False, "--wait", help="Wait for the final outcome."),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Seconds to wait with --wait (default 60, or the deadline + 30)."
    ),
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """Submit transfers. The ACK means durably accepted; --wait also waits for the outcome:
    OK, REJECTED or, with --deadline/--max-attempts, CANCELLED (exit 1 unless OK)."""
    modes = sum(x is not None for x in (file, random_count)) + (debtor is not None)
    if modes != 1:
        raise UsageError("give exactly one of --from/--to/--amount, --file or --random")
    config = settings(store=store)
    limited = deadline is not None or max_attempts is not None
    if limited and random_count is not None:
        raise UsageError("--deadline and --max-attempts go with one transfer or --file")
    if timeout is None:
        timeout = max(60.0, parse_duration(deadline) / 1000 + 30) if deadline else 60.0
    if random_count is not None:
        on_ledger(config, lambda ledger: _random(ledger, random_count, rate, seed, as_json))
        return
    requests = with_limits(
        _read_file(file)
        if file
        else [_one(debtor, creditor, amount, currency, transfer_id, comment)],
        deadline,
        max_attempts,
    )
    for request in requests:
        precheck(request)

    async def submit(ledger: Ledger) -> SubmitReport:
        if limited and not ledger.gives_up:
            raise UsageError(
                f"--deadline and --max-attempts: the {ledger.store} store "
                "never gives up (a transfer is applied in one step)"
            )
        return await submit_transfers(ledger, requests, wait=wait, timeout=timeout)

    _report(requests, on_ledger(config, submit), wait, as_json)


def _one(debtor, creditor, amount, currency, transfer_id, comment) -> TransferRequest:
    if creditor is None or amount is None:
        raise UsageError("--from needs --to and --amount")
    return TransferRequest(
        id=transfer_id or str(ULID()),
        debtor=_ref(debtor, "--from"),
        creditor=_ref(creditor, "--to"),
        amount=amount,
        currency=currency,
        comment=comment,
    )


def _ref(text: str, flag: str) -> AccountRef:
    participant, slash, account = text.partition("/")
    if not slash or not participant or not account:
        raise UsageError(f"{flag} must look like PARTICIPANT/ACCOUNT, got {text!r}")
    return AccountRef(participant, account)


def _read_file(path: Path) -> list[TransferRequest]:
    requests = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            raise UsageError(f"{path}:{number}: line is longer than {MAX_LINE} bytes")
        try:
            requests.append(msgspec.json.decode(line, type=TransferRequest))
        except msgspec.DecodeError as exc:
            raise UsageError(f"{path}:{number}: {exc}") from None
    if not requests:
        raise UsageError(f"{path}: no transfers")
    return requests


def _report(requests, report: SubmitReport, wait: bool, as_json: bool) -> None:
    acks, outcomes, positions = report.acks, report.outcomes, report.positions
    rejected = False
    rows = []
    seq_of = {i: a.sequence for a in acks for i in a.ids}
    trace_of = {i: a.traceparent for a in acks for i in a.ids}
    for request in requests:
        state = outcomes.get(request.id)
        if wait and state is not None and state.digest != digest_of(request):
            rows.append(
                {
                    "id": request.id,
                    "ack": seq_of[request.id],
                    "outcome": "REJECTED",
                    "cause": "ID_CONFLICT",
                }
            )
            rejected = True
            continue
        row = {"id": request.id, "ack": seq_of[request.id]}
        if trace_of.get(request.id):
            row["traceparent"] = trace_of[request.id]
        if wait:
            row |= state_json(state) if state else {"outcome": None, "phase": "TIMEOUT"}
            if request.id in positions:
                row["stream"], row["position"] = positions[request.id]
            rejected |= state is None or state.outcome is not Outcome.OK
        rows.append(row)
    if as_json:
        print_json(rows if len(rows) != 1 else rows[0])
    else:
        for row, request in zip(rows, requests, strict=True):
            line = f"ACK {request.id} (stream sequence {row['ack']})"
            if wait:
                state = outcomes.get(request.id)
                line += " " + (describe(state) if state else "no outcome yet (timeout)")
                if "position" in row:
                    line += f", final at {row['stream']} position {row['position']}"
            console.print(line, highlight=False)
    if wait and rejected:
        raise typer.Exit(1)


async def _random(ledger: Ledger, count: int, rate: float | None, seed: int, as_json: bool):
    banks: dict[str, list[str]] = {}
    for snapshot in await ledger.accounts():
        if not snapshot.closed:
            banks.setdefault(snapshot.participant, []).append(snapshot.account)
    if len(banks) < 1:
        raise UsageError("no open accounts: open some with `natsbank accounts open`")
    work = random_transfers([Bank(p, a) for p, a in sorted(banks.items())], count, seed=seed)
    with Progress(console=console, disable=as_json) as progress:
        task = progress.add_task("submitting", total=count)
        report = await push(
            ledger.submit, work, rate=rate, progress=lambda n: progress.advance(task, n)
        )
    summary = {
        "submitted": report.submitted,
        "acked": report.acked,
        "messages": report.messages,
        "seconds": round(report.last_ack - report.first_ack, 3),
    }
    print_json(summary) if as_json else console.print(summary)
