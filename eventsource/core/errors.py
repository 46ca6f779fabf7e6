"""One error tree for natsbank. The CLI maps each branch to an exit code and a one-line message."""

from __future__ import annotations

import enum


class RejectionCause(enum.StrEnum):
    """Why a transfer was REJECTED. The value travels on the wire; never rename a member."""

    INVALID_AMOUNT = "INVALID_AMOUNT"
    UNKNOWN_CURRENCY = "UNKNOWN_CURRENCY"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    UNKNOWN_PARTICIPANT = "UNKNOWN_PARTICIPANT"
    ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    SAME_ACCOUNT = "SAME_ACCOUNT"
    ID_CONFLICT = "ID_CONFLICT"
    INVALID_TRANSFER = "INVALID_TRANSFER"
    ID_EXPIRED = "ID_EXPIRED"  # an id older than the live horizon that the archive does not know
    REMOTE_REJECTED = "REMOTE_REJECTED"  # a proxy participant's remote bank declined
    REMOTE_TIMEOUT = "REMOTE_TIMEOUT"  # a proxy's remote bank did not answer in time (opt-in)


class NatsbankError(Exception):
    """Root of every error natsbank raises on purpose."""

    exit_code = 1


class ConfigError(NatsbankError):
    """Bad settings, a bad streams.yaml, no cluster to talk to: the user must fix something."""

    exit_code = 2


class AccessRefused(ConfigError):
    """The NATS server refused this credential a subject the operation needs (a permissions
    violation): no retry can change that, so it fails at once."""


class UsageError(ConfigError):
    """A command line that cannot be carried out as written."""


class DeadLetterReason(enum.StrEnum):
    """Why a message or an item went to the dead-letter stream (header Natsbank-Reason). Each
    member is documented in PROTOCOL.md section 10; never rename one."""

    UNDECODABLE = "UNDECODABLE"  # the payload is not a message of its kind (or not JSON)
    PROTOCOL_VIOLATION = "PROTOCOL_VIOLATION"  # a valid message or item the protocol forbids
    ID_CONFLICT = "ID_CONFLICT"  # a transfer id already used with other content
    QUARANTINED = "QUARANTINED"  # an item whose record or account does not decode in the ledger
    # The subject's sender or recipient token differs from what the message claims (issue 13).
    SUBJECT_MISMATCH = "SUBJECT_MISMATCH"
    BAD_SIGNATURE = "BAD_SIGNATURE"  # not signed by its sender's registered key (or unsigned)


class ProtocolError(NatsbankError):
    """A message that does not follow the wire format; it goes to the dead-letter stream."""

    reason = DeadLetterReason.PROTOCOL_VIOLATION


class SubjectMismatch(ProtocolError):
    """A message whose subject names another sender (or recipient) than the message claims: a
    forgery, or a sender that writes the layout wrongly. Dead-lettered, never decided."""

    reason = DeadLetterReason.SUBJECT_MISMATCH


class InfrastructureError(NatsbankError):
    """NATS or PostgreSQL did not answer as expected; retrying may help."""


class TemporarilyUnavailable(InfrastructureError):
    """JetStream said "not now" (no leader yet, no responders) and nothing was stored: the
    operation may be repeated as it is. `adapters/retry.py` retries it, with a bound."""


class ReplicaBehind(TemporarilyUnavailable):
    """A read that must be exact reached less than the stream leader holds: a replica that is
    still catching up answered it. Read again (a bounded retry); never report the part read."""


class DeadLetterFailed(InfrastructureError):
    """A dead letter was not stored after a bounded number of attempts (DEADLETTER missing,
    without a leader, or refusing it). Nothing was stored: the poison message must stay
    unacknowledged so that it comes back, and the rest of its group goes on."""

    def __init__(self, detail: str, *, reason: str, source: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.source = source


class ArchiveLeaseLost(InfrastructureError):
    """Another archiver holds the stream's lease (or took it over): this run stops before it
    changes anything more; what it did so far is safe to repeat."""


class DomainError(NatsbankError):
    """A business rule refused the operation; carries the wire cause."""

    cause: RejectionCause = RejectionCause.INVALID_TRANSFER

    def __init__(self, detail: str, cause: RejectionCause | None = None) -> None:
        super().__init__(detail)
        if cause is not None:
            self.cause = cause

    @property
    def detail(self) -> str:
        return str(self)


class InvalidAmount(DomainError):
    cause = RejectionCause.INVALID_AMOUNT


class UnknownCurrency(DomainError):
    cause = RejectionCause.UNKNOWN_CURRENCY


class CurrencyMismatch(DomainError):
    cause = RejectionCause.CURRENCY_MISMATCH


class UnknownAccount(DomainError):
    cause = RejectionCause.UNKNOWN_ACCOUNT


class AccountIsClosed(DomainError):
    cause = RejectionCause.ACCOUNT_CLOSED


class InsufficientFunds(DomainError):
    cause = RejectionCause.INSUFFICIENT_FUNDS


class IdConflict(DomainError):
    cause = RejectionCause.ID_CONFLICT


class StaleState(NatsbankError):
    """A subject moved since it was read: another instance or a retry got there first. The
    atomic batch was refused as a whole; the group is decided again on fresher state."""


class RemoteUnanswered(InfrastructureError):
    """A participant's remote bank did not answer (core/remote.py): the group is decided again
    later, never on the remote bank's behalf."""


class CommitUnknown(InfrastructureError):
    """No answer to a commit: it may or may not have landed. Re-read, then decide again."""


class UnknownDeadLetter(NatsbankError):
    """No dead letter at the sequence an operator named."""


class NotRetryable(NatsbankError):
    """A dead letter that republishing cannot help: it would be refused again, or there is
    nothing stored to republish. The message says why and what to do instead."""


class RecordQuarantined(NatsbankError):
    """A record the command needs does not decode in the ledger: it is quarantined (reported
    by `natsbank audit`), and nothing is read or decided from it."""


class InvariantViolation(NatsbankError):
    """The ledger broke one of I1-I7. Never expected; audit reports it."""


class ArchiveError(NatsbankError):
    """The ledger archive (Object Store `ledger_archive`) cannot serve or store a period."""


class ArchiveNotFound(ArchiveError):
    """The period has no manifest: never archived, or its write was interrupted. Without a
    manifest nothing of the period counts as archived."""


class ArchiveCorrupt(ArchiveError):
    """An archived object differs from its manifest, or the chain of manifests breaks: the
    message names the period and what differs."""


class PeriodIncomplete(ArchiveError):
    """The messages handed to the archive do not cover the period exactly (a gap, a message out
    of range or out of order): archiving them would lose events, so nothing is written."""
