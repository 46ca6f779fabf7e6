"""How commands show transfers, accounts and audits: one module, so that every command that
shows a thing shows it the same way."""

from __future__ import annotations

import msgspec
from rich.table import Table

from eventsource.cli.common import console
from eventsource.core.events import AccountSnapshot, TransferState
from eventsource.core.model import Outcome
from eventsource.services.audit_report import INVARIANTS, AuditReport


def describe(state: TransferState) -> str:
    text = f"{state.outcome or 'pending'} ({state.side} phase {state.phase})"
    if state.cause:
        text += f" cause {state.cause}: {state.detail}"
    elif state.outcome is Outcome.CANCELLED:  # "gave up: DEADLINE_PASSED", or p's side of it
        text += f" {state.detail}"
    return text


def state_json(state: TransferState) -> dict:
    return {
        "outcome": state.outcome,
        "phase": state.phase,
        "side": state.side,
        "cause": state.cause,
        "detail": state.detail,
        "amount": state.transfer.amount,
        "currency": state.transfer.currency,
        "debtor": f"{state.transfer.debtor.participant}/{state.transfer.debtor.account}",
        "creditor": f"{state.transfer.creditor.participant}/{state.transfer.creditor.account}",
    } | limits_json(state)


def limits_json(state: TransferState) -> dict:
    """The give-up limits the transfer carries, when it carries any."""
    limits = {
        "deadline_ms": state.transfer.deadline_ms,
        "max_attempts": state.transfer.max_attempts,
    }
    return {name: value for name, value in limits.items() if value is not msgspec.UNSET}


def account_line(snapshot: AccountSnapshot) -> str:
    return (
        f"{snapshot.participant}/{snapshot.account} {snapshot.currency} "
        f"balance {snapshot.balance} pending debits {snapshot.pending_debits} "
        f"pending credits {snapshot.pending_credits}" + (" (closed)" if snapshot.closed else "")
    )


def print_audit(report: AuditReport) -> None:
    store = "" if report.store == "independent" else f" ({report.store} store)"
    table = Table(
        title=f"audit{store}: {report.events} events, {report.accounts} accounts, "
        f"{report.transfers_acked} ACKed transfers"
    )
    table.add_column("invariant")
    table.add_column("result")
    for name in INVARIANTS:
        problems = report.violations.get(name, [])
        if name == "I6" and report.projection is None:
            table.add_row(name, "[dim]not checked (give --dsn or --sqlite)[/]")
            continue
        table.add_row(
            name,
            "[green]ok[/]"
            if not problems
            else f"[red]{len(problems)} violation(s)[/]: {problems[0]}",
        )
    console.print(table)
    console.print(
        f"final {report.final}, in flight {report.in_flight}, "
        f"outcomes {dict(report.outcomes)}, funded {report.funded}, "
        f"balances {report.balances}",
        highlight=False,
    )
    if report.signatures:
        console.print(
            f"signatures: {report.signatures.get('verified', 0)} protocol messages verified, "
            f"{report.signatures.get('refused', 0)} refused (dead-lettered by their recipients)"
            + "".join(f"\n  {problem}" for problem in report.signature_problems),
            highlight=False,
        )
