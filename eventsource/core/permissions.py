"""Who may write and read what on the NATS server: the account-per-bank model as data.

The streams live in the account LEDGER. Each bank P has its own account (`bank_account(P)`)
holding its service and client identities, and reaches exactly its own subjects through service
exports of LEDGER (restricted to its account) and matching imports. A request that crosses an
import gets a reply subject that the server chooses, so no bank can name a reply subject inside
LEDGER: per-user permissions in one account are bypassed by reply-subject injection (research
note, exp_05), the account boundary is not (exp_06). For the same reason only `admin` lives in
LEDGER; every other operator tool has an account of its own (`tool_account(role)`) that imports
exactly its grant (core/grants.py), so no tool can name a reply subject inside LEDGER either.

A bank account imports the ledger's JetStream API under `LEDGER_JS_API` (ADR-19): its own
`$JS.API` answers "JetStream not enabled for account". Ack subjects (`$JS.ACK…`) cross unchanged.

Subject layout (docs/PROTOCOL.md): state `$KV.ledger_<h>.<P>.{acct,out,in}…` with h = k(P);
funding `$KV.ledger_<h>.<P>.fund.<REF>`; inbox `nb.<k(S)>.to.<Q>.<kind>.<S>.<token>`. A NATS
wildcard is a whole token, so `ledger_*` or `inbox_P_*` are literals: partitions are listed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from eventsource.core.limits import ARCHIVE_BUCKET
from eventsource.core.remote import remote_filter
from eventsource.core.subjects import (
    DEAD_LETTER_STREAM,
    PARTICIPANTS_BUCKET,
    core_filter,
    inbox_consumers,
    ledger_stream,
    participant_problem,
    partition_of,
    state_prefix,
)

JS_API = "$JS.API"
LEDGER_JS_API = "$JS.ledger.API"  # the ledger's API as a bank account imports it
LEDGER_ACCOUNT = "LEDGER"
SYSTEM_ACCOUNT = "SYS"
REGISTRY_STREAM = f"KV_{PARTICIPANTS_BUCKET}"
SENT_KINDS = ("posting", "result", "confirm")  # what a service sends; a client only submits
CORE_PREFIX = "nb.core"  # core-mode messages (core/subjects.py core_subject)

# No tool may remove history or reach the server's own API: only a break-glass credential,
# which no tool holds and nothing renders, could.
NEVER = (
    f"{JS_API}.STREAM.DELETE.>",
    f"{JS_API}.STREAM.PURGE.>",
    f"{JS_API}.STREAM.MSG.DELETE.>",
    f"{JS_API}.STREAM.SNAPSHOT.>",
    f"{JS_API}.STREAM.RESTORE.>",
    f"{JS_API}.ACCOUNT.>",
    f"{JS_API}.SERVER.>",
    f"{JS_API}.META.>",
)


class Role(enum.StrEnum):
    """A credential's job. The bank roles are per participant; the rest are the operator's."""

    ADMIN = "admin"  # streams init, participant registration
    FUNDING = "funding"  # accounts open, fund, close
    AUDIT = "audit"  # audit, replay, status and listings: reads only
    PROJECTOR = "projector"  # projections
    ARCHIVER = "archiver"  # the archiver of a bounded history
    DEAD_LETTERS = "dead-letters"  # dead-letters list, show, retry
    SERVICE = "service"  # `serve`: one bank's service
    CLIENT = "client"  # `submit`: one bank's applications

    @property
    def per_bank(self) -> bool:
        return self in (Role.SERVICE, Role.CLIENT)

    @property
    def in_ledger(self) -> bool:
        """Only admin creates streams and consumers, so only it lives with them."""
        return self is Role.ADMIN


OPERATOR_ROLES = tuple(r for r in Role if not r.per_bank)


@dataclass(frozen=True, order=True)
class Identity:
    """One credential: a role, and for the bank roles the participant it acts for."""

    role: Role
    participant: str | None = None

    def __post_init__(self) -> None:
        if self.role.per_bank != (self.participant is not None):
            raise ValueError(f"{self.role} {'needs' if self.role.per_bank else 'has no'} bank")

    @classmethod
    def parse(cls, name: str) -> Identity:
        """The identity named `admin` or `service.bank-a` (its `name`); ValueError if none."""
        role, _, participant = name.partition(".")
        if participant and (problem := participant_problem(participant)) is not None:
            raise ValueError(problem)
        try:
            return cls(Role(role), participant or None)
        except ValueError:
            roles = ", ".join(r if not r.per_bank else f"{r}.<participant>" for r in Role)
            raise ValueError(f"no identity {name!r:.60}: use one of {roles}") from None

    @property
    def name(self) -> str:
        """`admin`, `service.bank-a`: also the name of its seed file."""
        return f"{self.role}.{self.participant}" if self.participant else str(self.role)

    @property
    def inbox_prefix(self) -> str:
        """Where its replies arrive; it may subscribe only there (exp_08)."""
        return f"_INBOX.{self.name}"

    @property
    def account(self) -> str:
        if self.participant:
            return bank_account(self.participant)
        return LEDGER_ACCOUNT if self.role.in_ledger else tool_account(self.role)

    @property
    def js_api(self) -> str:
        """The JetStream API prefix its connection must use."""
        return JS_API if self.account == LEDGER_ACCOUNT else LEDGER_JS_API


def bank_account(participant: str) -> str:
    return f"BANK_{participant}"  # injective: participant names are subject tokens


def tool_account(role: Role) -> str:
    return f"TOOL_{role.name}"  # TOOL_FUNDING; never a bank's (BANK_ prefix)


@dataclass(frozen=True)
class Export:
    """A service LEDGER exports; `account` None: to every account (the registry)."""

    subject: str
    account: str | None = None  # the one account that may import it
    streamed: bool = False  # a fetch gets many messages for one request

    @property
    def local(self) -> str:
        """Its name in the importing bank's account."""
        return localized(self.subject)


