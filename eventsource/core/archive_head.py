"""Where a ledger stream's archive stands (the head), and what an archive run carries from one
period to the next, pure. The adapters store the head in the KV bucket `archive`
(adapters/archive_meta.py) and the periods in the Object Store (adapters/archive_store.py).

A period's **snapshot** is the state, at the period's end, of everything that stays live: every
account and every transfer record that is not final, as its latest event. A fold that starts
at an archive cut (the audit of the live ledger, the next archive run) is seeded with it, so
that it never reads a period again. Money totals run from the first period to the head, so that
conservation (I1) is checked without the archived events.
"""

from __future__ import annotations

from collections import defaultdict

import msgspec

ZERO_CHAIN = "0" * 64


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    """Minor units per currency since the ledger began: funded into accounts, debited at
    submitters (settled OK), credited at receivers (confirmed OK)."""

    funded: dict[str, int] = {}
    settled: dict[str, int] = {}
    confirmed: dict[str, int] = {}

    def plus(self, funded: dict, settled: dict, confirmed: dict) -> Totals:
        return Totals(
            funded=_added(self.funded, funded),
            settled=_added(self.settled, settled),
            confirmed=_added(self.confirmed, confirmed),
        )


class Head(msgspec.Struct, frozen=True, kw_only=True):
    """Every message below `end_seq` is archived in periods 0 .. period-1 and verified."""

    period: int = 0  # the number the next period gets
    end_seq: int = 1  # the first sequence the archive does not hold
    chain: str = ZERO_CHAIN  # the last period's chain link
    totals: Totals = Totals()
    problems: int = 0  # violations the archived periods' folds found (listed in their manifests)
    archived_at_ms: int = 0


class SnapshotEntry(msgspec.Struct, frozen=True, array_like=True):
    key: str
    seq: int  # the stream sequence of the event (in the archive, or still live)
    event: bytes  # the payload as stored (base64 in JSON: a quarantined one may be any bytes)


_snapshot_decoder = msgspec.json.Decoder(list[SnapshotEntry])


def encode_snapshot(entries: list[SnapshotEntry]) -> bytes:
    return msgspec.json.encode(sorted(entries, key=lambda e: e.key))


def decode_snapshot(data: bytes) -> list[SnapshotEntry]:
    return _snapshot_decoder.decode(data)


def _added(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int, a)
    for currency, amount in b.items():
        total[currency] += amount
    return {c: v for c, v in sorted(total.items())}
