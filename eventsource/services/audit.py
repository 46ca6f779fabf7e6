"""`natsbank audit` and `replay`: fold the whole ledger and check I1-I5 and I7 against it and
against the KV buckets. A violation is listed under the invariant it breaks."""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client

from eventsource.adapters.registry import registered_participants
from eventsource.adapters.stream_reader import read_messages
from eventsource.core.compact_fold import CompactFold
from eventsource.core.events import (
    account_event_decoder,
    transfer_event_decoder,
)
from eventsource.core.messages import SubmitTransfers, inbox_decoder
from eventsource.core.model import Outcome, Side, is_token
from eventsource.core.money import format_amount
from eventsource.core.protocol import Phase
from eventsource.core.subjects import (
    incoming_key,
    is_account_key,
    key_of_subject,
    ledger_stream,
    outgoing_key,
    parse_inbox_subject,
)
from eventsource.services.audit_kv import check_kv
from eventsource.services.audit_report import AuditReport, invariant_of


@dataclass
class LedgerFold:
    """The fold of every partition, the ACKed submissions (submitter.id -> receiver), the number
    of events read, and per partition the last sequence folded: the cut the audit checks KV at."""

    fold: CompactFold = field(default_factory=CompactFold)
    acked: dict[str, str] = field(default_factory=dict)
    events: int = 0
    cuts: list[int] = field(default_factory=list)


async def fold_ledger(nc: Client, partitions: int) -> LedgerFold:
    """Fold every event, read exactly (up to what each stream leader had when the read began)."""
    folded = LedgerFold()
    fold, acked = folded.fold, folded.acked
    for k in range(partitions):
        cut = 0
        async for msg in read_messages(nc, ledger_stream(k)):
            subject, data, seq = msg.subject, msg.data, msg.metadata.sequence.stream
            folded.events, cut = folded.events + 1, seq
            key = key_of_subject(subject)
            try:
                if key is not None and is_account_key(key):
                    fold.fold_account(key, account_event_decoder.decode(data), seq)
                elif key is not None:
                    fold.fold_transfer(key, transfer_event_decoder.decode(data), seq)
                elif (where := parse_inbox_subject(subject)) and where[2] == "submit":
                    message = inbox_decoder.decode(data)
                    if isinstance(message, SubmitTransfers):
                        for t in message.transfers:
                            if is_token(t.id):
                                acked[f"{where[1]}.{t.id}"] = sys.intern(t.creditor.participant)
            except msgspec.DecodeError:
                if key is not None:  # inbox junk is the dead-letter stream's business
                    fold.problems.append(
                        f"{subject}: undecodable event, the record is quarantined (I5)"
                    )
        folded.cuts.append(cut)
    return folded


async def audit(nc: Client, partitions: int, *, expect_final: bool) -> AuditReport:
    folded = await fold_ledger(nc, partitions)
    fold, acked = folded.fold, folded.acked
    report = AuditReport(events=folded.events, accounts=len(fold.accounts))
    v = report.violations
    for problem in fold.problems:
        v[invariant_of(problem)].append(problem)
    registered = {r.participant for r in await registered_participants(nc)}
    _check_conservation(fold, report)
    for key, account in fold.accounts.items():
        if account.available < 0:
            v["I2"].append(f"{key}: available {account.available} < 0")
    report.transfers_acked = len(acked)
    for ack_key, receiver in acked.items():
        submitter, transfer_id = ack_key.split(".", 1)
        mine = fold.transfers.get(outgoing_key(submitter, transfer_id))
        if mine is None:
            v["I7"].append(f"{ack_key}: ACKed but unknown to the submitter")
            continue
        theirs = fold.transfers.get(incoming_key(receiver, submitter, transfer_id))
        # A receiver exists for every transfer except those to an unregistered participant
        # (steps.receiver_must_know, on the mark).
        needs_receiver = mine.receiver in registered and mine.debtor == submitter
        if theirs is None and needs_receiver and expect_final:
            v["I7"].append(f"{ack_key}: ACKed but unknown to the receiver {receiver}")
        done = mine.final and (
            theirs.phase is Phase.CONFIRMED if theirs is not None else not needs_receiver
        )
        if done:
            report.final += 1
            report.outcomes[str(mine.outcome)] += 1
        else:
            report.in_flight += 1
            if expect_final:
                v["I4"].append(
                    f"{ack_key}: not final ({mine.phase}, receiver "
                    f"{theirs.phase if theirs else 'none'})"
                )
        if (
            theirs is not None
            and theirs.outcome
            and mine.outcome
            and theirs.outcome != mine.outcome
        ):
            v["I4"].append(f"{ack_key}: submitter says {mine.outcome}, receiver {theirs.outcome}")
    await check_kv(nc, partitions, fold, report, folded.cuts)
    return report


def _check_conservation(fold: CompactFold, report: AuditReport) -> None:
    """Per currency: posted balances + money in flight (debited at n, not yet credited at p)
    equal the funding. Pending debits and credits must match the open transfers too."""
    balance: dict[str, int] = defaultdict(int)
    for account in fold.accounts.values():
        balance[account.currency] += account.balance
    in_flight: dict[str, int] = defaultdict(int)
    for key, mark in fold.transfers.items():
        if mark.side is not Side.SUBMITTER or mark.outcome is not Outcome.OK:
            continue
        submitter, _, transfer_id = key.split(".", 2)
        theirs = fold.transfers.get(incoming_key(mark.receiver, submitter, transfer_id))
        if theirs is None or theirs.phase is not Phase.CONFIRMED:
            in_flight[mark.currency] += mark.minor
    for currency in set(balance) | set(fold.funded):
        total = balance[currency] + in_flight[currency]
        report.funded[currency] = format_amount(fold.funded[currency], currency)
        report.balances[currency] = format_amount(balance[currency], currency)
        if total != fold.funded[currency]:
            report.violations["I1"].append(
                f"{currency}: balances {format_amount(balance[currency], currency)} + in flight "
                f"{format_amount(in_flight[currency], currency)} != funded "
                f"{format_amount(fold.funded[currency], currency)}"
            )


async def read_stream(nc: Client, stream: str, subject: str | None = None):
    """Every message of a stream in order, as (subject, data)."""
    async for msg in read_messages(nc, stream, [subject] if subject else None):
        yield msg.subject, msg.data
