"""Prometheus metrics of one `natsbank serve` process (one registry per process).

Counters the services already keep (ServiceStats, CoreStats) are read at scrape time; what
needs the decided work set (transfers by outcome, ACK-to-final latency, dead letters by reason)
is reported by the service after each successful commit, through the Observer interface.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from eventsource.core.events import TransferState
from eventsource.core.messages import SubmitTransfers
from eventsource.core.model import Side
from eventsource.core.shared.layout import TransferDecision
from eventsource.core.trace import trace_id

log = logging.getLogger("natsbank.service")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
REMEMBERED_ACKS = 200_000  # ACK times kept per process, oldest dropped first


class Observer:
    """What a participant service reports; this base reports nowhere (no metrics port)."""

    def committed(self, participant: str, group: Iterable, ws) -> None:
        for letter in ws.dead_letters:
            _log_dead_letter(letter.reason, letter.detail, letter.payload, ws)

    def poisoned(self, participant: str, reason: str) -> None:
        pass


NO_OBSERVER = Observer()


class ServiceMetrics(Observer):
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.transfers = Counter(
            "natsbank_transfers",
            "Transfer records that reached their final outcome, per side.",
            ["participant", "side", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "natsbank_ack_to_final_seconds",
            "Submitter side: from the submission's JetStream timestamp (the ACK) to the commit "
            "that settled the transfer; only for transfers this process admitted.",
            ["participant"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter(
            "natsbank_dead_letters",
            "Dead letters written, by reason.",
            ["participant", "reason"],
            registry=r,
        )
        self.pending = Gauge(
            "natsbank_consumer_pending",
            "Inbox messages not yet delivered (consumer num_pending), sampled periodically.",
            ["participant", "consumer"],
            registry=r,
        )
        self.ack_pending = Gauge(
            "natsbank_consumer_ack_pending",
            "Inbox messages delivered and not yet acked (consumer num_ack_pending).",
            ["participant", "consumer"],
            registry=r,
        )
        self.services: list = []
        r.register(_StatsCollector(self.services))
        self._acked: OrderedDict[tuple[str, str], float] = OrderedDict()

    def watch(self, services: list) -> None:
        self.services.extend(services)

    def committed(self, participant: str, group: Iterable, ws) -> None:
        super().committed(participant, group, ws)
        now = time.time()
        for entry in group:
            if isinstance(entry.message, SubmitTransfers) and (at := _stored_at(entry.msg)):
                for request in entry.message.transfers:
                    self._acked.setdefault((participant, request.id), at)
        while len(self._acked) > REMEMBERED_ACKS:
            self._acked.popitem(last=False)
        for key, state in ws.changed_states.items():
            final = _final(state)
            if final is None or _final(ws.loaded.get(key, (None, 0))[0]) is not None:
                continue  # not final, or final already before this commit
            side, outcome = final
            self.transfers.labels(participant, side, outcome).inc()
            if side == Side.SUBMITTER:
                acked = self._acked.pop((participant, state.transfer.id), None)
                if acked is not None:
                    self.latency.labels(participant).observe(max(0.0, now - acked))
        for letter in ws.dead_letters:
            self.dead_letters.labels(participant, letter.reason).inc()

    def poisoned(self, participant: str, reason: str) -> None:
        self.dead_letters.labels(participant, reason).inc()


def _final(state: object) -> tuple[str, str] | None:
    """(side, outcome) of a final transfer record: either store's."""
    if isinstance(state, TransferDecision):  # the shared store's record: final when written
        return Side.SUBMITTER.value, state.outcome.value
    if isinstance(state, TransferState) and state.final:
        return state.side.value, state.outcome.value if state.outcome else "NONE"
    return None


def _stored_at(msg) -> float | None:
    """When JetStream stored the message (the ACK); None for a core message."""
    try:
        return msg.metadata.timestamp.timestamp()
    except Exception:  # not a JetStream delivery
        return None


def _log_dead_letter(reason: str, detail: str, payload: bytes, ws) -> None:
    try:
        item = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        item = {}
    item = item if isinstance(item, dict) else {}
    transfer = item.get("transfer")
    tid = item.get("id") or (transfer.get("id") if isinstance(transfer, dict) else None)
    tid = tid if isinstance(tid, str) else None
    trace = trace_id(item.get("trace")) or trace_id(ws.traces.get(tid or ""))
    log.warning(
        "dead letter %s for transfer %s: %s",
        reason,
        tid,
        detail,
        extra={"transfer_id": tid, "trace_id": trace, "participant": ws.participant},
    )


# ServiceStats / CoreStats field -> (metric name, help), read at scrape time.
_STATS = {
    "groups": ("natsbank_groups", "Groups committed."),
    "messages": ("natsbank_messages", "Inbox messages (or pieces) committed."),
    "conflicts": (
        "natsbank_commit_conflicts",
        "Commits refused for stale state (another instance moved first); decided again.",
    ),
    "retries": ("natsbank_commit_retries", "Commit attempts that failed or got no answer."),
    "redelivered": (
        "natsbank_redeliveries",
        "Inbox deliveries the server made more than once (num_delivered > 1).",
    ),
    "outbox_messages": (
        "natsbank_outbox_messages",
        "Protocol messages committed to the ledger (JetStream mode).",
    ),
}
_CORE_STATS = {
    "published": ("natsbank_core_published", "Core mode: protocol messages published."),
    "shed": (
        "natsbank_core_shed",
        "Core mode: messages dropped at the door because the inbox queue was full.",
    ),
    "shed_unconfirmed": (
        "natsbank_core_shed_unconfirmed",
        "Core mode: postings left undecided because their sender had its bound of records "
        "waiting for its confirmation.",
    ),
    "resent_items": ("natsbank_core_resent_items", "Core mode: transfers resent on a timer."),
    "resent_messages": (
        "natsbank_core_resent_messages",
        "Core mode: protocol messages resent on the resend clock.",
    ),
}


class _StatsCollector(Collector):
    def __init__(self, services: list) -> None:
        self.services = services

    def collect(self) -> Iterator:
        families = {
            field: CounterMetricFamily(name, doc, labels=["participant"])
            for field, (name, doc) in (_STATS | _CORE_STATS).items()
        }
        quarantined = GaugeMetricFamily(
            "natsbank_quarantined_records",
            "Records this process found undecodable in the ledger: never decided on.",
            labels=["participant"],
        )
        waiting = GaugeMetricFamily(
            "natsbank_core_waiting",
            "Core mode: records waiting for an answer.",
            labels=["participant"],
        )
        stages = CounterMetricFamily(
            "natsbank_stage_seconds",
            "Wall seconds an instance spent per stage of its loop (services/stopwatch.py).",
            labels=["participant", "stage"],
        )
        for service in self.services:
            p = service.participant
            for stage, seconds in service.stopwatch.seconds.items():
                stages.add_metric([p, str(stage)], seconds)
            for name in _STATS:
                families[name].add_metric([p], getattr(service.stats, name))
            quarantined.add_metric([p], len(service.quarantined()))
            figures = service.carrier.figures()
            for name in _CORE_STATS:
                if name in figures:
                    families[name].add_metric([p], figures[name])
            if "waiting" in figures:
                waiting.add_metric([p], figures["waiting"])
        yield from families.values()
        yield stages
        yield waiting
        yield quarantined
