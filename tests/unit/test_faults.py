"""The fault plan: parsed strictly, drawn reproducibly, in the asked proportions."""

from __future__ import annotations

import pytest

from eventsource.core.errors import ConfigError
from eventsource.core.faults import Fate, FaultInjector, FaultPlan


def test_a_plan_round_trips_through_its_text_form():
    plan = FaultPlan.parse("drop=0.1,duplicate=0.05,delay=0.2,max_delay=0.5,seed=7")
    assert plan == FaultPlan(drop=0.1, duplicate=0.05, delay=0.2, max_delay=0.5, seed=7)
    assert FaultPlan.parse(plan.encode()) == plan
    assert not FaultPlan.parse("").active


@pytest.mark.parametrize(
    "text", ["drop", "drop=x", "lose=0.1", "drop=1.5", "drop=0.6,duplicate=0.6", "max_delay=-1"]
)
def test_a_bad_plan_is_a_config_error(text):
    with pytest.raises(ConfigError):
        FaultPlan.parse(text)


def test_the_same_seed_and_salt_give_the_same_fates():
    plan = FaultPlan(drop=0.3, duplicate=0.2, delay=0.2, seed=5)
    first = [FaultInjector(plan, "i1").fate() for _ in range(1)]
    a, b, c = FaultInjector(plan, "i1"), FaultInjector(plan, "i1"), FaultInjector(plan, "i2")
    run_a = [a.fate() for _ in range(200)]
    assert run_a == [b.fate() for _ in range(200)]
    assert run_a != [c.fate() for _ in range(200)]
    assert first[0] == run_a[0]


def test_fates_come_in_the_planned_proportions():
    injector = FaultInjector(FaultPlan(drop=0.2, duplicate=0.1, delay=0.1, max_delay=0.3, seed=1))
    draws = [injector.fate() for _ in range(20000)]
    share = {fate: injector.counts[fate] / len(draws) for fate in Fate}
    assert abs(share[Fate.DROP] - 0.2) < 0.02
    assert abs(share[Fate.DUPLICATE] - 0.1) < 0.02
    assert abs(share[Fate.DELAY] - 0.1) < 0.02
    assert all(0 <= d <= 0.3 for fate, d in draws if fate is Fate.DELAY)
    assert all(d == 0 for fate, d in draws if fate is not Fate.DELAY)


def test_no_plan_delivers_everything_and_counts_nothing():
    injector = FaultInjector(FaultPlan())
    assert {injector.fate() for _ in range(100)} == {(Fate.DELIVER, 0.0)}
    assert sum(injector.counts.values()) == 0
