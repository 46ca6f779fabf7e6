"""A period of the archive built one message at a time: the ids of final records only, with
their final events, the money funded (carried copies excepted), no gap tolerated, and gzip
streams read back in any pieces, within bounds."""

from __future__ import annotations

import zlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsource.core.account import EntryKind
from eventsource.core.archive_fold import CARRIED_HEADER
from eventsource.core.archive_format import ArchivedMessage, encode_line
from eventsource.core.archive_head import ZERO_CHAIN
from eventsource.core.archive_ids import UNTIMED, IdEntry
from eventsource.core.archive_manifest import FoldFigures, ids_sha256_of, sha256_hex
from eventsource.core.archive_period import GunzipLines, Gzipper, Inflater, PeriodBuilder
from eventsource.core.errors import ArchiveCorrupt, PeriodIncomplete
from eventsource.core.events import (
    AccountChanged,
    AccountOpened,
    AccountSnapshot,
    Entry,
    FundsReserved,
    OutcomeConfirmed,
    PostingAccepted,
    TransferSettled,
    TransferState,
    encoder,
    transfer_event_decoder,
)
from eventsource.core.model import AccountRef, Outcome, Side, Transfer
from eventsource.core.protocol import Phase

ULID = "01JD3F6N7ZK8R2W4Y5X9B0C1QH"  # made 2024-11-20 00:22 UTC
PREFIX = "$KV.ledger_0."


def transfer_event(event_type, transfer_id: str, side: Side, phase: Phase, outcome=None) -> bytes:
    transfer = Transfer(
        id=transfer_id,
        debtor=AccountRef("bank-a", "alice"),
        creditor=AccountRef("bank-b", "bob"),
        amount="10.50",
        currency="EUR",
    )
    state = TransferState(
        transfer=transfer, digest=transfer.digest, side=side, phase=phase, outcome=outcome
    )
    return encoder.encode(event_type(state=state, at=1))


def funding(amount: str, currency: str = "EUR", kind: EntryKind = EntryKind.FUNDED) -> bytes:
    snapshot = AccountSnapshot(
        participant="bank-a",
        account="alice",
        currency=currency,
        balance=amount,
        pending_debits="0",
        pending_credits="0",
    )
    return encoder.encode(AccountChanged(state=snapshot, at=1, entries=[Entry(kind, "f", amount)]))


def period_of(*messages: tuple[str, bytes] | tuple[str, bytes, dict]) -> PeriodBuilder:
    """A period of the given (subject, payload[, headers]) from sequence 10 on."""
    first_seq = 10
    builder = PeriodBuilder(0, 3, first_seq, first_seq + len(messages))
    for offset, (subject, payload, *headers) in enumerate(messages):
        builder.add(
            ArchivedMessage(
                seq=first_seq + offset,
                time_ms=0,
                subject=subject,
                payload=payload,
                headers=headers[0] if headers else {},
            )
        )
    builder.finish()
    return builder


def test_only_records_whose_last_event_in_the_period_is_final_are_in_the_ids():
    out, inc = f"{PREFIX}bank-a.out.{ULID}", f"{PREFIX}bank-b.in.bank-a.t1"
    reserved = transfer_event(FundsReserved, ULID, Side.SUBMITTER, Phase.RESERVED)
    settled = transfer_event(TransferSettled, ULID, Side.SUBMITTER, Phase.SETTLED, Outcome.OK)
    accepted = transfer_event(PostingAccepted, "t1", Side.RECEIVER, Phase.DECIDED, Outcome.OK)
    confirmed = transfer_event(OutcomeConfirmed, "t1", Side.RECEIVER, Phase.CONFIRMED, Outcome.OK)
    pending = f"{PREFIX}bank-a.out.t2"
    builder = period_of(
        (out, reserved),
        ("nb.0.to.bank-b.posting.x", b'{"type":"posting"}'),
        (inc, accepted),
        (out, settled),
        (inc, confirmed),
        (pending, transfer_event(FundsReserved, "t2", Side.SUBMITTER, Phase.RESERVED)),
    )
    digest = digest_of(ULID)
    assert builder.ids() == {
        f"bank-a.out.{ULID}": IdEntry(digest, "OK", 1_732_062_172_415, settled.decode()),
        "bank-b.in.bank-a.t1": IdEntry(digest_of("t1"), "OK", None, confirmed.decode()),
    }
    assert builder.ids()[f"bank-a.out.{ULID}"].payload("ids") == settled  # the final event
    assert builder.hours() == {"2024112000", UNTIMED}
    assert builder.messages == 6


