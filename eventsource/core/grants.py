"""The operator's tools: least privilege, each but admin in an account of its own.

Only admin lives in LEDGER with the streams (core/permissions.py). Every other tool's account
imports exactly the subjects its grant allows (`tool_exports`), under `$JS.ledger.API` for the
JetStream API, so a reply subject it chooses is never one inside LEDGER (research note 5.1)
and the account boundary, not only its user permissions, bounds what it reaches. No tool but
admin and the projector creates consumers: whole-stream reads are batched direct gets
(adapters/direct_reader.py). Where a grant is more than the research note's minimum, the
comment says why.
"""

from __future__ import annotations

from collections.abc import Iterable

from eventsource.core.limits import ARCHIVE_BUCKET, ARCHIVE_META_BUCKET
from eventsource.core.permissions import (
    JS_API,
    NEVER,
    OPERATOR_ROLES,
    Export,
    Grant,
    Identity,
    Role,
    client_grant,
    localized,
    registry_exports,
    service_grant,
    tool_account,
)
from eventsource.core.subjects import (
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
_REGISTRY_READ = tuple(e.subject for e in registry_exports())


def grant_for(identity: Identity, partitions: int, participants: Iterable[str]) -> Grant:
    """The user permissions of `identity` in its account."""
    if identity.role is Role.SERVICE:
        return service_grant(identity.participant or "", partitions)
    if identity.role is Role.CLIENT:
        return client_grant(identity.participant or "", partitions)
    allow, deny = _ledger_side(identity.role, partitions, participants)
    if not identity.role.in_ledger:  # the names it uses in its own account
        allow, deny = [localized(s) for s in allow], [localized(s) for s in deny]
    return Grant(tuple(allow), tuple(deny), (identity.inbox_prefix + ".>",))


def tool_exports(partitions: int, participants: Iterable[str]) -> list[Export]:
    """What LEDGER exports to each tool's account: what its grant allows, nothing more (the
    deny list stays a user permission). A fetch or a batched direct get answers many times."""
    exports = []
    for role in OPERATOR_ROLES:
        if role.in_ledger:
            continue
        allow, _ = _ledger_side(role, partitions, participants)
        account = tool_account(role)
        exports += [Export(s, account, streamed=_answers_many(s)) for s in allow]
    return exports


def _answers_many(subject: str) -> bool:
    return ".CONSUMER.MSG.NEXT." in subject or ".DIRECT.GET." in subject


def _ledger_side(
    role: Role, partitions: int, participants: Iterable[str]
) -> tuple[list[str], list[str]]:
    """(allow, deny) as LEDGER names them."""
    allow, deny = _OPERATOR[role](range(partitions))
    if role is not Role.ARCHIVER:  # its own list: it purges what it archived
        deny = [*NEVER, *deny]
    if role is not Role.ADMIN:  # who creates them
        deny += _bank_consumer_subjects(partitions, participants)
    return allow, deny


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
        f"$KV.{PARTICIPANTS_BUCKET}.>",
    ]
    return allow, []


def _funding(ks: range) -> tuple[list[str], list[str]]:
    """Money entering the ledger: account and funding keys of any bank, and exact reads."""
    allow = [*_REGISTRY_READ, f"{JS_API}.INFO"]
    for k in ks:
        stream = ledger_stream(k)
        allow += [
            f"$KV.ledger_{k}.*.acct.*",
            f"$KV.ledger_{k}.*.fund.*",
            f"{JS_API}.STREAM.INFO.{stream}",
            f"{JS_API}.STREAM.MSG.GET.{stream}",
            f"{JS_API}.DIRECT.GET.{stream}",
            f"{JS_API}.DIRECT.GET.{stream}.>",
        ]
    return allow, []


def _reader(ks: range) -> tuple[list[str], list[str]]:
    """audit, replay, status, health, listings: reads only, no consumer (direct gets). With a
    live horizon the audit holds the archive still while it reads: it writes the leases."""
    return [*_READ_ANY, f"$KV.{ARCHIVE_META_BUCKET}.lease.*"], []


def _projector(ks: range) -> tuple[list[str], list[str]]:
    """The projector creates, rebinds and deletes its own durables `projector_<name>_<k>`:
    their start follows its database's position, which only it knows (delete + create at that
    sequence). A consumer name is one token, so the grant is per stream; the banks' consumers
    are denied by name."""
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
    """The archiver of a bounded history: reads, keeps its periods in the object store
    `ARCHIVE_BUCKET` and its head in the KV bucket `archive`, copies each live key's latest
    event forward in its partition, and purges what it archived: the one tool that purges
    (the ledger denies purges unless streams.yaml declares a horizon)."""
    objects, meta = f"OBJ_{ARCHIVE_BUCKET}", f"KV_{ARCHIVE_META_BUCKET}"
    allow = [
        *_READ_ANY,
        *(f"{JS_API}.STREAM.{verb}.{s}" for verb in ("CREATE", "UPDATE") for s in (objects, meta)),
        f"{JS_API}.STREAM.PURGE.{objects}",  # an object replaced: its old chunks
        f"$O.{ARCHIVE_BUCKET}.>",
        f"$KV.{ARCHIVE_META_BUCKET}.>",
    ]
    for k in ks:
        allow += [f"{JS_API}.STREAM.PURGE.{ledger_stream(k)}", f"$KV.ledger_{k}.>"]
    deny = [*(v for v in NEVER if ".STREAM.PURGE." not in v), f"$KV.{PARTICIPANTS_BUCKET}.>"]
    return allow, deny


def _dead_letters(ks: range) -> tuple[list[str], list[str]]:
    """list, show and retry: a retry republishes a letter, unchanged, on its inbox subject
    (any sender's: the receiver checks subject, sender and signature as for any message), and
    records the retry under the letter's bank."""
    allow = [*_READ_ANY, "nb.dlq.*.retried.*"]
    for k in ks:
        allow += [f"nb.{k}.to.*.*.*.*", f"nb.{k}.to.*.*.*"]  # the layout; the legacy one
    return allow, []


_OPERATOR = {
    Role.ADMIN: _admin,
    Role.FUNDING: _funding,
    Role.AUDIT: _reader,
    Role.PROJECTOR: _projector,
    Role.ARCHIVER: _archiver,
    Role.DEAD_LETTERS: _dead_letters,
}
