"""The archive's formats (issue 12): lines that give back every payload byte for byte, a chain
that any changed byte or figure breaks, and the times that ULIDs and UUIDv7s carry."""

from __future__ import annotations

import hashlib
import uuid

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsource.core.archive_fold import CARRIED_HEADER, CutFold
from eventsource.core.archive_format import (
    TIME_MS_MAX,
    ArchivedMessage,
    PeriodExtras,
    decode_line,
    encode_line,
    events_object,
    filter_object,
    hour_object,
    id_time_ms,
    ids_object,
    kept_headers,
    manifest_object,
    snapshot_object,
)
from eventsource.core.archive_head import ZERO_CHAIN, SnapshotEntry, encode_snapshot
from eventsource.core.archive_manifest import (
    FoldFigures,
    Manifest,
    decode_manifest,
    encode_manifest,
    ids_sha256_of,
)
from eventsource.core.errors import ArchiveCorrupt
from eventsource.core.limits import ARCHIVE_PROBLEM_CHARS_MAX, ARCHIVE_PROBLEMS_KEPT

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid_of(value: int) -> str:
    """A 128-bit value as a ULID, written independently of the code under test."""
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def uuid7_of(time_ms: int, rest: int) -> str:
    value = (time_ms << 80) | (rest & ((1 << 80) - 1))
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant 10
    return str(uuid.UUID(int=value))


# --- Times of transfer ids -------------------------------------------------------------------
@settings(max_examples=300)
@given(value=st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_a_ulid_carries_its_top_48_bits_as_milliseconds(value):
    expected = value >> 80
    found = id_time_ms(ulid_of(value))
    assert found == (expected if expected <= TIME_MS_MAX else None)


@given(value=st.integers(min_value=0, max_value=(1 << 120) - 1))
def test_a_lowercase_ulid_has_the_same_time(value):
    ulid = ulid_of(value)
    assert id_time_ms(ulid.lower()) == id_time_ms(ulid) is not None


@given(time_ms=st.integers(min_value=0, max_value=TIME_MS_MAX), rest=st.integers(min_value=0))
def test_a_uuid7_carries_its_unix_milliseconds(time_ms, rest):
    text = uuid7_of(time_ms, rest)
    assert id_time_ms(text) == time_ms
    assert id_time_ms(text.upper()) == time_ms


def test_the_example_ids_of_the_protocol_have_the_times_they_were_made_at():
    assert id_time_ms("01JD3F6N7ZK8R2W4Y5X9B0C1QH") == 1_732_062_172_415  # 2024-11-20 00:22
    assert id_time_ms("017f22e2-79b0-7cc3-98c4-dc0c0c07398f") == 1_645_557_742_000


@pytest.mark.parametrize(
    "transfer_id",
    [
        "t1",
        "",
        "01JD3F6N7ZK8R2W4Y5X9B0C1Q",  # 25 characters
        "01JD3F6N7ZK8R2W4Y5X9B0C1QHX",  # 27
        "01JD3F6N7ZK8R2W4Y5X9B0C1QI",  # I, L, O and U are not Crockford digits
        "01JD3F6N7ZK8R2W4Y5X9B0C1QL",
        "O1JD3F6N7ZK8R2W4Y5X9B0C1QH",
        "01JD3F6N7ZK8R2W4Y5X9B0C1QU",
        "01JD3F6N7ZK8R2W4Y5X9B0C1Q-",
        "81JD3F6N7ZK8R2W4Y5X9B0C1QH",  # more than 128 bits
        "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",  # a valid ULID of year 10889: no hour name
        "01JD3F6N7ZK8R2W4Y5X9B0C1Qé",  # not ASCII
        str(uuid.UUID("9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f")),  # UUIDv4
        "017f22e2-79b0-6cc3-98c4-dc0c0c07398f",  # version 6
        "017f22e2-79b0-7cc3-c8c4-dc0c0c07398f",  # variant 110
        "017f22e279b07cc398c4dc0c0c07398f",  # UUIDv7 without hyphens: not canonical
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398g",
    ],
)
def test_ids_without_a_time(transfer_id):
    assert id_time_ms(transfer_id) is None


def test_object_names():
    assert events_object(0, 7) == "k0/p00000007.events"
    assert ids_object(3, 12345678, 7) == "k3/p12345678.ids.0007"
    assert snapshot_object(2, 5) == "k2/p00000005.snapshot"
    assert filter_object(4, 9) == "k4/p00000009.filter"
    assert manifest_object(0, 0) == "k0/p00000000.manifest"
    assert hour_object(1, "2024112000") == "k1/ids-by-hour/2024112000"


# --- Lines ----------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
header_names = st.sampled_from(["Nats-Msg-Id", "Natsbank-Reason", "Natsbank-Source"])
messages = st.builds(
    ArchivedMessage,
    seq=st.integers(min_value=1, max_value=2**63 - 1),
    time_ms=st.integers(min_value=0, max_value=TIME_MS_MAX),
    subject=st.text(min_size=1, max_size=40),
    payload=st.binary(max_size=300) | json_values.map(msgspec.json.encode),
    headers=st.dictionaries(header_names, st.text(max_size=20), max_size=3),
)


@settings(max_examples=400)
@given(message=messages)
def test_a_line_gives_back_the_message_byte_for_byte(message):
    line = encode_line(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_line(line[:-1], "test") == message


def test_a_json_payload_is_the_data_itself_and_anything_else_is_base64():
    event = b'{"type":"FundsReserved","at":1}'
    message = ArchivedMessage(seq=5, time_ms=9, subject="$KV.ledger_0.a.out.t1", payload=event)
    assert encode_line(message) == (
        b'{"seq":5,"time_ms":9,"subject":"$KV.ledger_0.a.out.t1",'
        b'"data":{"type":"FundsReserved","at":1}}\n'
    )
    for payload in (b"not json", b"", b' {"a":1}', b'{"a":\n1}', b'"\xff"', b"1e400"):
        line = msgspec.json.decode(
            encode_line(ArchivedMessage(seq=1, time_ms=0, subject="s", payload=payload))
        )
        assert "data" not in line and "data_b64" in line, payload


def test_only_the_dedup_id_and_natsbank_headers_are_kept():
    headers = {"Nats-Msg-Id": "x", "Nats-Batch-Id": "b", "Natsbank-Reason": "R", "traceparent": "t"}
    assert kept_headers(headers) == {"Nats-Msg-Id": "x", "Natsbank-Reason": "R"}
    assert kept_headers({CARRIED_HEADER: "41", "Nats-Expected-Last-Subject-Sequence": "41"}) == {
        CARRIED_HEADER: "41"
    }  # a reader of the archive can tell a carried copy from the event it copies
    assert kept_headers(None) == {}


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"{}",
        b'{"seq":1,"time_ms":0,"subject":"s"}',  # neither data nor data_b64
        b'{"seq":1,"time_ms":0,"subject":"s","data":1,"data_b64":""}',  # both
        b'{"seq":1,"time_ms":0,"subject":"s","data_b64":"!!"}',
        b'{"seq":"1","time_ms":0,"subject":"s","data":1}',
    ],
)
def test_a_line_that_is_no_archived_message_is_corrupt(line):
    with pytest.raises(ArchiveCorrupt, match=r"p00000001\.events line 3"):
        decode_line(line, "k0/p00000001.events line 3")


