"""How many lines of code each store's transfer path needs, counted from the modules
themselves: code lines only (no blank lines, comments or docstrings). A module that both stores
run is counted once, as common; JetStream mode is counted (core mode's replay is not)."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import eventsource

GIVE_UP = (
    "core/saga.py",  # give-up and CANCEL steps
    "core/deadlines.py",  # when to give up
    "services/give_up.py",  # the give-up clock of each instance
    "services/record_sweep.py",  # reading siblings' records for their deadlines
)
ONLY_INDEPENDENT = (
    "core/protocol.py",  # the per-side transition table
    "core/steps.py",  # the four steps: reserve, decide, settle, confirm
    "core/workset.py",  # group commit with an outbox
    "services/participant.py",  # the service: fetch, commit, ack, for four kinds
    "services/groups.py",  # loading and deciding a group
    "services/service_stats.py",
    *GIVE_UP,
)
ONLY_SHARED = (
    "core/shared_store.py",  # layout, record events, direct debit and credit
    "core/shared_decision.py",  # the one step
    "services/shared_service.py",  # the service: fetch, decide, commit, ack
)
COMMON = (
    "core/account.py",
    "core/money.py",
    "core/model.py",
    "core/errors.py",
    "core/events.py",
    "core/messages.py",
    "core/dispatch.py",
    "core/subjects.py",
    "adapters/jetstream.py",
    "adapters/ledger_state.py",
    "services/client.py",
)
AUDIT = {
    "independent": (
        "services/audit.py",
        "services/audit_kv.py",
        "core/compact_fold.py",
        "core/fold.py",
    ),
    "shared": ("services/audit_shared.py", "core/shared_fold.py"),
}
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
_SKIP |= {tokenize.ENCODING, tokenize.ENDMARKER}


def code_lines(source: str) -> int:
    """Lines that carry a token of code, docstrings excluded."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings |= set(range(body[0].lineno, (body[0].end_lineno or 0) + 1))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _SKIP:
            lines |= set(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def _count(modules: tuple[str, ...]) -> dict[str, int]:
    root = Path(eventsource.__file__).parent
    return {m: code_lines((root / m).read_text()) for m in modules if (root / m).exists()}


def protocol_lines() -> dict:
    """Per store: its own modules, the common ones, and the audit, with totals."""
    common = _count(COMMON)
    report: dict = {"common": {"modules": common, "total": sum(common.values())}}
    for store, own in (("independent", ONLY_INDEPENDENT), ("shared", ONLY_SHARED)):
        mine, audit = _count(own), _count(AUDIT[store])
        report[store] = {
            "modules": mine,
            "own": sum(mine.values()),
            "of_which_give_up": sum(v for m, v in mine.items() if m in GIVE_UP),
            "with_common": sum(mine.values()) + sum(common.values()),
            "audit_modules": audit,
            "audit": sum(audit.values()),
        }
    return report
