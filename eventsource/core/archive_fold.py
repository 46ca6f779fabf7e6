"""Folding one stretch of a ledger stream that starts at an archive cut, pure: what an archive
run checks and keeps of a period, and what the audit checks of the live ledger.

Seeded with the snapshot at the cut (core/archive_head.py), it folds the events that follow
through the same checks as a fold from the beginning (CompactFold), and knows at the end the
latest event of every key it saw. A carried event (the header CARRIED_HEADER: the archiver
copied a key's latest event forward, unchanged, so that it outlives the purge) is checked
against the fold instead of folded again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from eventsource.core.archive_head import SnapshotEntry
from eventsource.core.compact_fold import CompactFold
from eventsource.core.events import account_event_decoder, transfer_event_decoder
from eventsource.core.subjects import is_account_key

CARRIED_HEADER = "Natsbank-Carried"  # value: the stream sequence of the event it copies


@dataclass
class CutFold:
    fold: CompactFold = field(default_factory=CompactFold)
    # key -> (sequence, payload, final) of its latest event: in the seed or folded since.
    latest: dict[str, tuple[int, bytes, bool]] = field(default_factory=dict)
    events: int = 0
    keep_latest: bool = True  # the audit needs only the fold

    @classmethod
    def seeded_with(
        cls, snapshot: list[SnapshotEntry], operator_keys: tuple[str, ...] | None = None
    ) -> CutFold:
        cut = cls()
        cut.fold.operator_keys = operator_keys
        for entry in snapshot:
            cut.seed(entry.key, entry.seq, entry.event)
        return cut

    def seed(self, key: str, seq: int, data: bytes) -> None:
        try:
            if is_account_key(key):
                event = account_event_decoder.decode(data)
                self.fold.seed_account(key, event.state)
                self.fold.account_seqs[key] = seq
                final = False
            else:
                state = transfer_event_decoder.decode(data).state
                self.fold.seed_transfer(key, state)
                self.fold.transfers[key].last_seq = seq
                final = state.final
        except msgspec.DecodeError:
            self.fold.problems.append(f"{key}: undecodable event, the record is quarantined (I5)")
            final = False
        if self.keep_latest:
            self.latest[key] = (seq, data, final)

    def add(self, key: str, data: bytes, seq: int, *, carried: bool = False) -> None:
        """One state event, in stream order."""
        self.events += 1
        final = False
        try:
            if is_account_key(key):
                event = account_event_decoder.decode(data)
                if carried:
                    self.fold.carried(key, event)
                    self.fold.account_seqs[key] = seq
                else:
                    self.fold.fold_account(key, event, seq)
            else:
                event = transfer_event_decoder.decode(data)
                if carried:
                    self.fold.carried(key, event)
                    if key in self.fold.transfers:
                        self.fold.transfers[key].last_seq = seq
                else:
                    self.fold.fold_transfer(key, event, seq)
                final = event.state.final
        except msgspec.DecodeError:
            self.fold.problems.append(f"{key}: undecodable event, the record is quarantined (I5)")
        if self.keep_latest:
            self.latest[key] = (seq, data, final)

    def snapshot(self) -> list[SnapshotEntry]:
        """What stays live past the cut: every account and every record not final."""
        return [
            SnapshotEntry(key, seq, data)
            for key, (seq, data, final) in self.latest.items()
            if not final
        ]

    def finals(self) -> dict[str, tuple[int, bytes]]:
        """The records final at the end (a snapshot never holds a final one: they became final
        in what was folded)."""
        return {key: (seq, data) for key, (seq, data, final) in self.latest.items() if final}
