"""How many lines of code each store's transfer path needs, counted from the modules
themselves: code lines only (no blank lines, comments or docstrings). A module that both stores
run is counted once, as common; JetStream mode is counted (core mode's resend clock is not)."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import eventsource

GIVE_UP = (
    "core/saga.py",  # give-up and CANCEL steps
    "core/deadlines.py",  # when to give up
    "services/independent/give_up.py",  # the give-up clock of each instance
    "services/independent/record_sweep.py",  # reading siblings' records for their deadlines
)
ONLY_INDEPENDENT = (
    "core/protocol.py",  # the per-side transition table
    "core/steps.py",  # the four steps: reserve, decide, settle, confirm
    "core/workset.py",  # group commit with an outbox
    "services/independent/decider.py",  # decoding any kind, loading and deciding a group
    "services/independent/ledger.py",  # the client side: submit, read, wait, audit
    *GIVE_UP,
)
ONLY_SHARED = (
    "core/shared/layout.py",  # layout, record events, direct debit and credit
    "core/shared/decision.py",  # the one step
    "services/shared/decider.py",  # decoding submissions, loading and deciding a group
    "services/shared/client.py",  # reading a record, waiting for it
    "services/shared/ledger.py",  # the client side
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
    "core/limits.py",
    "adapters/jetstream.py",
    "adapters/batch_commit.py",
    "adapters/state_reader.py",
    "services/engine.py",  # the one group-commit engine
    "services/participant.py",  # an instance: consumers into the engine
    "services/stats.py",
    "services/transport/stream_outbox.py",  # JetStream mode's carrier
    "services/client.py",
    "services/ledger.py",
    "bootstrap.py",
)
AUDIT = {
    "independent": (
        "services/audit.py",
        "services/audit_kv.py",
        "core/compact_fold.py",
        "core/fold.py",
    ),
    "shared": ("services/shared/audit.py", "core/shared/fold.py"),
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
    missing = [m for m in modules if not (root / m).is_file()]
    if missing:  # a renamed module must be renamed here too, not silently left out
        raise FileNotFoundError(f"protocol_lines names modules that do not exist: {missing}")
    return {m: code_lines((root / m).read_text()) for m in modules}


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
