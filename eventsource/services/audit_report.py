"""What `natsbank audit` reports, for either store: violations listed under the invariant they
break, and the totals they were checked against."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from eventsource.settings import Store

INVARIANTS = ("I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8")


@dataclass
class AuditReport:
    store: Store = Store.INDEPENDENT
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    events: int = 0
    accounts: int = 0
    transfers_acked: int = 0
    final: int = 0
    in_flight: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    funded: dict[str, str] = field(default_factory=dict)
    balances: dict[str, str] = field(default_factory=dict)
    projection: str | None = None  # which projection I6 was checked against; None: not checked
    # Protocol messages read whose signature verified / did not (their recipients dead-lettered
    # the latter: BAD_SIGNATURE); the first few of those, with why.
    signatures: dict[str, int] = field(default_factory=dict)
    signature_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "store": self.store.value,
            "events": self.events,
            "accounts": self.accounts,
            "transfers_acked": self.transfers_acked,
            "final": self.final,
            "in_flight": self.in_flight,
            "outcomes": dict(self.outcomes),
            "funded": self.funded,
            "balances": self.balances,
            "projection": self.projection,
            "signatures": self.signatures,
            "signature_problems": self.signature_problems,
            "violations": {i: self.violations.get(i, []) for i in INVARIANTS},
        }


def invariant_of(problem: str, default: str = "I5") -> str:
    """The invariant a fold's problem names as "(In)"."""
    for name in INVARIANTS:
        if f"({name})" in problem:
            return name
    return default
