"""The network most unit tests start from (the `net` fixture), and the funding they assert on."""

from __future__ import annotations

from tests.unit.simulation import Network

ALICE_FUNDS = 100_00  # EUR 100.00 on n/alice


def two_banks() -> Network:
    """n with alice (EUR 100.00) and carol (JPY 5000), p with bob (EUR, empty) and yuki (JPY,
    empty). Both know each other."""
    network = Network.of("n", "p")
    network.open_account("n", "alice", "EUR", ALICE_FUNDS)
    network.open_account("n", "carol", "JPY", 5000)
    network.open_account("p", "bob", "EUR")
    network.open_account("p", "yuki", "JPY")
    return network
