"""`natsbank audit` and `replay`: fold the whole ledger and check I1-I5, I7 and I8 against it
and against the KV buckets, and verify the signature of every protocol message it reads. A
violation is listed under the invariant it breaks."""

from __future__ import annotations

import functools
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client

from eventsource.adapters.key_registry import operator_keys, registered_signing_keys
from eventsource.adapters.registry import registered_participants
from eventsource.adapters.stream_reader import read_messages
from eventsource.core.archive_fold import CARRIED_HEADER, CutFold
from eventsource.core.archive_head import Totals
from eventsource.core.compact_fold import CompactFold, TransferMark
from eventsource.core.history import KEEP_EVERYTHING, History
from eventsource.core.messages import SubmitTransfers, inbox_decoder
from eventsource.core.model import is_token
from eventsource.core.money import format_amount
from eventsource.core.protocol import Phase
from eventsource.core.subjects import (
    incoming_key,
    key_of_subject,
    ledger_stream,
    outgoing_key,
    parse_inbox_subject,
)
from eventsource.services.audit_archive import ArchiveView, archive_held, read_archive_view
from eventsource.services.audit_causes import SignatureTally, credits_without_posting
from eventsource.services.audit_full import verify_archive
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
    signatures: SignatureTally = field(default_factory=lambda: SignatureTally({}))


async def fold_ledger(nc: Client, partitions: int, view: ArchiveView | None = None) -> LedgerFold:
    """Fold every live event, read exactly (up to what each stream leader had when the read
    began); with an archive, each partition from its archive cut, seeded with its snapshot."""
    operators = tuple(await operator_keys(nc))  # I8: funding signed by the operator
    tally = SignatureTally(await registered_signing_keys(nc), operators)
    folded = LedgerFold(signatures=tally)
    fold, acked = folded.fold, folded.acked
    fold.operator_keys = operators
    cut_fold = CutFold(fold=fold, keep_latest=False)
    for k in range(partitions):
        cut, start = 0, 1
        if view is not None:
            part = view.partitions[k]
            start = part.head.end_seq
            for entry in part.snapshot:
                cut_fold.seed(entry.key, entry.seq, entry.event)
        async for msg in read_messages(nc, ledger_stream(k), start_seq=start):
            subject, data, seq = msg.subject, msg.data, msg.seq
            if seq < start:
                continue  # a participant's unread inbox, kept live below the cut
            folded.events, cut = folded.events + 1, seq
            key = key_of_subject(subject)
            if key is not None:
                carried = CARRIED_HEADER in (msg.headers or {})
                cut_fold.add(key, data, seq, carried=carried)
            elif (where := parse_inbox_subject(subject)) and where.kind == "submit":
                _note_acked(acked, where.recipient, data)
            elif where:
                folded.signatures.check(subject, where.recipient, where.kind, msg.headers, data)
        folded.cuts.append(cut)
    return folded


def _note_acked(acked: dict[str, str], submitter: str, data: bytes) -> None:
    try:
        message = inbox_decoder.decode(data)
    except msgspec.DecodeError:
        return  # inbox junk is the dead-letter stream's business
    if isinstance(message, SubmitTransfers):
        for t in message.transfers:
            if is_token(t.id):
                acked[f"{submitter}.{t.id}"] = sys.intern(t.creditor.participant)


async def audit(
    nc: Client,
    partitions: int,
    *,
    expect_final: bool,
    history: History = KEEP_EVERYTHING,
    full: bool = False,
) -> AuditReport:
    """I1-I5 and I7 over the live ledger; with a live horizon, from each partition's archive
    cut (services/audit_archive.py), holding the archive still meanwhile; with `full`, every
    archived period verified again first (services/audit_full.py)."""
    if not history.bounded:
        return await _audit(nc, partitions, None, expect_final=expect_final)
    async with archive_held(nc, partitions):
        archived = await verify_archive(nc, partitions) if full else []
        view = await read_archive_view(nc, partitions)
        report = await _audit(nc, partitions, view, expect_final=expect_final)
    for problem in archived:
        report.violations[invariant_of(problem)].append(problem)
    return report


