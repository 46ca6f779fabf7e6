"""`natsbank submit`: one transfer, an NDJSON file, or a random load."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import msgspec
import typer
from rich.progress import Progress
from ulid import ULID

from benchmark.load import push
from benchmark.workload import Bank, random_transfers
from eventsource.adapters.access import resolve_access
from eventsource.bootstrap import open_ledger
from eventsource.cli import edge
from eventsource.cli.common import (
    console,
    nats_connection,
    on_ledger,
    print_json,
    run,
    settings,
)
from eventsource.cli.options import (
    attempts_option,
    deadline_option,
    parse_duration,
    seconds_option,
    store_option,
    with_limits,
)
from eventsource.cli.render import describe, state_json
from eventsource.core.errors import UsageError
from eventsource.core.model import AccountRef, TransferRequest
from eventsource.core.permissions import Identity, Role
from eventsource.services.ledger import Ledger
from eventsource.services.submission import (
    LineResult,
    SubmitReport,
    Verdict,
    line_results,
    precheck,
    repeated_lines,
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
    transfer_id: str | None = typer.Option(
        None,
        "--id",
        help="Idempotency key (default: a new ULID).",
        callback=edge.checked(edge.transfer_id, "--id"),
    ),
    comment: str = typer.Option("", "--comment"),
    file: Path | None = typer.Option(None, "--file", help="NDJSON file, one transfer per line."),
    random_count: int | None = typer.Option(
        None,
        "--random",
        help="Submit N random transfers.",
        callback=edge.checked(edge.transfers, "--random"),
    ),
    rate: float | None = typer.Option(
        None,
        "--rate",
        help="Transfers per second for --random.",
        callback=edge.checked(edge.rate, "--rate"),
    ),
    seed: int = typer.Option(1, "--seed", help="Seed for --random."),
    deadline: str | None = deadline_option(),
    max_attempts: int | None = attempts_option(),
    wait: bool = typer.Option(False, "--wait", help="Wait for the final outcome."),
    timeout: float | None = seconds_option(
        None, "--timeout", "Seconds to wait with --wait (default 60, or the deadline + 30)."
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
    if rate is not None and random_count is None:
        raise UsageError("--rate goes with --random")
    if timeout is None:
        timeout = max(60.0, parse_duration(deadline) / 1000 + 30) if deadline else 60.0
    if random_count is not None:
        # Random transfers between every bank's accounts, each bank's submitted through its own
        # client credential (a client submits for its own bank only).
        run(
            functools.partial(
                _random, config, count=random_count, rate=rate, seed=seed, as_json=as_json
            )
        )
        return
    lines = (
        _read_file(file)
        if file
        else [(0, _one(debtor, creditor, amount, currency, transfer_id, comment))]
    )
    requests, repeats = _checked(lines, file, deadline, max_attempts)
    distinct = [r for r, repeat in zip(requests, repeats, strict=True) if repeat is None]

    async def submit(ledger: Ledger) -> SubmitReport:
        if limited and not ledger.gives_up:
            raise UsageError(
                f"--deadline and --max-attempts: the {ledger.store} store "
                "never gives up (a transfer is applied in one step)"
            )
        return await submit_transfers(ledger, distinct, wait=wait, timeout=timeout)

    # The debtor's bank submits with its client credential, which submits for that bank only.
    client = Identity(Role.CLIENT, requests[0].debtor.participant)
    _one_bank_per_client(config, client, requests)
    results = line_results(requests, repeats, on_ledger(config, client, submit), wait)
    _report(results, [number for number, _ in lines], wait, as_json)


def _one_bank_per_client(config, client: Identity, requests: list[TransferRequest]) -> None:
    """A client credential submits for its own bank only: a file with several debtor banks is
    refused before anything is published (without authorization it goes as it always did)."""
    banks = sorted({r.debtor.participant for r in requests})
    if len(banks) > 1 and not resolve_access(config, client)[1].anonymous:
        shown = ", ".join(banks[:3]) + (", ..." if len(banks) > 3 else "")
        raise UsageError(
            f"a bank's client submits for its own bank only: the transfers' debtors are at "
            f"{len(banks)} banks ({shown}); submit one file per bank"
        )


def _checked(
    lines: list[tuple[int, TransferRequest]], file: Path | None, deadline, attempts
) -> tuple[list[TransferRequest], list[int | None]]:
    """The requests with the command line's limits, each checked before anything is published,
    and for each the index of an earlier line that it repeats."""
    requests = with_limits([request for _, request in lines], deadline, attempts)
    where = [f"{file}:{number}" if file else "" for number, _ in lines]
    for request, at in zip(requests, where, strict=True):
        precheck(request, at)
    return requests, repeated_lines(requests, where)


def _one(debtor, creditor, amount, currency, transfer_id, comment) -> TransferRequest:
    if creditor is None or amount is None:
        raise UsageError("--from needs --to and --amount")
    return TransferRequest(
        id=str(ULID()) if transfer_id is None else transfer_id,
        debtor=_ref(debtor, "--from"),
        creditor=_ref(creditor, "--to"),
        amount=amount,
        currency=currency,
        comment=comment,
    )


def _ref(text: str, flag: str) -> AccountRef:
    participant, slash, account = text.partition("/")
    if not slash or not participant or not account:
        raise UsageError(f"{flag} must look like PARTICIPANT/ACCOUNT, got {text!r:.80}")
    return AccountRef(edge.participant(participant, flag), edge.account(account, flag))


def _read_file(path: Path) -> list[tuple[int, TransferRequest]]:
    """(line number, request) of each non-blank line."""
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
            requests.append((number, msgspec.json.decode(line, type=TransferRequest)))
        except msgspec.DecodeError as exc:
            raise UsageError(f"{path}:{number}: {exc}") from None
    if not requests:
        raise UsageError(f"{path}: no transfers")
    return requests


def _report(results: list[LineResult], numbers: list[int], wait: bool, as_json: bool) -> None:
    """Each line's verdict, the same in text and JSON; exit 1 with --wait unless all are OK."""
    if as_json:
        rows = [_row(result, numbers) for result in results]
        print_json(rows if len(rows) != 1 else rows[0])
    else:
        for result in results:
            console.print(_text(result, numbers), highlight=False, soft_wrap=True)
    if wait and any(result.verdict is not Verdict.OK for result in results):
        raise typer.Exit(1)


