"""`natsbank dead-letters list|show|retry`: read the dead-letter stream, republish one letter."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import msgspec
import typer

from eventsource.cli.common import console, nats_connection, on_nats, print_json, run, settings
from eventsource.cli.options import participant_option
from eventsource.core.dead_letter_records import ITEM, DeadLetter, LetterFilter
from eventsource.core.errors import UsageError
from eventsource.core.permissions import Identity, Role
from eventsource.services import dead_letters as service

app = typer.Typer(
    help="Poison messages and items the services refused: list, show, retry.",
    no_args_is_help=True,
)

LIMIT_DEFAULT = 100
LIMIT_MAX = 10_000
LIST_DETAIL_CHARS_MAX = 120
SHOW_PAYLOAD_CHARS_MAX = 4000
SEQUENCE_DIGITS_MAX = 19  # a stream sequence is a uint64
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_REASON = re.compile(r"[A-Za-z0-9_]{1,64}")


DEAD_LETTERS = Identity(Role.DEAD_LETTERS)


@app.command("list")
def list_(
    reason: str | None = typer.Option(None, "--reason", help="e.g. UNDECODABLE, ID_CONFLICT."),
    participant: str | None = participant_option("Whose service refused it."),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Stored since: a duration back from now (90s, 30m, 1h, 2d) or a timestamp "
        "(2026-11-29T20:00:00Z; UTC when it has no zone).",
    ),
    limit: int = typer.Option(
        LIMIT_DEFAULT, "--limit", help=f"Show the newest this many (1 to {LIMIT_MAX})."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Dead letters, oldest first: why, whose, what arrived, where from, retried or not."""
    if not 1 <= limit <= LIMIT_MAX:
        raise UsageError(f"--limit must be between 1 and {LIMIT_MAX}")
    wanted = LetterFilter(reason=_reason(reason), participant=participant, since_ms=_since(since))
    config = settings()

    async def main():
        async with nats_connection(config, DEAD_LETTERS) as nc:
            return await service.list_dead_letters(nc, wanted, limit)

    listing = run(main)
    if as_json:
        print_json({"matched": listing.matched, "letters": [_json(x) for x in listing.letters]})
        return
    for letter in listing.letters:
        _say(_line(letter))
    shown = len(listing.letters)
    if shown < listing.matched:
        _say(f"the newest {shown} of {listing.matched} dead letters (--limit)")
    else:
        _say(f"{shown} dead letter{'' if shown == 1 else 's'}")


@app.command("show")
def show(
    seq: str = typer.Argument(..., help="The letter's sequence in DEADLETTER."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One dead letter in full: its reason, where it came from, and its payload."""
    number = _sequence(seq)
    config = settings()

    shown = on_nats(config, DEAD_LETTERS, lambda nc: service.show_dead_letter(nc, number))
    letter, payload = shown.letter, shown.payload
    if as_json:
        text = payload.decode(errors="replace")
        print_json(_json(letter) | {"payload": _as_json(payload), "payload_text": text})
        return
    what = "one item of the message" if letter.payload_kind == ITEM else "the whole message"
    _say(f"dead letter {letter.seq} of {letter.participant}, stored {_time(letter.at_ms)}")
    _say(f"  reason:  {letter.reason}")
    _say(f"  detail:  {letter.detail}")
    _say(f"  arrived: {what} ({letter.size} bytes) on {letter.source_subject}")
    _say(f"  source:  {letter.source}")
    _say(f"  retried: {_retried(letter) or 'no'}")
    _say("  payload:")
    body = _pretty(payload)
    if len(body) > SHOW_PAYLOAD_CHARS_MAX:
        body = body[:SHOW_PAYLOAD_CHARS_MAX] + f"\n… ({len(body)} characters; --json has all)"
    _say("\n".join("    " + line for line in body.splitlines() or [""]))


@app.command("retry")
def retry(
    seq: str = typer.Argument(..., help="The letter's sequence in DEADLETTER."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Republish a letter onto its inbox once its cause is fixed; never more than once."""
    number = _sequence(seq)
    config = settings()

    done = on_nats(config, DEAD_LETTERS, lambda nc: service.retry_dead_letter(nc, number))
    if as_json:
        print_json(
            {
                "dead_letter": number,
                "republished": done.republished,
                "stream": done.stream,
                "seq": done.seq,
                "subject": done.subject,
            }
        )
    elif done.republished:
        _say(
            f"dead letter {number} republished onto {done.subject} as {done.stream}:{done.seq}; "
            f"{done.letter.participant} decides it again"
        )
    else:
        _say(
            f"dead letter {number} was already republished as {done.stream}:{done.seq}: "
            "nothing sent"
        )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="dead-letters")


def _sequence(text: str) -> int:
    if not text.isdigit() or int(text) < 1 or len(text) > SEQUENCE_DIGITS_MAX:
        raise UsageError(f"SEQ: {text!r:.80} is not a stream sequence (1, 2, 3…)")
    return int(text)


def _reason(text: str | None) -> str | None:
    if text is None:
        return None
    if not _REASON.fullmatch(text):
        raise UsageError(f"--reason: {text!r:.80} is not a reason like UNDECODABLE")
    return text.upper()


def _since(text: str | None) -> int | None:
    """Unix ms from `1h` (back from now) or an ISO 8601 timestamp."""
    if text is None:
        return None
    found = _DURATION.fullmatch(text.strip())
    if found is not None:
        return int(time.time() * 1000 - float(found[1]) * _UNIT_MS[found[2]])
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since: {text!r:.80} is neither a duration like 30m, 1h or 2d nor a timestamp "
            "like 2026-11-29T20:00:00Z"
        ) from None
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)


def _json(letter: DeadLetter) -> dict:
    return msgspec.to_builtins(letter) | {"time": _time(letter.at_ms)}


def _line(letter: DeadLetter) -> str:
    detail = letter.detail
    if len(detail) > LIST_DETAIL_CHARS_MAX:
        detail = detail[:LIST_DETAIL_CHARS_MAX] + "…"
    retried = _retried(letter)
    return (
        f"{letter.seq:>6} {_time(letter.at_ms)} {letter.participant} {letter.reason} "
        f"{letter.payload_kind or 'payload'} from {letter.source} ({letter.source_subject}): "
        f"{detail}" + (f" [retried: {retried}]" if retried else "")
    )


def _retried(letter: DeadLetter) -> str | None:
    r = letter.retried
    return None if r is None else f"as {r.stream}:{r.seq} at {_time(r.at_ms)}"


def _time(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_json(payload: bytes) -> object:
    try:
        return json.loads(payload)
    except ValueError:
        return None


def _pretty(payload: bytes) -> str:
    value = _as_json(payload)
    if value is None:
        return payload.decode(errors="replace")
    return json.dumps(value, indent=2, ensure_ascii=False)


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False, soft_wrap=True)
