"""What kind of message one is, as seen by a tap subscribed to `>` (benchmark/traffic.py), and
the servers' own counters summed per kind of connection. Pure: no I/O."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping

JS_API_PREFIXES = ("$JS.API.", "$JS.ledger.API.")  # the operator's, and a bank's imported one


class Kind(enum.StrEnum):
    SUBMIT = "submission publish"
    BATCH_STATE = "atomic batch: state event ($KV.ledger_<k>.*)"
    BATCH_OUTBOX = "atomic batch: outbox message (nb.<k>.to.*)"
    DEAD_LETTER = "dead-letter publish"
    DELIVERY = "consumer delivery"
    PULL_STATUS = "pull status (404/408/409/heartbeat)"
    PUB_ACK = "PubAck / batch-commit reply"
    API_REPLY = "API reply (info, get, direct get)"
    ACK = "ack"
    NAK = "nak"
    IN_PROGRESS = "in-progress (+WPI)"
    TERM = "term"
    PULL_REQUEST = "pull request (CONSUMER.MSG.NEXT)"
    DIRECT_GET = "direct get request"
    LEADER_GET = "leader get request (STREAM.MSG.GET)"
    CONSUMER_INFO = "consumer info request"
    STREAM_INFO = "stream info request"
    OTHER_API = "other API request"
    ADVISORY = "advisory (sent only because the tap listens)"
    OTHER = "other"


ACK_KINDS = {b"-NAK": Kind.NAK, b"+WPI": Kind.IN_PROGRESS, b"+TERM": Kind.TERM}
API_KINDS = {
    "CONSUMER.MSG.NEXT.": Kind.PULL_REQUEST,
    "DIRECT.GET.": Kind.DIRECT_GET,
    "STREAM.MSG.GET.": Kind.LEADER_GET,
    "CONSUMER.INFO.": Kind.CONSUMER_INFO,
    "STREAM.INFO.": Kind.STREAM_INFO,
}


def kind_of(subject: str, reply: str, headers: Mapping[str, str] | None, data: bytes) -> Kind:
    """The kind of one message the tap received (its subject, reply, headers and payload)."""
    headers = headers or {}
    if reply.startswith("$JS.ACK."):
        return Kind.DELIVERY
    if subject.startswith("$JS.ACK."):
        return ACK_KINDS.get(data.split(b" ", 1)[0], Kind.ACK)  # empty or +ACK: an ack
    for prefix in JS_API_PREFIXES:
        if subject.startswith(prefix):
            tail = subject[len(prefix) :]
            return next((k for p, k in API_KINDS.items() if tail.startswith(p)), Kind.OTHER_API)
    if subject.startswith("$JS.EVENT."):
        return Kind.ADVISORY
    if subject.startswith("$KV."):
        return Kind.BATCH_STATE
    tokens = subject.split(".")
    if tokens[0] == "nb" and len(tokens) > 4 and tokens[2] == "to":
        return Kind.SUBMIT if tokens[4] == "submit" else Kind.BATCH_OUTBOX
    if tokens[0] == "nb" and len(tokens) > 1 and tokens[1] == "dlq":
        return Kind.DEAD_LETTER
    if "Status" in headers and not data:
        return Kind.PULL_STATUS
    if subject.startswith("_INBOX."):
        return Kind.PUB_ACK if data.startswith(b'{"stream"') else Kind.API_REPLY
    return Kind.OTHER


# --- The servers' counters ------------------------------------------------------------------

IN, OUT = "in_msgs", "out_msgs"


def connection_class(name: str, classes: Mapping[str, str]) -> str:
    """The class of a client connection by its name (`classes`: name -> class); any other
    name is a service's."""
    return classes.get(name, "services")


def sum_counters(
    rows: Iterable[tuple[str, str, int, int]],
) -> dict[str, dict[str, int]]:
    """(node, class, in, out) rows -> class -> {in_msgs, out_msgs}, summed over nodes."""
    total: dict[str, Counter] = {}
    for _node, cls, in_msgs, out_msgs in rows:
        counter = total.setdefault(cls, Counter())
        counter[IN] += in_msgs
        counter[OUT] += out_msgs
    return {cls: {IN: c[IN], OUT: c[OUT]} for cls, c in total.items()}


def difference(after: Mapping, before: Mapping) -> dict[str, dict[str, int]]:
    """Per class, `after - before` (a class absent before counts from 0)."""
    zero = {IN: 0, OUT: 0}
    return {cls: {k: after[cls][k] - before.get(cls, zero)[k] for k in (IN, OUT)} for cls in after}


def per_transfer(counts: Mapping[str, Mapping[str, int]], transfers: int) -> dict[str, float]:
    """Per class, (in + out) per transfer."""
    return {cls: round((c[IN] + c[OUT]) / max(1, transfers), 2) for cls, c in counts.items()}
