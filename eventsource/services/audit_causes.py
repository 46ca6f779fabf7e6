"""The audit's side of signatures and of I8 that needs more than one partition.

- Every protocol message the audit reads in the ledger (posting, result, confirm, CANCEL) is
  verified against its sender's registered key. A message that does not verify is counted and
  listed, not a violation by itself: its recipient dead-lettered it (BAD_SIGNATURE), so nothing
  was decided on it. What a forgery could have moved is caught by I8 on the entries.
- Every live receiver record that took a credit (outcome OK) is backed by a decided posting: the
  submitter's record of the same transfer, with the same content digest, naming this receiver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from eventsource.core.compact_fold import CompactFold
from eventsource.core.dead_letter_records import RETRY_OF_HEADER
from eventsource.core.limits import AUDIT_SIGNATURE_PROBLEMS_KEPT
from eventsource.core.model import Outcome, Side
from eventsource.core.signing import message_problem
from eventsource.core.subjects import outgoing_key


class _Sender(msgspec.Struct):
    sender: str


_sender_decoder = msgspec.json.Decoder(_Sender)


@dataclass
class SignatureTally:
    """Signatures of the protocol messages read: verified, and those that do not verify."""

    keys: dict[str, str]  # participant -> registered public key
    operators: tuple[str, ...] = ()  # they sign what `dead-letters retry` republishes
    verified: int = 0
    refused: int = 0
    problems: list[str] = field(default_factory=list)  # the first few, for the report

    def check(self, subject: str, recipient: str, kind: str, headers, data: bytes) -> None:
        try:
            sender = _sender_decoder.decode(data).sender
        except msgspec.DecodeError:
            return  # inbox junk: the dead-letter stream's business
        problem = message_problem(headers, self.keys, sender, recipient, kind, data)
        if problem is not None and RETRY_OF_HEADER in (headers or {}):
            for key in self.operators:
                if message_problem(headers, {sender: key}, sender, recipient, kind, data) is None:
                    problem = None
                    break
        if problem is None:
            self.verified += 1
            return
        self.refused += 1
        if len(self.problems) < AUDIT_SIGNATURE_PROBLEMS_KEPT:
            self.problems.append(f"{subject}: {problem}")


async def credits_without_posting(fold: CompactFold, find) -> list[str]:
    """I8: each live receiver record with outcome OK has the submitter's posting behind it.
    `find(key)` is the record as the live fold or the archive has it."""
    problems = []
    for key, mark in list(fold.transfers.items()):
        if mark.side is not Side.RECEIVER or mark.outcome is not Outcome.OK:
            continue
        receiver, _, submitter, transfer_id = key.split(".", 3)
        posted = await find(outgoing_key(submitter, transfer_id))
        if posted is None or posted.digest != mark.digest or posted.receiver != receiver:
            problems.append(
                f"{key}: a credit with no decided posting of {submitter} behind it (I8)"
            )
    return problems
