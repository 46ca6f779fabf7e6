"""The invariants of DESIGN.md section 3, checked over a simulated network of participants."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from eventsource.core.account import EntryKind
from eventsource.core.events import TransferState
from eventsource.core.fold import Fold
from eventsource.core.model import Outcome, Side
from eventsource.core.protocol import Phase
from eventsource.core.subjects import account_key, incoming_key
from tests.unit.simulation import Network

K = EntryKind


def receiver_record(net: Network, n: str, state: TransferState) -> TransferState | None:
    p = state.transfer.creditor.participant
    if p not in net.banks:
        return None
    found = net.bank(p).states.get(incoming_key(p, n, state.transfer.id), (None, 0))[0]
    assert found is None or isinstance(found, TransferState)
    return found


def outgoing_records(net: Network) -> list[tuple[str, TransferState]]:
    return [
        (bank.name, state)
        for bank in net.banks.values()
        for state in bank.transfers().values()
        if state.side is Side.SUBMITTER
    ]


def check_no_overdraft(net: Network) -> None:
    """I2: available never negative; nothing pending is ever negative either."""
    for bank in net.banks.values():
        for key, account in bank.accounts().items():
            assert account.available >= 0, key
            assert account.pending_debits >= 0 and account.pending_credits >= 0, key


def check_conservation(net: Network) -> None:
    """I1: per currency, posted balances plus money debited at n but not yet credited at p
    equal the funding."""
    total: Counter[str] = Counter()
    for bank in net.banks.values():
        for account in bank.accounts().values():
            total[account.currency] += account.balance
    for n, state in outgoing_records(net):
        if state.phase is Phase.SETTLED and state.outcome is Outcome.OK:
            at_p = receiver_record(net, n, state)
            assert at_p is not None and at_p.outcome is Outcome.OK, state.transfer.id
            if at_p.phase is not Phase.CONFIRMED:
                total[state.transfer.currency] += state.transfer.minor
    assert total == net.funded


def check_pending_money_matches_open_transfers(net: Network) -> None:
    """Every pending debit is an open reservation and every pending credit an open acceptance."""
    for bank in net.banks.values():
        debits: Counter[str] = Counter()
        credits: Counter[str] = Counter()
        for state in bank.transfers().values():
            if state.side is Side.SUBMITTER and state.phase is Phase.RESERVED:
                debits[account_key(bank.name, state.transfer.debtor.account)] += (
                    state.transfer.minor
                )
            if state.phase is Phase.DECIDED and state.outcome is Outcome.OK:
                key = account_key(bank.name, state.transfer.creditor.account)
                credits[key] += state.transfer.minor
        for key, account in bank.accounts().items():
            assert account.pending_debits == debits[key], key
            assert account.pending_credits == credits[key], key


def check_each_entry_once(net: Network) -> None:
    """I3: no ledger entry (account, kind, transfer) is ever written twice."""
    for bank in net.banks.values():
        twice = [entry for entry, count in bank.entries().items() if count > 1]
        assert twice == [], twice


@dataclass
class FinalityWatch:
    """I4: once final, a transfer's outcome never changes."""

    seen: dict[tuple[str, str], tuple] = field(default_factory=dict)

    def check(self, net: Network) -> None:
        for bank in net.banks.values():
            for key, state in bank.transfers().items():
                if state.final:
                    fact = (state.digest, state.outcome, state.cause)
                    assert self.seen.setdefault((bank.name, key), fact) == fact, key


def check_every_step(net: Network, watch: FinalityWatch) -> None:
    check_no_overdraft(net)
    check_conservation(net)
    check_pending_money_matches_open_transfers(net)
    check_each_entry_once(net)
    watch.check(net)


def check_final_and_agreed(net: Network) -> None:
    """I4 and I7 at rest: every transfer final on both sides, with the same outcome and cause
    (OK, REJECTED or CANCELLED)."""
    assert net.in_flight == []
    for n, state in outgoing_records(net):
        assert state.phase is Phase.SETTLED and state.outcome is not None, state
        at_p = receiver_record(net, n, state)
        must_know = (
            state.transfer.creditor.participant in net.known
            and state.transfer.debtor.participant == n
        )
        if not must_know:
            assert at_p is None
            continue
        assert at_p is not None, f"{state.transfer.id} is unknown at its receiver (I7)"
        assert at_p.phase is Phase.CONFIRMED
        assert (at_p.digest, at_p.outcome, at_p.cause) == (state.digest, state.outcome, state.cause)
    for bank in net.banks.values():
        for state in bank.transfers().values():
            assert state.final, state


def check_money_moved_once_or_not_at_all(net: Network, funding: dict[str, int]) -> None:
    """I3 per transfer: an OK transfer moved its amount exactly once, any other moved nothing
    (a CANCELLED one may have reserved and pended, then voided both)."""
    kinds: dict[tuple[str, str], list[EntryKind]] = defaultdict(list)
    for bank in net.banks.values():
        for (key, kind, ref), count in bank.entries().items():
            kinds[(key, ref)] += [kind] * count
    expected = Counter(funding)
    for n, state in outgoing_records(net):
        transfer = state.transfer
        debtor = account_key(n, transfer.debtor.account)
        made = sorted(kinds.get((debtor, transfer.id), []))
        if state.outcome is Outcome.OK:
            assert made == sorted([K.RESERVED, K.DEBITED]), transfer.id
            expected[debtor] -= transfer.minor
            expected[account_key(transfer.creditor.participant, transfer.creditor.account)] += (
                transfer.minor
            )
        else:
            assert made in ([], sorted([K.RESERVED, K.VOIDED])), transfer.id
        at_p = receiver_record(net, n, state)
        if at_p is not None:
            p = transfer.creditor.participant
            credit = kinds.get((account_key(p, transfer.creditor.account), f"{n}.{transfer.id}"))
            if at_p.outcome is Outcome.OK:
                assert sorted(credit or []) == sorted([K.CREDIT_PENDING, K.CREDITED])
            elif at_p.outcome is Outcome.CANCELLED:  # a credit accepted, then voided, or none
                assert sorted(credit or []) in ([], sorted([K.CREDIT_PENDING, K.CREDIT_VOIDED]))
            else:
                assert credit is None
    balances = {
        key: account.balance for b in net.banks.values() for key, account in b.accounts().items()
    }
    assert balances == {key: expected[key] for key in balances}


def check_fold_equals_state(net: Network, fold: Fold) -> None:
    """I5: re-folding every event reports no problem and rebuilds the exact state."""
    assert fold.problems == []
    assert fold.accounts == {k: a for b in net.banks.values() for k, a in b.accounts().items()}
    assert fold.transfers == {k: t for b in net.banks.values() for k, t in b.transfers().items()}
    assert Counter(fold.funded) == net.funded
