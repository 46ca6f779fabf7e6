"""Subject and key layout (DESIGN.md section 7, improved: see docs/ARCHITECTURE.md).

Each ledger partition k is ONE stream that is also a KV bucket, `ledger_<k>` (stream
`KV_ledger_<k>`): state events go on `$KV.ledger_<k>.<key>`, so the key's history is its event
log and its latest revision is its current state; the outbox goes on `nb.<k>.to.<Q>.…` in the
same stream. Everything one participant's step writes is in its own partition, so one atomic
batch commits it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import NamedTuple

from eventsource.core.messages import Kind
from eventsource.core.model import is_token

PREFIX = "nb"
LEDGER_BUCKET_PREFIX = "ledger_"
PARTICIPANTS_BUCKET = "participants"
DEAD_LETTER_STREAM = "DEADLETTER"
# Registry keys start with "_"; the other names keep subjects and keys unambiguous to read
# (`fund`: the funding records `<P>.fund.<REF>`, issue 13).
RESERVED_NAMES = frozenset({"to", "dlq", "in", "out", "acct", "fund"})


def partition_of(participant: str, partitions: int) -> int:
    """A stable hash, the same in every process and language (CRC-32 of the UTF-8 name)."""
    return zlib.crc32(participant.encode()) % partitions


def ledger_bucket(partition: int) -> str:
    return f"{LEDGER_BUCKET_PREFIX}{partition}"


def ledger_stream(partition: int) -> str:
    return f"KV_{ledger_bucket(partition)}"


def state_prefix(partition: int) -> str:
    return f"$KV.{ledger_bucket(partition)}."


class KeySpace:
    """Where state keys live: a stream, and the subject of each key in it (a ledger partition,
    or the shared store)."""

    __slots__ = ("prefix", "stream")

    def __init__(self, stream: str, prefix: str) -> None:
        self.stream = stream
        self.prefix = prefix

    def subject(self, key: str) -> str:
        return f"{self.prefix}{key}"


def partition_space(partition: int) -> KeySpace:
    return KeySpace(ledger_stream(partition), state_prefix(partition))


def ledger_subjects(partition: int, participants: Iterable[str] = ()) -> list[str]:
    """The partition's state, and the inboxes of the registered participants only (a message
    to anybody else's inbox matches no stream: it is never ACKed)."""
    inboxes = [inbox_filter(partition, p) for p in sorted(set(participants))]
    return [f"{state_prefix(partition)}>", *inboxes]


def is_reserved(participant: str) -> bool:
    return participant in RESERVED_NAMES or participant.startswith("_")


def participant_problem(name: object) -> str | None:
    """Why `name` cannot be a participant (it becomes a subject token and a key), or None."""
    if is_token(name) and not is_reserved(name):  # type: ignore[arg-type]
        return None
    return (
        f"{name!r:.40} cannot be a participant: use 1-64 of A-Z a-z 0-9 _ - (not starting "
        f"with _), and none of {', '.join(sorted(RESERVED_NAMES))}"
    )


# State keys: the KV keys of the ledger bucket.
def account_key(participant: str, account: str) -> str:
    return f"{participant}.acct.{account}"


def is_account_key(key: str) -> bool:
    return key.split(".", 2)[1] == "acct"


def outgoing_key(submitter: str, transfer_id: str) -> str:
    """The submitter's record of a transfer it sent."""
    return f"{submitter}.out.{transfer_id}"


def incoming_key(receiver: str, submitter: str, transfer_id: str) -> str:
    """The receiver's record; ids are unique per submitter, so the submitter is part of the key."""
    return f"{receiver}.in.{submitter}.{transfer_id}"


def transfer_id_of_key(key: str) -> str:
    """The transfer id of a record key (`<N>.out.<ID>`, `<P>.in.<N>.<ID>`)."""
    return key.rsplit(".", 1)[1]


def state_subject(partition: int, key: str) -> str:
    return f"{state_prefix(partition)}{key}"


def key_of_subject(subject: str) -> str | None:
    """The state key of a ledger subject, or None for an inbox subject."""
    if not subject.startswith("$KV."):
        return None
    return subject.split(".", 2)[2]


class InboxSubject(NamedTuple):
    """An inbox subject read back. `sender` is None on the 6-token form written before the
    sender was in the subject (stored history keeps it for ever: docs/PROTOCOL.md section 3)."""

    partition: int
    recipient: str
    kind: str
    sender: str | None
    token: str


