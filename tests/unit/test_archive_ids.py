"""Where an archived record is found (issue 12): ids shards that give back each final event byte
for byte, keys spread over about ARCHIVE_IDS_PER_SHARD per shard, and the hour directory."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventsource.core.archive_format import TIME_MS_MAX
from eventsource.core.archive_ids import (
    UNTIMED,
    IdEntry,
    decode_ids,
    directory_hours,
    encode_ids,
    hour_bucket,
    ids_shard_count,
    ids_shard_of,
    split_ids,
)
from eventsource.core.errors import ArchiveCorrupt, ArchiveError
from eventsource.core.limits import ARCHIVE_IDS_PER_SHARD, ARCHIVE_IDS_SHARDS_MAX

EVENT = b'{"type":"TransferSettled","state":{"comment":"caf\xc3\xa9 \\"x\\""},"at":1}'


# --- Entries --------------------------------------------------------------------------------
def test_ids_are_written_sorted_with_the_final_event_as_text_and_read_back():
    ids = {
        "b.out.t2": IdEntry.of("d2", "OK", None, EVENT),
        "a.in.b.t1": IdEntry.of("d1", None, 5, b"{}"),
    }
    data = encode_ids(ids)
    assert data == (
        b'{"a.in.b.t1":["d1",null,5,"{}"],'
        b'"b.out.t2":["d2","OK",null,'
        b'"{\\"type\\":\\"TransferSettled\\",\\"state\\":{\\"comment\\":\\"caf\xc3\xa9 '
        b'\\\\\\"x\\\\\\"\\"},\\"at\\":1}"]}'
    )
    back = decode_ids(data, "ids")
    assert back == ids
    assert back["b.out.t2"].payload("ids") == EVENT


@given(payload=st.binary(max_size=200))
def test_any_payload_comes_back_byte_for_byte(payload):
    entry = decode_ids(encode_ids({"k": IdEntry.of("d", "OK", 1, payload)}), "ids")["k"]
    assert entry.payload("ids") == payload


def test_a_payload_that_is_not_utf8_is_base64_and_says_so():
    data = encode_ids({"k": IdEntry.of("d", "OK", 1, b"\xff\x00")})
    assert data == b'{"k":["d","OK",1,"/wA=","base64"]}'


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":["d1"]}',
        b'{"a":["d1",null,null]}',  # no event
        b'{"a":["d1",null,null,"{}","hex"]}',
        b'["d1",null,null,"{}"]',
    ],
)
def test_what_is_not_an_ids_shard_is_corrupt(data):
    with pytest.raises(ArchiveCorrupt, match="not an ids shard"):
        decode_ids(data, "ids")


def test_a_base64_event_that_does_not_decode_is_corrupt():
    entry = decode_ids(b'{"k":["d","OK",1,"!!","base64"]}', "ids")["k"]
    with pytest.raises(ArchiveCorrupt, match=r"k0/p1\.ids\.0000"):
        entry.payload("k0/p1.ids.0000")


# --- Shards ---------------------------------------------------------------------------------
def test_a_shard_holds_about_ids_per_shard_records():
    assert [ids_shard_count(n) for n in (0, 1, 1024, 1025, 5000)] == [1, 1, 1, 2, 5]
    assert ARCHIVE_IDS_PER_SHARD == 1024
    assert ids_shard_count(ARCHIVE_IDS_SHARDS_MAX * ARCHIVE_IDS_PER_SHARD) == ARCHIVE_IDS_SHARDS_MAX
    with pytest.raises(ArchiveError, match="shards"):
        ids_shard_count(ARCHIVE_IDS_SHARDS_MAX * ARCHIVE_IDS_PER_SHARD + 1)


def test_a_key_belongs_to_the_shard_its_crc32_names():
    key = "bank-a.out.01JD3F6N7ZK8R2W4Y5X9B0C1QH"
    assert ids_shard_of(key, 7) == zlib.crc32(key.encode()) % 7
    assert ids_shard_of(key, 1) == 0


def test_five_thousand_records_spread_over_five_shards():
    ids = {f"bank-a.out.t{i}": IdEntry.of("d", "OK", None, b"{}") for i in range(5000)}
    shards = split_ids(ids)
    assert len(shards) == 5
    assert sum(len(shard) for shard in shards) == 5000
    assert all(800 <= len(shard) <= 1200 for shard in shards)
    for number, shard in enumerate(shards):
        assert all(ids_shard_of(key, 5) == number for key in shard)
    assert split_ids({}) == [{}]


# --- The hour directory ---------------------------------------------------------------------
def test_hour_names_are_utc_hours():
    assert hour_bucket(0) == "1970010100"
    assert hour_bucket(3_599_999) == "1970010100"
    assert hour_bucket(3_600_000) == "1970010101"
    assert hour_bucket(1_732_062_172_415) == "2024112000"
    assert hour_bucket(TIME_MS_MAX) == "9999123123"
    for time_ms in (-1, TIME_MS_MAX + 1):
        with pytest.raises(ValueError):
            hour_bucket(time_ms)


def test_a_period_is_listed_under_the_busiest_hours_and_untimed_for_the_rest():
    hour = 3_600_000
    times = [0, 1, 2 * hour, 2 * hour + 1, 5 * hour]
    assert directory_hours(times) == {"1970010100", "1970010102", "1970010105"}
    assert directory_hours([*times, None]) == {"1970010100", "1970010102", "1970010105", UNTIMED}
    assert directory_hours(times, hours_max=2) == {"1970010100", "1970010102", UNTIMED}
    assert directory_hours([]) == set()
