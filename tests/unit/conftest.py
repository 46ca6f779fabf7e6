"""Fixtures for the pure core: in-memory banks, no NATS."""

from __future__ import annotations

import pytest

from tests.unit.simulation import Network
from tests.unit.two_banks import two_banks


@pytest.fixture
def net() -> Network:
    """Two participants: n with alice (EUR 100.00) and carol (JPY 5000), p with bob (EUR, empty)
    and yuki (JPY, empty). Both know each other."""
    return two_banks()