async def _audit(
    nc: Client, partitions: int, view: ArchiveView | None, *, expect_final: bool
) -> AuditReport:
    folded = await fold_ledger(nc, partitions, view)
    fold, acked = folded.fold, folded.acked
    report = AuditReport(events=folded.events, accounts=len(fold.accounts))
    v = report.violations
    for problem in fold.problems:
        v[invariant_of(problem)].append(problem)
    if view is not None:
        for part in view.partitions:
            for problem in part.problems:
                v[invariant_of(problem)].append(problem)
            if part.head.problems:
                v["I5"].append(
                    f"{part.stream}: its archived periods hold {part.head.problems} problem(s) "
                    "found when they were archived (`natsbank audit --full` lists them)"
                )
    registered = {r.participant for r in await registered_participants(nc)}
    _check_conservation(fold, report, view.totals if view is not None else [])
    for key, account in fold.accounts.items():
        if account.available < 0:
            v["I2"].append(f"{key}: available {account.available} < 0")
    report.transfers_acked = len(acked)
    for ack_key, receiver in acked.items():
        await _check_acked(
            fold, view, partitions, ack_key, receiver, registered, report, expect_final=expect_final
        )
    await check_kv(nc, partitions, fold, report, folded.cuts)
    find = functools.partial(_record, fold, view, partitions)
    v["I8"].extend(await credits_without_posting(fold, find))
    tally = folded.signatures
    report.signatures = {"verified": tally.verified, "refused": tally.refused}
    report.signature_problems = tally.problems
    return report


async def _check_acked(
    fold: CompactFold,
    view: ArchiveView | None,
    partitions: int,
    ack_key: str,
    receiver: str,
    registered: set[str],
    report: AuditReport,
    *,
    expect_final: bool,
) -> None:
    """I7 and I4 for one ACKed submission still in the live ledger."""
    v = report.violations
    submitter, transfer_id = ack_key.split(".", 1)
    mine = await _record(fold, view, partitions, outgoing_key(submitter, transfer_id))
    if mine is None:
        v["I7"].append(f"{ack_key}: ACKed but unknown to the submitter")
        return
    theirs = await _record(fold, view, partitions, incoming_key(receiver, submitter, transfer_id))
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
    if theirs is not None and theirs.outcome and mine.outcome and theirs.outcome != mine.outcome:
        v["I4"].append(f"{ack_key}: submitter says {mine.outcome}, receiver {theirs.outcome}")


async def _record(
    fold: CompactFold, view: ArchiveView | None, partitions: int, key: str
) -> TransferMark | None:
    """A record as the live fold has it, else as its partition's archive has it (a duplicate
    of an archived transfer, or the other side archived sooner)."""
    mark = fold.transfers.get(key)
    if mark is None and view is not None:
        archived = await view.record(key, partitions)
        mark = fold.mark(archived) if archived is not None else None
    return mark


def _check_conservation(fold: CompactFold, report: AuditReport, archived: list[Totals]) -> None:
    """Per currency: posted balances + money in flight equal the funding. Money in flight is
    what submitters' settled OK debits took and receivers' confirmed OK credits have not given
    yet; the totals of archived periods count with the live fold's."""
    totals = Totals().plus(dict(fold.funded), dict(fold.settled), dict(fold.confirmed))
    for part in archived:
        totals = totals.plus(part.funded, part.settled, part.confirmed)
    balance: dict[str, int] = defaultdict(int)
    for account in fold.accounts.values():
        balance[account.currency] += account.balance
    funded = defaultdict(int, totals.funded)
    for currency in set(balance) | set(funded):
        in_flight = totals.settled.get(currency, 0) - totals.confirmed.get(currency, 0)
        report.funded[currency] = format_amount(funded[currency], currency)
        report.balances[currency] = format_amount(balance[currency], currency)
        if balance[currency] + in_flight != funded[currency]:
            report.violations["I1"].append(
                f"{currency}: balances {format_amount(balance[currency], currency)} + in flight "
                f"{format_amount(in_flight, currency)} != funded "
                f"{format_amount(funded[currency], currency)}"
            )


async def read_stream(nc: Client, stream: str, subject: str | None = None):
    """Every message of a stream in order, as (subject, data)."""
    async for msg in read_messages(nc, stream, [subject] if subject else None):
        yield msg.subject, msg.data
