"""Subject and key layout. Everything one participant's step writes lands in its own partition's
stream, so one atomic batch can commit it (DESIGN.md section 7)."""

from __future__ import annotations

import zlib

from eventsource.core.messages import Kind

PREFIX = "nb"


def partition_of(participant: str, partitions: int) -> int:
    """A stable hash, the same in every process and language (CRC-32 of the UTF-8 name)."""
    return zlib.crc32(participant.encode()) % partitions


def ledger_stream(partition: int) -> str:
    return f"LEDGER_{partition}"


def ledger_subjects(partition: int) -> str:
    return f"{PREFIX}.{partition}.>"


# State keys are the subject tail after `nb.<k>.` and also the KV keys of the state buckets.
# Names that would make a participant's subjects collide with the layout's own tokens (an
# inbox `nb.k.to.in.…` would match the `*.in.*.*` records), or with registry keys (`_…`).
RESERVED_NAMES = frozenset({"to", "dlq", "in", "out", "acct"})


def is_reserved(participant: str) -> bool:
    return participant in RESERVED_NAMES or participant.startswith("_")


def account_key(participant: str, account: str) -> str:
    return f"{participant}.acct.{account}"


def outgoing_key(submitter: str, transfer_id: str) -> str:
    """The submitter's record of a transfer it sent."""
    return f"{submitter}.out.{transfer_id}"


def incoming_key(receiver: str, submitter: str, transfer_id: str) -> str:
    """The receiver's record; ids are unique per submitter, so the submitter is part of the key."""
    return f"{receiver}.in.{submitter}.{transfer_id}"


def state_subject(partition: int, key: str) -> str:
    return f"{PREFIX}.{partition}.{key}"


def key_of_subject(subject: str) -> str:
    return subject.split(".", 2)[2]


def inbox_subject(partition: int, recipient: str, kind: Kind, token: str) -> str:
    return f"{PREFIX}.{partition}.to.{recipient}.{kind.value}.{token}"


def inbox_filter(partition: int, recipient: str) -> str:
    return f"{PREFIX}.{partition}.to.{recipient}.>"


def inbox_consumer(participant: str, partition: int) -> str:
    return f"inbox_{participant}_{partition}"


def parse_inbox_subject(subject: str) -> tuple[int, str, str] | None:
    """(partition, recipient, kind) of an inbox subject, or None if it is not one."""
    parts = subject.split(".")
    if len(parts) != 6 or parts[0] != PREFIX or parts[2] != "to" or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[3], parts[4]


DEAD_LETTER_STREAM = "DEADLETTER"


def dead_letter_subject(participant: str) -> str:
    return f"{PREFIX}.dlq.{participant}"


ACCOUNTS_BUCKET = "accounts"
TRANSFERS_BUCKET = "transfers"
PARTICIPANTS_BUCKET = "participants"


def _kv_transform(bucket: str, partition: int, tail: str) -> tuple[str, str]:
    """`nb.<k>.P.acct.A` -> `$KV.<bucket>.P.acct.A`, using the server's subject transforms."""
    source = f"{PREFIX}.{partition}.{tail}"
    tokens = tail.split(".")
    n = 0
    dest = []
    for token in tokens:
        if token == "*":
            n += 1
            dest.append(f"{{{{wildcard({n})}}}}")
        else:
            dest.append(token)
    return source, f"$KV.{bucket}." + ".".join(dest)


def kv_sources(partition: int) -> dict[str, list[tuple[str, str]]]:
    """Subject transforms that let the server feed the state buckets from a ledger stream."""
    return {
        ACCOUNTS_BUCKET: [_kv_transform(ACCOUNTS_BUCKET, partition, "*.acct.*")],
        TRANSFERS_BUCKET: [
            _kv_transform(TRANSFERS_BUCKET, partition, "*.out.*"),
            _kv_transform(TRANSFERS_BUCKET, partition, "*.in.*.*"),
        ],
    }
