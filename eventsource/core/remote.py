"""A participant as a proxy to a remote bank (the seed's question 5), pure: the plan, the link's
messages, and what a receiver's decision needs from the remote bank and tells it.

The receiver P's service is a proxy: the creditor's bank is remote. Before P decides a new
posting OK it asks the remote bank (an ask), and it takes the remote bank's decline as its own
(REJECTED `REMOTE_REJECTED`). The remote bank's answer is provisional, like P's own pending
credit: P relays every final outcome it records (the confirm's OK or REJECTED, or the CANCEL) to
the remote bank (a final), which applies the credit only on a final OK. Both exchanges are keyed
by `<sender>.<transfer id>`, the idempotency key: a lost answer is asked for again with the same
key, a duplicate or late answer is ignored, and the remote bank answers a key it knows from what
it decided or was told before. docs/FINDINGS.md, "The seed's question 5", argues why this keeps
I4 and what it costs; docs/PROTOCOL.md section 13 has the wire.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

from eventsource.core.errors import ConfigError, DomainError, RejectionCause
from eventsource.core.events import TransferState
from eventsource.core.limits import REMOTE_DELAY_MS_MAX, REMOTE_TIMEOUT_MS
from eventsource.core.model import Outcome, Side, Transfer
from eventsource.core.protocol import Phase

REMOTE_QUEUE = "remote-bank"  # the queue group of a participant's remote bank responders


class RemoteMode(enum.StrEnum):
    OFF = "off"  # the participant's service decides on its own accounts (the default)
    SIMULATED = "simulated"  # each serve process also answers as the remote bank (a responder)
    EXTERNAL = "external"  # a separate `natsbank remote-bank P` process answers


def ask_subject(participant: str) -> str:
    """Where P's proxy asks its remote bank: in P's own account, `nb.remote.<P>.ask`."""
    return f"nb.remote.{participant}.ask"


def answer_subject(participant: str, token: str) -> str:
    """Where the remote bank answers one proxy instance: `nb.remote.<P>.answer.<token>`."""
    return f"nb.remote.{participant}.answer.{token}"


def remote_filter(participant: str) -> str:
    """Everything of P's remote link, which P's service identity may publish and subscribe."""
    return f"nb.remote.{participant}.>"


@dataclass(frozen=True, slots=True)
class RemotePlan:
    """How the remote bank behaves (simulated) and how the proxy waits for it."""

    mode: RemoteMode = RemoteMode.OFF
    delay_ms_min: float = 0.0  # each answer leaves after a delay drawn uniformly in [min, max]
    delay_ms_max: float = 0.0
    loss: float = 0.0  # probability that an answer is never sent
    duplicate: float = 0.0  # ... that it is sent twice
    reject: float = 0.0  # share of asks the simulated remote bank declines (by transfer id)
    timeout_ms: float = REMOTE_TIMEOUT_MS  # one ask's wait before the proxy asks again
    decide_after_ms: float = 0.0  # 0: never decide for the remote bank; else REMOTE_TIMEOUT
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.delay_ms_min <= self.delay_ms_max <= REMOTE_DELAY_MS_MAX:
            raise ConfigError(
                f"--remote-delay must be MS or MIN-MAX with 0 <= MIN <= MAX <= "
                f"{REMOTE_DELAY_MS_MAX}"
            )
        for name in ("loss", "duplicate", "reject"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"--remote-{name} must be in [0, 1]")
        if self.loss >= 1.0:
            raise ConfigError("--remote-loss must be below 1: a remote bank that never answers")
        if not 0 < self.timeout_ms <= REMOTE_DELAY_MS_MAX:
            raise ConfigError(f"--remote-timeout must be in (0, {REMOTE_DELAY_MS_MAX}] ms")
        if not 0 <= self.decide_after_ms <= REMOTE_DELAY_MS_MAX:
            raise ConfigError(f"--remote-decide-after must be in [0, {REMOTE_DELAY_MS_MAX}] ms")

    @property
    def active(self) -> bool:
        return self.mode is not RemoteMode.OFF

    @property
    def faulty(self) -> bool:
        return bool(self.delay_ms_max or self.loss or self.duplicate or self.reject)


NO_REMOTE = RemotePlan()


def parse_delay(text: str) -> tuple[float, float]:
    """`50` (fixed, ms) or `20-80` (uniform range, ms)."""
    low, sep, high = text.strip().partition("-")
    try:
        first = float(low)
        second = float(high) if sep else first
    except ValueError:
        raise ConfigError(f"--remote-delay takes MS or MIN-MAX in ms, not {text!r:.40}") from None
    if not (first == first and second == second):  # NaN
        raise ConfigError("--remote-delay must be a number of ms")
    return first, second


class AskedCredit(msgspec.Struct, frozen=True, kw_only=True):
    """Proxy -> remote bank: may this credit be accepted? (key: `<sender>.<transfer id>`)"""

    key: str
    account: str
    amount: str
    currency: str


class RelayedFinal(msgspec.Struct, frozen=True, kw_only=True):
    """Proxy -> remote bank: the transfer's final outcome (OK, REJECTED or CANCELLED)."""

    key: str
    outcome: Outcome


class RemoteAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """Remote bank -> proxy: the answer to an ask (accepted or not), or the receipt of a final
    (`noted`)."""

    key: str
    accepted: bool = False
    noted: bool = False
    detail: str = ""


class Ask(msgspec.Struct, frozen=True, kw_only=True, tag="ask"):
    credits: list[AskedCredit]


class Finals(msgspec.Struct, frozen=True, kw_only=True, tag="final"):
    finals: list[RelayedFinal]


class Answers(msgspec.Struct, frozen=True, kw_only=True, tag="answers"):
    answers: list[RemoteAnswer]


link_decoder = msgspec.json.Decoder(Ask | Finals)
answers_decoder = msgspec.json.Decoder(Answers)


def remote_key(sender: str, transfer_id: str) -> str:
    return f"{sender}.{transfer_id}"


def asked_credit(sender: str, transfer: Transfer) -> AskedCredit:
    return AskedCredit(
        key=remote_key(sender, transfer.id),
        account=transfer.creditor.account,
        amount=transfer.amount,
        currency=transfer.currency,
    )


class TimedOut(msgspec.Struct, frozen=True, kw_only=True):
    """The proxy's own decline for a remote bank silent for longer than `decide_after_ms`: only
    taken when the plan allows it, and then relayed to the remote bank as the final REJECTED."""

    key: str
    waited_ms: float


Verdict = RemoteAnswer | TimedOut


def remote_decline(verdict: Verdict) -> DomainError | None:
    """The REJECTED cause a remote verdict gives the receiver's decision; None when accepted."""
    if isinstance(verdict, TimedOut):
        return DomainError(
            f"remote bank: no answer in {verdict.waited_ms:.0f} ms", RejectionCause.REMOTE_TIMEOUT
        )
    if verdict.accepted:
        return None
    return DomainError(
        f"remote bank declined: {verdict.detail or 'no reason'}", RejectionCause.REMOTE_REJECTED
    )


def finals_of(changed: dict[str, object]) -> list[RelayedFinal]:
    """The receiver's records this decision makes final (CONFIRMED): what the remote bank must
    be told before the decision is committed (at least once; it applies each key once)."""
    finals = []
    for state in changed.values():
        if (
            isinstance(state, TransferState)
            and state.side == Side.RECEIVER
            and state.phase is Phase.CONFIRMED
            and state.outcome is not None
        ):
            key = remote_key(state.transfer.debtor.participant, state.transfer.id)
            finals.append(RelayedFinal(key=key, outcome=state.outcome))
    return finals