def localized(subject: str) -> str:
    if subject.startswith(JS_API + "."):
        return LEDGER_JS_API + subject[len(JS_API) :]
    return subject


@dataclass(frozen=True)
class Grant:
    """What one identity may publish (allow, deny) and subscribe to."""

    allow: tuple[str, ...]
    deny: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = field(default=())


def registry_exports() -> list[Export]:
    """The registry: every bank reads it (nats-py's key_value asks STREAM.INFO; exact reads of
    a registration are leader gets). It is public, so this confidentiality costs nothing."""
    return [
        Export(f"{JS_API}.STREAM.INFO.{REGISTRY_STREAM}"),
        Export(f"{JS_API}.DIRECT.GET.{REGISTRY_STREAM}.>"),
        Export(f"{JS_API}.DIRECT.GET.{REGISTRY_STREAM}", streamed=True),  # a listing
        Export(f"{JS_API}.STREAM.MSG.GET.{REGISTRY_STREAM}"),
    ]


def archive_exports() -> list[Export]:
    """The ledger archive (a live horizon, issue 12), read by every bank: a service looks an
    archived record up to answer a duplicate with its original outcome, a client to report an
    archived transfer's outcome (`status`, `--wait`, a repeated submission). Reads only: the
    bucket's info, leader gets of its chunks, direct gets of its objects' meta. One object store
    holds every partition's history, so a bank can read other banks' final transfers: read
    confidentiality, like the leader get of its home partition; integrity is unaffected."""
    stream = f"OBJ_{ARCHIVE_BUCKET}"
    return [
        Export(f"{JS_API}.STREAM.INFO.{stream}"),
        Export(f"{JS_API}.STREAM.MSG.GET.{stream}"),
        Export(f"{JS_API}.DIRECT.GET.{stream}.>"),
    ]


def shared_reads() -> list[Export]:
    """What LEDGER exports to every account: the registry and the archive."""
    return [*registry_exports(), *archive_exports()]