# --- Manifest and the chain ----------------------------------------------------------------
SHARDS = ["b" * 64, "c" * 64]


def manifest(**changes) -> Manifest:
    fields = dict(
        partition=0,
        period=1,
        first_seq=11,
        end_seq=21,
        messages=10,
        events_sha256="a" * 64,
        ids_sha256=ids_sha256_of(SHARDS),
        ids_shards=2,
        ids_shard_sha256=SHARDS,
        snapshot_sha256="d" * 64,
        prev_chain=ZERO_CHAIN,
        chain="",
        id_time_min_ms=None,
        id_time_max_ms=None,
        archived_at_ms=1,
        funded={"EUR": 100},
        settled={"EUR": 40},
        confirmed={"EUR": 30},
        problem_count=0,
        problems=[],
    )
    fields.update(changes)
    made = Manifest(**fields)
    return msgspec.structs.replace(made, chain=made.expected_chain())


def test_the_manifest_has_the_fields_of_the_spec_in_order_and_round_trips():
    made = manifest()
    data = encode_manifest(made)
    assert list(msgspec.json.decode(data)) == [
        "partition", "period", "first_seq", "end_seq", "messages", "events_sha256",
        "ids_sha256", "ids_shards", "ids_shard_sha256", "snapshot_sha256", "prev_chain",
        "chain", "id_time_min_ms", "id_time_max_ms", "archived_at_ms", "funded", "settled",
        "confirmed", "problem_count", "problems", "verified", "ids_below_ms", "filter_sha256",
    ]  # fmt: skip
    assert decode_manifest(data, "m") == made
    assert made.inconsistencies() == []
    with pytest.raises(ArchiveCorrupt, match="k0/x"):
        decode_manifest(b'{"partition": 0}', "k0/x")