def _row(result: LineResult, numbers: list[int]) -> dict:
    row: dict = {"id": result.request.id, "ack": result.ack.sequence}
    if result.ack.traceparent:
        row["traceparent"] = result.ack.traceparent
    if result.repeats is not None:
        row["repeats_line"] = numbers[result.repeats]
    match result.verdict:
        case Verdict.ACKED:
            pass
        case Verdict.NO_OUTCOME:
            row |= {"outcome": None, "phase": "TIMEOUT"}
        case Verdict.ID_CONFLICT:  # refused: the outcome of the id is another content's
            row |= {"outcome": "REJECTED", "cause": "ID_CONFLICT", "detail": _CONFLICT}
        case _:
            row |= state_json(result.state)
    if result.position is not None:
        row["stream"], row["position"] = result.position
    return row


_CONFLICT = "the id is already used with other content: this line was refused, never applied"


def _text(result: LineResult, numbers: list[int]) -> str:
    line = f"ACK {result.request.id} (stream sequence {result.ack.sequence})"
    match result.verdict:
        case Verdict.ACKED:
            pass
        case Verdict.NO_OUTCOME:
            line += " no outcome yet (timeout)"
        case Verdict.ID_CONFLICT:
            line += f" REJECTED cause ID_CONFLICT: {_CONFLICT} (the id holds "
            line += f"{result.state.transfer.amount} {result.state.transfer.currency}, "
            line += f"{describe(result.state)})"
        case _:
            line += " " + describe(result.state)
    if result.position is not None:
        line += f", final at {result.position[0]} position {result.position[1]}"
    if result.repeats is not None:
        line += f" (repeats line {numbers[result.repeats]}: one transfer)"
    return line


async def _random(config, *, count: int, rate: float | None, seed: int, as_json: bool):
    async with contextlib.AsyncExitStack() as stack:
        reader = await stack.enter_async_context(nats_connection(config, Identity(Role.AUDIT)))
        banks: dict[str, list[str]] = {}
        for snapshot in await (await open_ledger(reader, config.store)).accounts():
            if not snapshot.closed:
                banks.setdefault(snapshot.participant, []).append(snapshot.account)
        if len(banks) < 1:
            raise UsageError("no open accounts: open some with `natsbank accounts open`")
        ledgers: dict[str, Ledger] = {}
        for bank in banks:
            client = Identity(Role.CLIENT, bank)
            nc = await stack.enter_async_context(nats_connection(config, client))
            ledgers[bank] = await open_ledger(nc, config.store)

        async def submit(submitter: str, requests: list[TransferRequest]):
            return await ledgers[submitter].submit(submitter, requests)

        await _push_random(submit, banks, count=count, rate=rate, seed=seed, as_json=as_json)


async def _push_random(submit, banks: dict[str, list[str]], *, count, rate, seed, as_json) -> None:
    work = random_transfers([Bank(p, a) for p, a in sorted(banks.items())], count, seed=seed)
    with Progress(console=console, disable=as_json) as progress:
        task = progress.add_task("submitting", total=count)
        report = await push(submit, work, rate=rate, progress=lambda n: progress.advance(task, n))
    summary = {
        "submitted": report.submitted,
        "acked": report.acked,
        "messages": report.messages,
        "seconds": round(report.last_ack - report.first_ack, 3),
    }
    print_json(summary) if as_json else console.print(summary)
