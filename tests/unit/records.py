"""What a unit test reads off a simulated network: either side's record of a transfer, and an
account's money."""

from __future__ import annotations

from eventsource.core.account import Account
from eventsource.core.events import TransferState
from eventsource.core.subjects import incoming_key, outgoing_key
from tests.unit.simulation import Network


def outgoing(net: Network, transfer_id: str, n: str = "n") -> TransferState:
    state = net.bank(n).states[outgoing_key(n, transfer_id)][0]
    assert isinstance(state, TransferState)
    return state


def incoming(net: Network, transfer_id: str, n: str = "n", p: str = "p") -> TransferState | None:
    state = net.bank(p).states.get(incoming_key(p, n, transfer_id), (None, 0))[0]
    assert state is None or isinstance(state, TransferState)
    return state


def money(account: Account) -> tuple[int, int, int]:
    return account.balance, account.pending_debits, account.pending_credits
