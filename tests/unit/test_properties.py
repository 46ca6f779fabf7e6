"""Random transfers between 2-4 participants, duplicated, reordered and grouped in flight, always
come to rest final and agreed, with money conserved and moved at most once (DESIGN.md 3).

Every delivery is one commit of the pure steps over a WorkSet (tests/unit/simulation.py); the
invariants are checked after each one, and the whole ledger is re-folded at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from hypothesis import event, given, settings
from hypothesis import strategies as st

from eventsource.core.errors import DomainError, RejectionCause
from eventsource.core.model import (
    Outcome,
    TransferRequest,
    as_recorded,
    validate_transfer,
)
from eventsource.core.subjects import account_key, outgoing_key
from tests.unit.ledger_checks import (
    FinalityWatch,
    check_every_step,
    check_final_and_agreed,
    check_fold_equals_state,
    check_money_moved_once_or_not_at_all,
)
from tests.unit.simulation import Network, fold_network, recipient_of, request

BANKS = ("b0", "b1", "b2", "b3")
OUTSIDER = "b9"  # named by transfers, but not a participant
ACCOUNTS = {"eur": "EUR", "yen": "JPY"}  # every bank has both; "ghost" exists nowhere
EXPONENTS = {"EUR": 2, "JPY": 0}  # written out here, not taken from the code under test
INVALID_AMOUNTS = ["0", "0.00", "-1.00", "1.001", "NaN", "1e3", 12.5]
MAX_RANDOM_STEPS = 80


@dataclass(frozen=True)
class Plan:
    submitter: str
    submits: list[TransferRequest]  # the same transfer each time, its amount spelled freely
    minor: int | None  # the amount in minor units; None when it is not a valid amount
    conflicting: bool  # whether the client also reuses the id with other content

    @property
    def conflict(self) -> TransferRequest:
        return msgspec.structs.replace(self.submits[0], comment="other content")


@dataclass(frozen=True)
class Scenario:
    banks: tuple[str, ...]
    funding: dict[str, int]  # account key -> minor units
    plans: list[Plan]


def spelled(minor: int, currency: str, style: int) -> str:
    """One amount as a client may write it: canonical ("12.30"), short ("12.3"), padded."""
    exponent = EXPONENTS[currency]
    whole, fraction = divmod(minor, 10**exponent)
    canonical = f"{whole}.{fraction:0{exponent}d}" if exponent else str(whole)
    if style == 1 and exponent:
        return canonical.rstrip("0").rstrip(".")
    return "0" + canonical if style == 2 else canonical


@st.composite
def plans(draw, n: str, banks: tuple[str, ...], transfer_id: str) -> Plan:
    """Mostly well-formed transfers between two banks; a quarter with anything in any field.
    Amounts go up to EUR 40.00 or JPY 4000, against funding of up to 50.00 or 5000."""
    currency = draw(st.sampled_from(["EUR", "EUR", "JPY"]))
    account = "eur" if currency == "EUR" else "yen"
    if draw(st.integers(0, 3)) > 0:
        debtor = (n, account)
        creditor = (draw(st.sampled_from([b for b in banks if b != n])), account)
    else:
        accounts = st.sampled_from(["eur", "yen", "ghost"])
        foreign = draw(st.integers(0, 3)) == 0
        debtor_bank = draw(st.sampled_from([b for b in banks if b != n])) if foreign else n
        debtor = (debtor_bank, draw(accounts))
        creditor = (draw(st.sampled_from([*banks, OUTSIDER])), draw(accounts))
    minor = draw(st.integers(1, 4000)) if draw(st.integers(0, 9)) > 0 else None
    bad = draw(st.sampled_from(INVALID_AMOUNTS))
    submits = [
        request(
            transfer_id,
            bad if minor is None else spelled(minor, currency, draw(st.integers(0, 2))),
            debtor=debtor,
            creditor=creditor,
            currency=currency,
        )
        for _ in range(draw(st.integers(1, 3)))
    ]
    return Plan(n, submits, minor, conflicting=draw(st.integers(0, 7)) == 0)


@st.composite
def scenarios(draw) -> Scenario:
    banks = BANKS[: draw(st.integers(2, 4))]
    funding = {}
    for bank in banks:
        funding[account_key(bank, "eur")] = draw(st.integers(0, 50_00))
        funding[account_key(bank, "yen")] = draw(st.integers(0, 5000))
    n_of = [draw(st.sampled_from(banks)) for _ in range(draw(st.integers(1, 8)))]
    return Scenario(banks, funding, [draw(plans(n, banks, f"t{i}")) for i, n in enumerate(n_of)])


def digest_at(n: str, transfer: TransferRequest) -> str:
    try:
        return validate_transfer(transfer, n).digest
    except DomainError:
        return as_recorded(transfer).digest


Outcomes = set[tuple[Outcome, RejectionCause | None]]


def possible_outcomes(plan: Plan, scenario: Scenario) -> Outcomes:
    """What the rules allow, in the order n and p check them; only funds depend on timing."""
    transfer, n, minor = plan.submits[0], plan.submitter, plan.minor

    def rejected(cause: RejectionCause) -> Outcomes:
        return {(Outcome.REJECTED, cause)}

    if transfer.debtor.participant != n:
        return rejected(RejectionCause.INVALID_TRANSFER)
    if minor is None:
        return rejected(RejectionCause.INVALID_AMOUNT)
    if transfer.debtor == transfer.creditor:
        return rejected(RejectionCause.SAME_ACCOUNT)
    if transfer.creditor.participant not in scenario.banks:
        return rejected(RejectionCause.UNKNOWN_PARTICIPANT)
    held = ACCOUNTS.get(transfer.debtor.account)
    if held != transfer.currency:
        return rejected(
            RejectionCause.UNKNOWN_ACCOUNT if held is None else RejectionCause.CURRENCY_MISMATCH
        )
    supply = sum(m for key, m in scenario.funding.items() if key.endswith(transfer.debtor.account))
    if minor > supply:
        return rejected(RejectionCause.INSUFFICIENT_FUNDS)
    credited = ACCOUNTS.get(transfer.creditor.account)
    if credited == transfer.currency:
        at_p = (Outcome.OK, None)
    elif credited is None:
        at_p = (Outcome.REJECTED, RejectionCause.UNKNOWN_ACCOUNT)
    else:
        at_p = (Outcome.REJECTED, RejectionCause.CURRENCY_MISMATCH)
    return {(Outcome.REJECTED, RejectionCause.INSUFFICIENT_FUNDS), at_p}


def build(scenario: Scenario) -> Network:
    net = Network.of(*scenario.banks)
    for bank in scenario.banks:
        for name, currency in ACCOUNTS.items():
            net.open_account(bank, name, currency, scenario.funding[account_key(bank, name)])
    for plan in scenario.plans:
        for submit in plan.submits:
            net.submit(plan.submitter, submit)
        if plan.conflicting:
            net.submit(plan.submitter, plan.conflict)
    return net


def deliver_randomly(net: Network, data: st.DataObject) -> None:
    """One delivery: any message in flight (reordering), maybe with others for the same
    recipient (group commit), some kept in flight to come again (redelivery)."""
    first = data.draw(st.integers(0, len(net.in_flight) - 1))
    recipient = recipient_of(net.in_flight[first][0])
    others = [
        i
        for i, (subject, _) in enumerate(net.in_flight)
        if i != first and recipient_of(subject) == recipient
    ]
    extra = data.draw(st.lists(st.sampled_from(others), max_size=2, unique=True)) if others else []
    picks = [first, *extra]
    keep = frozenset(i for i in picks if data.draw(st.integers(0, 4)) == 0)
    net.deliver(picks, keep=keep, optimistic=data.draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(scenario=scenarios(), data=st.data())
def test_random_transfers_end_final_agreed_and_conserved_whatever_the_network_does(scenario, data):
    net = build(scenario)
    watch = FinalityWatch()
    check_every_step(net, watch)
    for _ in range(MAX_RANDOM_STEPS):
        if not net.in_flight:
            break
        deliver_randomly(net, data)
        check_every_step(net, watch)
    while net.in_flight:  # then every message in flight arrives, once, in order
        net.deliver_next()
        check_every_step(net, watch)

    check_final_and_agreed(net)
    check_money_moved_once_or_not_at_all(net, scenario.funding)
    check_fold_equals_state(net, fold_network(net))

    dead_letters = [(bank.name, d) for bank in net.banks.values() for d in bank.dead_letters]
    assert all(d.reason == RejectionCause.ID_CONFLICT for _, d in dead_letters), dead_letters
    for plan in scenario.plans:
        n, transfer_id = plan.submitter, plan.submits[0].id
        state = net.bank(n).transfers()[outgoing_key(n, transfer_id)]  # I7: every id is known
        # Every spelling of the amount is the same transfer; only other content conflicts.
        assert {digest_at(n, submit) for submit in plan.submits} == {digest_at(n, plan.submits[0])}
        first_come = plan.submits[0] if state.digest == digest_at(n, plan.submits[0]) else None
        if first_come is None:
            assert plan.conflicting and state.digest == digest_at(n, plan.conflict)
        assert (state.outcome, state.cause) in possible_outcomes(plan, scenario)
        event(f"outcome {state.outcome} {state.cause or ''}")
        refused = [
            msgspec.json.decode(d.payload, type=TransferRequest)
            for b, d in dead_letters
            if b == n and d.reason == RejectionCause.ID_CONFLICT
        ]
        mine = [r for r in refused if r.id == transfer_id]
        assert all(digest_at(n, r) != state.digest for r in mine)
        assert bool(mine) == plan.conflicting  # exactly the reused ids were refused
