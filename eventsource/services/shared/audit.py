"""`natsbank audit --store shared`: fold the whole shared stream and check I1-I5 and I7
against it and against the KV bucket. A violation is listed under the invariant it breaks.
(I6, the projection, is checked by the CLI: cli/audit.py, projections/compare.py.)"""

from __future__ import annotations

from collections import defaultdict

import msgspec
from nats.aio.client import Client

from eventsource.adapters.key_registry import operator_keys
from eventsource.adapters.stream_reader import read_messages
from eventsource.adapters.views import kv_revisions
from eventsource.core.events import AccountSnapshot, account_event_decoder
from eventsource.core.messages import SubmitTransfers, inbox_decoder
from eventsource.core.model import is_token
from eventsource.core.money import format_amount
from eventsource.core.shared.fold import SharedFold
from eventsource.core.shared.layout import (
    SHARED_BUCKET,
    SHARED_STREAM,
    is_transfer_key,
    key_of_shared_subject,
    shared_transfer_decoder,
    submitter_of_submit_subject,
    transfer_key,
)
from eventsource.services.audit_report import AuditReport, invariant_of
from eventsource.settings import Store


async def fold_shared(nc: Client) -> tuple[SharedFold, set[str], int, int]:
    """Fold every event of KV_shared, read exactly; also return the ACKed transfers' record
    keys, the number of events and the last sequence folded (the cut KV is checked at)."""
    fold = SharedFold(operator_keys=tuple(await operator_keys(nc)))
    acked: set[str] = set()
    count = cut = 0
    async for msg in read_messages(nc, SHARED_STREAM):
        count, cut = count + 1, msg.seq
        key = key_of_shared_subject(msg.subject)
        try:
            if key is not None and is_transfer_key(key):
                fold.transfer_event(key, shared_transfer_decoder.decode(msg.data))
            elif key is not None:
                fold.account_event(key, account_event_decoder.decode(msg.data))
            elif submitter := submitter_of_submit_subject(msg.subject):
                message = inbox_decoder.decode(msg.data)
                if isinstance(message, SubmitTransfers):
                    acked |= {
                        transfer_key(submitter, t.id) for t in message.transfers if is_token(t.id)
                    }
        except msgspec.DecodeError:
            if key is not None:  # inbox junk is the dead-letter stream's business
                fold.problems.append(
                    f"{msg.subject}: undecodable event, the record is quarantined (I5)"
                )
    fold.check_postings()
    return fold, acked, count, cut


async def audit_shared(nc: Client, *, expect_final: bool) -> AuditReport:
    fold, acked, events, cut = await fold_shared(nc)
    report = AuditReport(store=Store.SHARED, events=events, accounts=len(fold.accounts))
    v = report.violations
    for problem in fold.problems:
        v[invariant_of(problem)].append(problem)
    _check_conservation(fold, report)
    report.transfers_acked = len(acked)
    for key in sorted(acked):
        decision = fold.decisions.get(key)
        if decision is None:
            report.in_flight += 1
            if expect_final:
                v["I7"].append(f"{key}: ACKed but never decided (unknown to the store)")
                v["I4"].append(f"{key}: ACKed but has no final outcome")
            continue
        report.final += 1
        report.outcomes[str(decision.outcome)] += 1
    await _check_kv(nc, fold, report, cut)
    return report


def _check_conservation(fold: SharedFold, report: AuditReport) -> None:
    """Per currency, balances equal the funding: nothing is ever in flight in this store."""
    balance: dict[str, int] = defaultdict(int)
    for account in fold.accounts.values():
        balance[account.currency] += account.balance
    for currency in sorted(set(balance) | set(fold.funded)):
        report.funded[currency] = format_amount(fold.funded[currency], currency)
        report.balances[currency] = format_amount(balance[currency], currency)
        if balance[currency] != fold.funded[currency]:
            report.violations["I1"].append(
                f"{currency}: balances {report.balances[currency]} != funded "
                f"{report.funded[currency]}"
            )


async def _check_kv(nc: Client, fold: SharedFold, report: AuditReport, cut: int) -> None:
    """I5: the latest revision of every key equals the state folded from all its events. The
    revisions are read exactly; a key written after the fold's `cut` is not compared."""
    latest = await kv_revisions(nc, SHARED_BUCKET)
    for key, (data, seq) in latest.items():
        if seq > cut:
            continue
        if is_transfer_key(key):
            same = fold.decisions.get(key) == shared_transfer_decoder.decode(data).state
        else:
            folded = fold.accounts.get(key)
            same = folded is not None and (
                AccountSnapshot.of(folded) == account_event_decoder.decode(data).state
            )
        if not same:
            report.violations["I5"].append(f"{key}: KV differs from the events")
    for key in sorted((set(fold.accounts) | set(fold.decisions)) - set(latest)):
        report.violations["I5"].append(f"{key} is missing from KV")
