"""W3C trace context (traceparent) for transfers: one trace per submission, a new span per hop.

A protocol message carries up to 200 transfers, so one NATS header cannot describe them all.
Each Posting, Result and Confirm item therefore carries its own optional `trace`; the
`traceparent` header is set only on a message that carries exactly one traced item. Pure: the
span ids of a hop derive from the commit's token, so a decision stays a function of its inputs.
"""

from __future__ import annotations

import hashlib
import re
import secrets

import msgspec

HEADER = "traceparent"
_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def parse(value: object) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid version-00 traceparent, else None."""
    if not isinstance(value, str):
        return None
    match = _FORMAT.match(value.strip().lower())
    if match is None or match.group(1) == _ZERO_TRACE or match.group(2) == _ZERO_SPAN:
        return None
    return match.group(1), match.group(2), match.group(3)


def new_traceparent() -> str:
    """A fresh, sampled trace context: what a client puts on its submission."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id(value: object) -> str | None:
    parsed = parse(value)
    return parsed[0] if parsed else None


def child(parent: str, seed: str) -> str | None:
    """The same trace, a new span id derived from `seed` (unique per hop)."""
    parsed = parse(parent)
    if parsed is None:
        return None
    span = hashlib.blake2b(f"{parsed[1]}:{seed}".encode(), digest_size=8).hexdigest()
    return f"00-{parsed[0]}-{span if span != _ZERO_SPAN else '1' * 16}-{parsed[2]}"


def item_id(item: object) -> str | None:
    """The transfer id an inbox item concerns (a request, posting, result or confirm)."""
    transfer = getattr(item, "transfer", None)  # UNSET on a Confirm other than a CANCEL
    has_transfer = transfer is not None and transfer is not msgspec.UNSET
    found = getattr(transfer, "id", None) if has_transfer else getattr(item, "id", None)
    return found if isinstance(found, str) else None


def item_trace(item: object) -> str | None:
    value = getattr(item, "trace", msgspec.UNSET)
    return value if parse(value) else None


def traces_of(items: list, header: object) -> dict[str, str]:
    """Transfer id -> the trace context it arrived with: the item's own `trace`, else the
    message's `traceparent` header (a submission's header covers all its transfers)."""
    found: dict[str, str] = {}
    fallback = header if parse(header) else None
    for item in items:
        tid, context = item_id(item), item_trace(item) or fallback
        if tid is not None and context is not None:
            found[tid] = context
    return found


def headers_for(items: list) -> dict[str, str] | None:
    """NATS headers for an outgoing protocol message: `traceparent` only when the message
    carries exactly one transfer and it is traced (for more, the items' `trace` fields)."""
    if len(items) == 1 and (context := item_trace(items[0])) is not None:
        return {HEADER: context}
    return None