def inbox_subject(partition: int, recipient: str, kind: Kind, sender: str, token: str) -> str:
    """`nb.<k>.to.<Q>.<kind>.<S>.<token>`: k is the partition of the sender S's ledger (the
    outbox is committed there), so a server permission can name S (issue 13)."""
    return f"{PREFIX}.{partition}.to.{recipient}.{kind.value}.{sender}.{token}"


def submission_subject(partition: int, submitter: str, token: str) -> str:
    """A client submits for its own bank: the sender token is the recipient."""
    return inbox_subject(partition, submitter, Kind.SUBMIT, submitter, token)


def inbox_filter(partition: int, recipient: str) -> str:
    return f"{PREFIX}.{partition}.to.{recipient}.>"


def inbox_consumer(participant: str, partition: int) -> str:
    """The consumer of the protocol messages (postings, results, confirms) to `participant`."""
    return f"inbox_{participant}_{partition}"


def submit_consumer(participant: str, partition: int) -> str:
    """The consumer of the submissions to `participant`: its own, so that they are decided in
    the order they were ACKed (docs/PROTOCOL.md section 7, contested ids)."""
    return f"submit_{participant}_{partition}"


def protocol_filters(partition: int, recipient: str) -> list[str]:
    kinds = (Kind.POSTING, Kind.RESULT, Kind.CONFIRM)
    return [f"{PREFIX}.{partition}.to.{recipient}.{kind.value}.>" for kind in kinds]


def submit_filter(partition: int, recipient: str) -> str:
    return f"{PREFIX}.{partition}.to.{recipient}.{Kind.SUBMIT.value}.>"


def inbox_consumers(participant: str, partition: int) -> list[str]:
    """Both of a participant's consumers on one partition: submissions first."""
    return [submit_consumer(participant, partition), inbox_consumer(participant, partition)]


def parse_inbox_subject(subject: str) -> InboxSubject | None:
    """An inbox subject of either form (7 tokens, or the old 6 without the sender), or None
    if it is not one."""
    parts = subject.split(".")
    if len(parts) not in (6, 7) or parts[0] != PREFIX or parts[2] != "to":
        return None
    if not parts[1].isdigit():
        return None
    sender = parts[5] if len(parts) == 7 else None
    return InboxSubject(int(parts[1]), parts[3], parts[4], sender, parts[-1])


def dead_letter_subject(participant: str) -> str:
    return f"{PREFIX}.dlq.{participant}"


def dead_letter_retry_subject(participant: str, letter_seq: int) -> str:
    """Where `dead-letters retry` records that it republished the letter at `letter_seq`."""
    return f"{PREFIX}.dlq.{participant}.retried.{letter_seq}"


def parse_dead_letter_subject(subject: str) -> tuple[str, int | None] | None:
    """(participant, None) of a dead letter, (participant, letter sequence) of a retry record,
    or None for anything else."""
    parts = subject.split(".")
    if len(parts) < 3 or parts[:2] != [PREFIX, "dlq"]:
        return None
    if len(parts) == 3:
        return parts[2], None
    if len(parts) == 5 and parts[3] == "retried" and parts[4].isdigit():
        return parts[2], int(parts[4])
    return None


# Core-NATS mode: postings, results and confirms travel as plain core messages, shared by the
# recipient's instances through a queue group. Submissions stay on the JetStream inbox.
class CoreSubject(NamedTuple):
    recipient: str
    kind: str
    sender: str | None  # None: the old 4-token form


def core_subject(recipient: str, kind: Kind, sender: str) -> str:
    """`nb.core.<Q>.<kind>.<S>`: the sender is in the subject, as on the JetStream inbox."""
    return f"{PREFIX}.core.{recipient}.{kind.value}.{sender}"


def core_filter(recipient: str) -> str:
    return f"{PREFIX}.core.{recipient}.>"


def core_queue(recipient: str) -> str:
    return f"{PREFIX}.core.{recipient}"


def parse_core_subject(subject: str) -> CoreSubject | None:
    """A core-mode subject of either form (5 tokens, or the old 4), or None if it is not one."""
    parts = subject.split(".")
    if len(parts) not in (4, 5) or parts[0] != PREFIX or parts[1] != "core":
        return None
    return CoreSubject(parts[2], parts[3], parts[4] if len(parts) == 5 else None)