def test_a_record_whose_latest_event_in_the_period_is_not_final_has_no_id():
    key = f"{PREFIX}bank-a.out.t1"
    settled = transfer_event(TransferSettled, "t1", Side.SUBMITTER, Phase.SETTLED, Outcome.OK)
    reserved = transfer_event(FundsReserved, "t1", Side.SUBMITTER, Phase.RESERVED)
    assert period_of((key, settled), (key, reserved)).ids() == {}
    assert list(period_of((key, reserved), (key, settled)).ids()) == ["bank-a.out.t1"]


def digest_of(transfer_id: str) -> str:
    payload = transfer_event(FundsReserved, transfer_id, Side.SUBMITTER, Phase.RESERVED)
    return transfer_event_decoder.decode(payload).state.digest


def test_a_record_event_that_does_not_decode_leaves_no_id():
    builder = period_of((f"{PREFIX}bank-a.out.t1", b'{"type":"Nonsense"}'))
    assert builder.ids() == {}


def test_funded_is_the_sum_of_funded_entries_in_minor_units_per_currency():
    account = f"{PREFIX}bank-a.acct.alice"
    opened = AccountOpened(
        state=AccountSnapshot(
            participant="bank-a",
            account="alice",
            currency="EUR",
            balance="0.00",
            pending_debits="0.00",
            pending_credits="0.00",
        ),
        at=1,
    )
    builder = period_of(
        (account, encoder.encode(opened)),
        (account, funding("10.50")),
        (account, funding("2.25")),
        (account, funding("500", "JPY")),
        (account, funding("3.00", kind=EntryKind.CREDITED)),
        (account, b"not json"),
        ("nb.0.to.bank-a.submit.x", funding("99.00")),  # an inbox message creates no money
    )
    assert builder.funded == {"EUR": 1275, "JPY": 500}


def test_a_carried_copy_of_a_funding_creates_no_money_again():
    account = f"{PREFIX}bank-a.acct.alice"
    builder = period_of(
        (account, funding("10.00")),
        (account, funding("10.00"), {CARRIED_HEADER: "10"}),  # the archiver's copy of seq 10
        (account, funding("1.00"), {"Natsbank-Other": "x"}),
    )
    assert builder.funded == {"EUR": 1100}


def test_the_manifest_of_a_built_period_chains_to_the_one_before():
    builder = period_of(("nb.0.to.q.submit.x", b"{}"))
    assert [len(shard) for shard in builder.ids_shards()] == [0]  # always one shard
    figures = FoldFigures(settled={"EUR": 5}, confirmed={}, problem_count=1, problems=["p"])
    manifest = builder.manifest(
        events_sha256="e" * 64,
        ids_shard_sha256=["i" * 64],
        snapshot_sha256="s" * 64,
        figures=figures,
        prev_chain=ZERO_CHAIN,
        archived_at_ms=7,
    )
    assert (manifest.first_seq, manifest.end_seq, manifest.messages) == (10, 11, 1)
    assert manifest.chain == manifest.expected_chain() and manifest.verified
    assert manifest.inconsistencies() == []
    assert (manifest.ids_shards, manifest.ids_sha256) == (1, ids_sha256_of(["i" * 64]))
    assert (manifest.id_time_min_ms, manifest.id_time_max_ms, manifest.funded) == (None, None, {})
    assert manifest.fold_figures() == figures


@pytest.mark.parametrize("seqs", [[10, 12], [11], [10, 10], [9]])
def test_a_gap_or_a_message_out_of_order_is_refused(seqs):
    builder = PeriodBuilder(0, 0, 10, 13)
    with pytest.raises(PeriodIncomplete):
        for seq in seqs:
            builder.add(ArchivedMessage(seq=seq, time_ms=0, subject="s", payload=b""))


def test_messages_that_stop_short_of_the_period_end_are_refused():
    builder = PeriodBuilder(0, 0, 10, 13)
    builder.add(ArchivedMessage(seq=10, time_ms=0, subject="s", payload=b""))
    with pytest.raises(PeriodIncomplete, match="end at 10, the period at 12"):
        builder.finish()


def test_a_period_range_must_be_a_range():
    for period, first, end in ((-1, 1, 1), (100_000_000, 1, 1), (0, 0, 1), (0, 5, 4)):
        with pytest.raises(ValueError):
            PeriodBuilder(0, period, first, end)


