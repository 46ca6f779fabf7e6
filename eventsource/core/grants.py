"""The operator's tools: least privilege inside the LEDGER account (core/permissions.py).

They share one account, so a reply subject they choose could still carry a JetStream answer
into a stream (research note 5.1): they are one trust domain, the operator's. What each holds is
what its commands need today; where that is more than the research note's minimum, the comment
says why.
"""

from __future__ import annotations

from collections.abc import Iterable

from eventsource.core.permissions import (
    JS_API,
    NEVER,
    REGISTRY_STREAM,
    Grant,
    Identity,
    Role,
    client_grant,
    service_grant,
)
from eventsource.core.subjects import (
    DEAD_LETTER_STREAM,
    PARTICIPANTS_BUCKET,
    inbox_consumers,
    ledger_stream,
)

_READ_ANY = (
    f"{JS_API}.INFO",
    f"{JS_API}.STREAM.INFO.*",
    f"{JS_API}.STREAM.NAMES",
    f"{JS_API}.STREAM.LIST",
    f"{JS_API}.STREAM.MSG.GET.*",
    f"{JS_API}.DIRECT.GET.>",
    f"{JS_API}.CONSUMER.INFO.>",
    f"{JS_API}.CONSUMER.NAMES.*",
    f"{JS_API}.CONSUMER.LIST.*",
)
_REGISTRY_READ = (
    f"{JS_API}.STREAM.INFO.{REGISTRY_STREAM}",
    f"{JS_API}.DIRECT.GET.{REGISTRY_STREAM}.>",
    f"{JS_API}.STREAM.MSG.GET.{REGISTRY_STREAM}",
)


def grant_for(identity: Identity, partitions: int, participants: Iterable[str]) -> Grant:
    """The user permissions of `identity` in its account."""
    if identity.role is Role.SERVICE:
        return service_grant(identity.participant or "", partitions)
    if identity.role is Role.CLIENT:
        return client_grant(identity.participant or "", partitions)
    allow, deny = _OPERATOR[identity.role](range(partitions))
    if identity.role is not Role.ARCHIVER:  # its own list: it purges what it archived
        deny = [*NEVER, *deny]
    if identity.role is not Role.ADMIN:  # who creates them
        deny += _bank_consumer_subjects(partitions, participants)
    return Grant(tuple(allow), tuple(deny), (identity.inbox_prefix + ".>",))


def _bank_consumer_subjects(partitions: int, participants: Iterable[str]) -> list[str]:
    """No operator tool but admin creates, deletes, fetches from or acks a bank's consumers."""
    found = []
    for p in sorted(participants):
        for k in range(partitions):
            stream = ledger_stream(k)
            for c in inbox_consumers(p, k):
                found += [
                    f"{JS_API}.CONSUMER.CREATE.{stream}.{c}",
                    f"{JS_API}.CONSUMER.CREATE.{stream}.{c}.>",
                    f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{c}",
                    f"{JS_API}.CONSUMER.DELETE.{stream}.{c}",
                    f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{c}",
                    f"$JS.ACK.{stream}.{c}.>",
                ]
    return found


def _admin(ks: range) -> tuple[list[str], list[str]]:
    allow = [
        *_READ_ANY,
        f"{JS_API}.STREAM.CREATE.*",
        f"{JS_API}.STREAM.UPDATE.*",
        f"{JS_API}.CONSUMER.CREATE.>",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.>",
        f"{JS_API}.CONSUMER.DELETE.>",  # reconfiguring a consumer may need delete + create
        f"{JS_API}.CONSUMER.MSG.NEXT.>",  # its exact reads of the registry (read_messages)
        f"$KV.{PARTICIPANTS_BUCKET}.>",
    ]
    return allow, []


def _funding(ks: range) -> tuple[list[str], list[str]]:
    allow = [*_REGISTRY_READ, f"{JS_API}.CONSUMER.INFO.>"]
    for k in ks:
        stream = ledger_stream(k)
        allow += [
            f"$KV.ledger_{k}.*.acct.*",
            f"$KV.ledger_{k}.*.fund.*",
            f"{JS_API}.STREAM.INFO.{stream}",
            f"{JS_API}.STREAM.MSG.GET.{stream}",
            f"{JS_API}.DIRECT.GET.{stream}.>",
        ]
    return allow, []


def _reader(ks: range) -> tuple[list[str], list[str]]:
    """audit, replay, status: reads only. `read_messages` reads through ephemeral consumers,
    so a reader may create one (never a durable one, never delete): until the reads move to
    batched direct gets (research note exp_04)."""
    allow = [
        *_READ_ANY,
        f"{JS_API}.CONSUMER.CREATE.*.*",
        f"{JS_API}.CONSUMER.CREATE.*.*.>",
        f"{JS_API}.CONSUMER.MSG.NEXT.*.*",
    ]
    return allow, []


def _projector(ks: range) -> tuple[list[str], list[str]]:
    """The projector creates, rebinds and deletes its own durables `projector_<name>_<k>`
    (a consumer name is one token, so the grant is per stream; the banks' consumers are denied
    by name)."""
    allow = [*_READ_ANY]
    for k in ks:
        stream = ledger_stream(k)
        allow += [
            f"{JS_API}.CONSUMER.CREATE.{stream}.>",
            f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.*",
            f"{JS_API}.CONSUMER.DELETE.{stream}.*",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
            f"$JS.ACK.{stream}.>",
        ]
    return allow, []


def _archiver(ks: range) -> tuple[list[str], list[str]]:
    """The archiver of a bounded history copies each key's latest event forward, stores
    periods in object stores and a KV bucket of its own, and purges what it archived: the one
    tool that purges (the ledger denies purges unless streams.yaml declares a horizon)."""
    allow = [f"{JS_API}.>", "$O.>", "$KV.>"]
    deny = [
        f"{JS_API}.STREAM.DELETE.>",
        f"{JS_API}.STREAM.MSG.DELETE.>",
        f"{JS_API}.ACCOUNT.>",
        f"{JS_API}.SERVER.>",
        f"{JS_API}.META.>",
        f"$KV.{PARTICIPANTS_BUCKET}.>",
    ]
    return allow, deny


def _dead_letters(ks: range) -> tuple[list[str], list[str]]:
    """list, show and retry: a retry republishes a letter on its inbox subject."""
    allow = [
        *_READ_ANY,
        f"{JS_API}.CONSUMER.CREATE.{DEAD_LETTER_STREAM}.>",
        f"{JS_API}.CONSUMER.MSG.NEXT.{DEAD_LETTER_STREAM}.*",
        "nb.*.to.>",
        "nb.dlq.*.retried.*",
    ]
    return allow, []


_OPERATOR = {
    Role.ADMIN: _admin,
    Role.FUNDING: _funding,
    Role.AUDIT: _reader,
    Role.PROJECTOR: _projector,
    Role.ARCHIVER: _archiver,
    Role.DEAD_LETTERS: _dead_letters,
}
