"""What a soak reads from outside, decided purely: the live ledger from each node's /jsz, which
streams do not report a restarted node current yet, the soak's history settings, and the
restart times after the soak against before."""

from __future__ import annotations

import pytest
from nats.js.api import ClusterInfo, PeerInfo

from benchmark.archiver import fill_seconds, history_for
from benchmark.soak_figures import live_figures
from benchmark.soak_restarts import RestartTimes, lagging_streams
from benchmark.soak_result import restart_ratios
from eventsource.core.errors import ConfigError


def jsz(*streams: tuple[str, str | None, int, int]) -> dict:
    """A /jsz?streams=true answer: (stream, leader, subjects, messages) per stream."""
    details = [
        {
            "name": name,
            "cluster": {"leader": leader} if leader else {},
            "state": {"num_subjects": subjects, "messages": messages},
        }
        for name, leader, subjects, messages in streams
    ]
    return {"account_details": [{"name": "$G", "stream_detail": details}]}


def test_live_figures_sum_the_ledger_streams_as_their_leaders_report_them() -> None:
    reports = {
        "n1": jsz(("KV_ledger_0", "n1", 100, 400), ("KV_ledger_1", "n2", 9, 9)),
        "n2": jsz(("KV_ledger_0", "n1", 98, 390), ("KV_ledger_1", "n2", 50, 200)),
        "n3": jsz(("KV_ledger_0", "n1", 99, 395), ("KV_participants", "n3", 7, 7)),
    }
    assert live_figures(reports) == (150, 600)


def test_during_an_election_the_largest_report_of_a_stream_counts() -> None:
    reports = {
        "n1": jsz(("KV_ledger_0", None, 100, 400)),
        "n2": jsz(("KV_ledger_0", "n3", 120, 480)),  # n3 is down: nobody speaks as leader
    }
    assert live_figures(reports) == (120, 480)


def test_other_streams_and_missing_fields_do_not_count() -> None:
    reports = {
        "n1": jsz(("KV_participants", "n1", 5, 5), ("OBJ_ledger_archive", "n1", 3, 90)),
        "n2": {},
    }
    assert live_figures(reports) == (0, 0)


def peers(*spec: tuple[str, bool, bool]) -> list[PeerInfo]:
    return [PeerInfo(name=n, current=current, offline=offline) for n, current, offline in spec]


def test_a_node_is_current_on_streams_it_leads_or_replicates_currently() -> None:
    clusters = {
        "KV_ledger_0": ClusterInfo(leader="n2", replicas=peers(("n1", True, False))),
        "KV_participants": ClusterInfo(leader="n1", replicas=peers(("n2", False, False))),
        "single": None,  # a 1-node cluster's stream
    }
    assert lagging_streams("n1", clusters) == []


def test_a_node_catching_up_offline_or_on_a_leaderless_stream_is_not_current() -> None:
    clusters = {
        "a": ClusterInfo(leader="n2", replicas=peers(("n1", False, False))),
        "b": ClusterInfo(leader="n2", replicas=peers(("n1", True, True))),
        "c": ClusterInfo(leader=None, replicas=peers(("n1", True, False))),
    }
    assert lagging_streams("n1", clusters) == ["a", "b", "c"]


def test_a_stream_placed_on_other_nodes_only_does_not_wait_for_the_node() -> None:
    clusters = {"OBJ_ledger_archive": ClusterInfo(leader="n3", replicas=[])}  # an R1 stream
    assert lagging_streams("n1", clusters) == []


def test_a_soak_horizon_gets_half_of_it_as_period_and_a_small_clock_skew() -> None:
    history = history_for("2m")
    assert (history.horizon, history.period, history.max_clock_skew) == ("2m", "60000ms", "10000ms")
    short = history_for("20s")
    assert (short.period, short.max_clock_skew) == ("10000ms", "5000ms")
    assert history_for("forever").horizon == "forever"


def test_the_horizon_is_filled_for_horizon_skew_and_two_periods_before_the_first_timings() -> None:
    assert fill_seconds(history_for("2m")) == 120 + 10 + 2 * 60
    assert fill_seconds(history_for("8s")) == 8 + 2 + 2 * 4
    assert fill_seconds(history_for("forever")) == 0  # nothing leaves: "before" is the empty ledger


def test_a_horizon_that_is_not_a_duration_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="--horizon: '2 minutes' is not a duration"):
        history_for("2 minutes")


def test_restart_ratios_are_after_over_before() -> None:
    before = RestartTimes(service_s=1.0, node="n2", node_s=4.0, audit_s=0.0, audit_ok=True)
    after = RestartTimes(service_s=1.5, node="n2", node_s=4.0, audit_s=2.0, audit_ok=True)
    assert restart_ratios(before, after) == {"service_s": 1.5, "node_s": 1.0, "audit_s": None}