def bank_exports(participant: str, partitions: int) -> list[Export]:
    """Everything LEDGER exports to one bank's account: its state keys (listed, never `<P>.>`,
    which holds the funding role's `fund.*`), its outbox as sender, its submissions, its dead
    letters, reads of its own keys, and its consumers on every partition."""
    p, h = participant, partition_of(participant, partitions)
    state, stream = state_prefix(h), ledger_stream(h)
    subjects = [
        f"{state}{p}.acct.*",
        f"{state}{p}.out.*",
        f"{state}{p}.in.*.*",
        *(f"nb.{h}.to.*.{kind}.{p}.*" for kind in SENT_KINDS),
        f"nb.{h}.to.{p}.submit.{p}.*",
        f"nb.dlq.{p}",
        f"{JS_API}.DIRECT.GET.{stream}.{state}{p}.>",
        # Exact reads from the stream leader: granted per stream, so a bank can read its home
        # partition's other keys (research note 5.5; integrity is unaffected).
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{DEAD_LETTER_STREAM}.nb.dlq.{p}",
    ]
    own = bank_account(p)
    exports = [Export(s, own) for s in subjects]
    # Batched direct gets of the home stream (JSON form, many answers to one request): how a
    # service reads its records without a consumer (give-up watch, core-mode sweep). Whoever
    # may leader-get a stream reads all of it already, so this widens no bank's reads.
    exports.append(Export(f"{JS_API}.DIRECT.GET.{stream}", own, streamed=True))
    for k in range(partitions):
        for consumer in inbox_consumers(p, k):
            exports += [
                Export(f"{JS_API}.CONSUMER.MSG.NEXT.{ledger_stream(k)}.{consumer}", own, True),
                Export(f"$JS.ACK.{ledger_stream(k)}.{consumer}.>", own),
                Export(f"{JS_API}.CONSUMER.INFO.{ledger_stream(k)}.{consumer}", own),
            ]
    return exports


def core_subject_of(sender: str, kind: str) -> str:
    """What `sender`'s service may publish in core mode: `nb.core.*.<kind>.<S>`."""
    return f"{CORE_PREFIX}.*.{kind}.{sender}"


def core_route(sender: str, recipient: str) -> str:
    """Core-NATS mode: what `sender`'s account exports to `recipient`'s alone, as a stream that
    the recipient imports: the sender's core messages to it, `nb.core.<Q>.*.<S>`. Every ordered
    pair of banks has one (N squared config entries, core mode only). A bank's messages to
    itself stay in its account. The exporter pins the sender (only its own users publish in
    its account), the export's account list pins the reader. A hub through LEDGER was tried
    and refused: a stream export does not carry what came in through a service import
    (nats-server client.go, "do not re-export"), and service imports both ways collide on a
    bank's own messages (`import forms a cycle`)."""
    return f"{core_filter(recipient)[:-1]}*.{sender}"


def service_grant(participant: str, partitions: int) -> Grant:
    """A bank's service: everything exported to its bank but submitting, and core mode."""
    allowed = [
        e.local for e in bank_exports(participant, partitions) if ".submit." not in e.subject
    ]
    allowed += [core_subject_of(participant, kind) for kind in SENT_KINDS]
    allowed += [e.local for e in shared_reads()]
    # Its link to its remote bank when it is a proxy (core/remote.py): asks and answers stay
    # inside the bank's own account, and its remote bank's connector holds this credential.
    allowed.append(remote_filter(participant))
    inbox = Identity(Role.SERVICE, participant).inbox_prefix + ".>"
    return Grant(
        tuple(allowed), subscribe=(inbox, core_filter(participant), remote_filter(participant))
    )


def client_grant(participant: str, partitions: int) -> Grant:
    """A bank's applications: submit for that bank, read its outgoing records and accounts."""
    p, h = participant, partition_of(participant, partitions)
    state, stream = state_prefix(h), ledger_stream(h)
    allowed = [
        f"nb.{h}.to.{p}.submit.{p}.*",
        localized(f"{JS_API}.DIRECT.GET.{stream}.{state}{p}.>"),
        localized(f"{JS_API}.STREAM.MSG.GET.{stream}"),
        *(e.local for e in shared_reads()),
    ]
    return Grant(
        tuple(allowed), subscribe=(Identity(Role.CLIENT, participant).inbox_prefix + ".>",)
    )
