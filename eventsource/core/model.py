"""The transfer and account types shared by both sides of the protocol. Pure data, no I/O."""

from __future__ import annotations

import enum
import hashlib
import re

import msgspec

from eventsource.core.errors import DomainError, ProtocolError, RejectionCause
from eventsource.core.money import exponent_of, format_amount, parse_amount

# Names become NATS subject tokens and KV keys, so they must be plain tokens.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_COMMENT = 280
# Give-up limits (DESIGN.md section 5): a week at most, so a typo cannot park money for years.
MAX_DEADLINE_MS = 7 * 24 * 3600 * 1000
MAX_ATTEMPTS = 100


def is_token(value: object) -> bool:
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def require_token(value: object, what: str) -> str:
    if not is_token(value):
        raise ProtocolError(f"{what} must be 1-64 characters of A-Z a-z 0-9 _ -, got {value!r:.40}")
    return value  # type: ignore[return-value]


class Side(enum.StrEnum):
    SUBMITTER = "submitter"
    RECEIVER = "receiver"


class Outcome(enum.StrEnum):
    OK = "OK"
    REJECTED = "REJECTED"
    # The submitter gave up while RESERVED (DESIGN.md section 5, eventsource/core/saga.py).
    CANCELLED = "CANCELLED"


class AccountRef(msgspec.Struct, frozen=True):
    participant: str
    account: str


class TransferRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What a client submits. Loosely typed on purpose: a float amount earns a REJECTED cause."""

    id: str
    debtor: AccountRef
    creditor: AccountRef
    amount: str | int | float
    currency: str
    comment: str = ""
    # Optional give-up limits; omitted on the wire when unset, so older messages decode as before.
    deadline_ms: int | msgspec.UnsetType = msgspec.UNSET
    max_attempts: int | msgspec.UnsetType = msgspec.UNSET


class Transfer(msgspec.Struct, frozen=True, kw_only=True):
    """A validated transfer: canonical amount string, known currency, plain-token names."""

    id: str
    debtor: AccountRef
    creditor: AccountRef
    amount: str
    currency: str
    comment: str = ""
    # How long, from its admission, and how many attempts the submitter waits for the outcome
    # before it gives up (eventsource/core/saga.py). Omitted when unset, so the digest of a
    # transfer without limits is what it always was.
    deadline_ms: int | msgspec.UnsetType = msgspec.UNSET
    max_attempts: int | msgspec.UnsetType = msgspec.UNSET

    @property
    def limited(self) -> bool:
        """Whether the submitter may give up on this transfer."""
        return self.deadline_ms is not msgspec.UNSET or self.max_attempts is not msgspec.UNSET

    @property
    def minor(self) -> int:
        return parse_amount(self.amount, self.currency)

    @property
    def digest(self) -> str:
        """Content fingerprint: the same id with another digest is an id conflict."""
        return hashlib.blake2b(msgspec.json.encode(self), digest_size=12).hexdigest()


def validate_transfer(request: TransferRequest, submitter: str) -> Transfer:
    """Check a request against the domain rules.

    Raises ProtocolError when the id itself is unusable (nothing can be recorded), and
    DomainError (a REJECTED cause) for everything else.
    """
    require_token(request.id, "transfer id")
    if request.debtor.participant != submitter:
        raise DomainError(
            f"debtor participant {request.debtor.participant!r:.40} is not the submitter "
            f"{submitter!r}",
            RejectionCause.INVALID_TRANSFER,
        )
    for label, ref in (("debtor", request.debtor), ("creditor", request.creditor)):
        if not (is_token(ref.participant) and is_token(ref.account)):
            raise DomainError(
                f"{label} names must be plain tokens (A-Z a-z 0-9 _ -)",
                RejectionCause.INVALID_TRANSFER,
            )
    exponent_of(request.currency)
    minor = parse_amount(request.amount, request.currency)
    if request.debtor == request.creditor:
        raise DomainError("debtor and creditor are the same account", RejectionCause.SAME_ACCOUNT)
    if len(request.comment) > MAX_COMMENT:
        raise DomainError(
            f"comment is longer than {MAX_COMMENT} characters", RejectionCause.INVALID_TRANSFER
        )
    _check_limit(request.deadline_ms, MAX_DEADLINE_MS, "deadline_ms")
    _check_limit(request.max_attempts, MAX_ATTEMPTS, "max_attempts")
    return Transfer(
        id=request.id,
        debtor=request.debtor,
        creditor=request.creditor,
        amount=format_amount(minor, request.currency),
        currency=request.currency,
        comment=request.comment,
        deadline_ms=request.deadline_ms,
        max_attempts=request.max_attempts,
    )


def _check_limit(value: int | msgspec.UnsetType, most: int, name: str) -> None:
    if value is not msgspec.UNSET and not 1 <= value <= most:
        cause = RejectionCause.INVALID_TRANSFER
        raise DomainError(f"{name} must be 1 to {most}, got {value}", cause)


def as_recorded(request: TransferRequest) -> Transfer:
    """A refused request recorded as well as it can be: a valid amount in canonical form (so that
    the same transfer resubmitted as "10.5" or "10.50" is a duplicate, not an id conflict),
    any other amount kept as text, for the record."""
    try:
        amount = format_amount(parse_amount(request.amount, request.currency), request.currency)
    except DomainError:
        amount = request.amount if isinstance(request.amount, str) else repr(request.amount)
    return Transfer(
        id=request.id,
        debtor=request.debtor,
        creditor=request.creditor,
        amount=amount[:40],
        currency=str(request.currency)[:8],
        comment=request.comment[:MAX_COMMENT],
        deadline_ms=request.deadline_ms,
        max_attempts=request.max_attempts,
    )


def admitted(request: TransferRequest, submitter: str) -> tuple[Transfer, DomainError | None]:
    """The transfer to record: validated, or as recorded with the reason it is refused."""
    try:
        return validate_transfer(request, submitter), None
    except DomainError as exc:
        return as_recorded(request), exc