# --- gzip in and out ------------------------------------------------------------------------
def gzipped(lines: list[bytes]) -> tuple[bytes, str]:
    gzipper = Gzipper()
    data = b"".join(gzipper.add(line) for line in lines) + gzipper.finish()
    return data, gzipper.sha256.hexdigest()


@settings(max_examples=100)
@given(
    payloads=st.lists(st.binary(max_size=2000), max_size=30),
    piece=st.integers(min_value=1, max_value=5000),
)
def test_lines_come_back_whole_whatever_the_pieces_they_are_read_in(payloads, piece):
    lines = [
        encode_line(ArchivedMessage(seq=i + 1, time_ms=0, subject="s", payload=p))
        for i, p in enumerate(payloads)
    ]
    data, sha = gzipped(lines)
    reader = GunzipLines("events", None)
    found = [
        line for at in range(0, len(data), piece) for line in reader.feed(data[at : at + piece])
    ]
    reader.finish()
    assert found == [line[:-1] for line in lines]
    assert reader.inflater.sha256.hexdigest() == sha == sha256_hex(b"".join(lines))
    assert zlib.decompress(data, 31) == b"".join(lines)  # a plain gzip stream: zcat reads it


def read_all(data: bytes, size_max: int | None = None, line_max: int = 1000) -> list[bytes]:
    reader = GunzipLines("k0/p00000001.events", size_max, line_max)
    found = list(reader.feed(data))
    reader.finish()
    return found


def test_a_cut_short_stream_is_corrupt():
    data, _ = gzipped([b"a\n", b"b\n"])
    with pytest.raises(ArchiveCorrupt, match="cut short"):
        read_all(data[:-3])


def test_bytes_after_the_stream_are_corrupt():
    data, _ = gzipped([b"a\n"])
    with pytest.raises(ArchiveCorrupt, match="after the end"):
        read_all(data + b"x")


def test_a_changed_compressed_byte_is_corrupt():
    data, _ = gzipped([b"%d\n" % i for i in range(100)])
    changed = bytearray(data)
    changed[len(data) // 2] ^= 0x55
    with pytest.raises(ArchiveCorrupt):
        read_all(bytes(changed))


def test_a_last_line_without_newline_is_corrupt():
    data, _ = gzipped([b"a\n", b"b"])
    with pytest.raises(ArchiveCorrupt, match="no newline"):
        read_all(data)


def test_an_overlong_line_is_corrupt_before_it_is_held_whole():
    data, _ = gzipped([b"x" * 5000])
    with pytest.raises(ArchiveCorrupt, match="longer than 1000"):
        read_all(data)


def test_a_gzip_bomb_stops_at_its_bound():
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    data = bomb.compress(b"\n" * 50_000_000) + bomb.flush()
    inflater = Inflater("ids", 1_000_000)
    with pytest.raises(ArchiveCorrupt, match="more than 1000000 bytes"):
        for _ in inflater.feed(data):
            pass


def test_ids_below_holds_for_the_period_and_every_one_before():
    """`ids_below_ms` lets a lookup stop: it is raised above the period's own ids and to the
    bound of the period before, and given up once a period before has none."""
    settled = transfer_event(TransferSettled, ULID, Side.SUBMITTER, Phase.SETTLED, Outcome.OK)
    builder = period_of((f"{PREFIX}bank-a.out.{ULID}", settled))
    own = builder.ids()[f"bank-a.out.{ULID}"].time_ms
    assert builder.ids_below(own + 500, None) == own + 500
    assert builder.ids_below(own - 500, None) == own + 1  # a far-ahead id admitted earlier
    earlier = builder.manifest(
        events_sha256="e" * 64, ids_shard_sha256=["i" * 64], snapshot_sha256="s" * 64,
        figures=FoldFigures(settled={}, confirmed={}, problem_count=0, problems=[]),
        prev_chain=ZERO_CHAIN, archived_at_ms=7, ids_below_ms=own + 9_000,
    )  # fmt: skip
    assert builder.ids_below(own + 500, earlier) == own + 9_000
    unknown = msgspec.structs.replace(earlier, ids_below_ms=None)
    assert builder.ids_below(own + 500, unknown) is None
    assert builder.ids_below(None, earlier) is None
    bad = msgspec.structs.replace(earlier, ids_below_ms=own)
    assert any("not below ids_below_ms" in found for found in bad.inconsistencies())