def test_a_manifest_without_a_filter_keeps_the_chain_it_was_written_with():
    """Periods archived before key filters existed have none: their chain must not change."""
    made = manifest()
    assert made.filter_sha256 is None
    with_filter = manifest(filter_sha256="f" * 64)
    assert with_filter.chain != made.chain and with_filter.inconsistencies() == []


def test_the_chain_is_the_sha256_of_its_parts_as_the_spec_writes_it():
    sha = lambda text: hashlib.sha256(text.encode()).hexdigest()  # noqa: E731
    ids = sha("b" * 64 + "c" * 64)
    figures = sha(
        '{"confirmed":{"EUR":30},"funded":{"EUR":100},"id_time_max_ms":null,'
        '"id_time_min_ms":null,"messages":10,"problem_count":0,"problems":[],"settled":{"EUR":40}}'
    )
    made = manifest()
    assert made.ids_sha256 == ids and made.figures_sha256() == figures
    assert made.chain == sha(f"{ZERO_CHAIN}{'a' * 64}{ids}{'d' * 64}{figures}0:1:11:21")


@pytest.mark.parametrize(
    "change",
    [
        {"prev_chain": "1" * 64},
        {"events_sha256": "c" * 64},
        {
            "ids_shard_sha256": ["b" * 64, "e" * 64],
            "ids_sha256": ids_sha256_of(["b" * 64, "e" * 64]),
        },
        {"snapshot_sha256": "e" * 64},
        {"partition": 1},
        {"period": 2},
        {"first_seq": 12},
        {"end_seq": 22},
        {"messages": 11},
        {"id_time_min_ms": 5},
        {"id_time_max_ms": 5},
        {"funded": {"EUR": 101}},
        {"settled": {"EUR": 41}},
        {"confirmed": {"EUR": 30, "JPY": 1}},
        {"problem_count": 1, "problems": ["a.out.t1: content changed (I3)"]},
        {"problem_count": 2},
        {"ids_below_ms": 1_700_000_000_000},
        {"filter_sha256": "f" * 64},
    ],
)
def test_the_chain_changes_with_each_of_its_parts(change):
    assert manifest(**change).chain != manifest().chain


def test_a_manifest_edited_by_hand_contradicts_itself():
    made = manifest()
    edits = {
        "settled": ({"EUR": 1}, "chain does not match"),
        "ids_sha256": ("e" * 64, "not the digest of its shards"),
        "ids_shards": (3, "ids_shards 3 for 2 digests"),
        "problems": (["x"] * (ARCHIVE_PROBLEMS_KEPT + 1), "problems listed of 0"),
        "filter_sha256": ("F" * 64, "filter_sha256 is not 64 lowercase hex digits"),
    }
    for field, (value, complaint) in edits.items():
        edited = msgspec.structs.replace(made, **{field: value})
        assert any(complaint in found for found in edited.inconsistencies()), field


@settings(max_examples=200)
@given(
    data=st.binary(min_size=1, max_size=500), where=st.integers(min_value=0), bit=st.integers(0, 7)
)
def test_any_changed_byte_of_the_events_or_the_snapshot_changes_the_chain(data, where, bit):
    index = where % len(data)
    changed = bytearray(data)
    changed[index] ^= 1 << bit
    sha = hashlib.sha256
    for field in ("events_sha256", "snapshot_sha256"):
        assert (
            manifest(**{field: sha(data).hexdigest()}).chain
            != manifest(**{field: sha(bytes(changed)).hexdigest()}).chain
        )


# --- What the archiver adds -----------------------------------------------------------------
def test_a_manifest_keeps_the_first_problems_cut_short_and_counts_them_all():
    problems = [f"k{i}: " + "x" * (ARCHIVE_PROBLEM_CHARS_MAX + 10) for i in range(150)]
    extras = PeriodExtras(
        snapshot=b"[]", problems=problems, settled={"USD": 1, "EUR": 2}, confirmed={}
    )
    figures = FoldFigures.of(extras)
    assert figures.problem_count == 150 and len(figures.problems) == ARCHIVE_PROBLEMS_KEPT
    assert figures.problems[0] == problems[0][:ARCHIVE_PROBLEM_CHARS_MAX]
    assert list(figures.settled) == ["EUR", "USD"]


def test_the_extras_of_a_cut_fold_are_its_snapshot_and_its_findings():
    cut = CutFold()
    cut.add("bank-a.out.t1", b"not an event", 7)
    extras = PeriodExtras.of(cut)
    assert extras.snapshot == encode_snapshot([SnapshotEntry("bank-a.out.t1", 7, b"not an event")])
    assert extras.problems == ["bank-a.out.t1: undecodable event, the record is quarantined (I5)"]
    assert (extras.settled, extras.confirmed) == ({}, {})
