"""A period's key filter: never "definitely not" for a key it holds, "maybe" for few others,
the same bytes for the same keys, and stored bytes that are not a filter refused."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsource.core.archive_filter import FILTER_MAGIC, KeyFilter
from eventsource.core.archive_head import ZERO_CHAIN
from eventsource.core.archive_manifest import FoldFigures, sha256_hex
from eventsource.core.archive_period import PeriodBuilder
from eventsource.core.errors import ArchiveCorrupt
from eventsource.core.limits import (
    ARCHIVE_FILTER_BITS_MIN,
    ARCHIVE_FILTER_BITS_PER_KEY,
    ARCHIVE_FILTER_HASHES,
)

# (1 - e^(-k/b))^k for 10 bits and 7 functions: 0.82%. The keys are fixed, so the rate measured
# below is the same on every run; the bound leaves room for the double hashing's small excess.
FALSE_POSITIVE_RATE_MAX = 0.012


def record_keys(count: int, side: str = "out") -> list[str]:
    return [f"bank-a.{side}.01JD3F6N7Z{n:016d}" for n in range(count)]


@settings(max_examples=100)
@given(keys=st.sets(st.text(min_size=1, max_size=60), max_size=300))
def test_a_filter_says_maybe_for_every_key_it_was_built_from(keys):
    key_filter = KeyFilter.of(keys)
    assert all(key_filter.may_hold(key) for key in keys)


def test_no_false_negative_over_many_keys_and_few_false_positives():
    keys = record_keys(20_000)
    key_filter = KeyFilter.of(keys)
    assert all(key_filter.may_hold(key) for key in keys)
    others = record_keys(100_000, side="in.bank-b")
    false_positives = sum(key_filter.may_hold(key) for key in others)
    assert 0 < false_positives / len(others) <= FALSE_POSITIVE_RATE_MAX


def test_its_size_follows_the_named_bits_per_key():
    key_filter = KeyFilter.of(record_keys(1_000))
    assert (key_filter.hashes, key_filter.bits) == (
        ARCHIVE_FILTER_HASHES,
        1_000 * ARCHIVE_FILTER_BITS_PER_KEY,
    )
    empty = KeyFilter.of([])
    assert empty.bits == ARCHIVE_FILTER_BITS_MIN
    assert not any(empty.may_hold(key) for key in record_keys(100))


def test_the_bytes_are_the_spec_and_round_trip():
    keys = ["bank-a.out.t1", "bank-b.in.bank-a.t1"]
    key_filter = KeyFilter.of(keys, bits_per_key=40, hashes=3)
    data = key_filter.encode()
    assert data[:8] == FILTER_MAGIC and data[8] == 3
    assert int.from_bytes(data[9:17], "big") == 80 and len(data) == 17 + 10
    for key in keys:  # each key's bits, as docs/ARCHIVE.md computes them
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        h1 = int.from_bytes(digest[:8], "little")
        h2 = int.from_bytes(digest[8:], "little") | 1
        for i in range(3):
            bit = (h1 + i * h2) % 80
            assert data[17 + bit // 8] & (1 << (bit % 8))
    again = KeyFilter.decode(data, "k0/p00000000.filter")
    assert again == key_filter and again.encode() == data
    assert KeyFilter.of(reversed(keys), bits_per_key=40, hashes=3).encode() == data


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"", "no NBBLOOM1 header"),
        (b"NBBLOOM2" + bytes(9 + 8), "no NBBLOOM1 header"),
        (FILTER_MAGIC + b"\x00" + (64).to_bytes(8, "big") + bytes(8), "0 hash functions"),
        (FILTER_MAGIC + b"\x07" + (64).to_bytes(8, "big") + bytes(7), "64 bits in 7 bytes"),
        (FILTER_MAGIC + b"\x07" + (60).to_bytes(8, "big") + bytes(8), "60 bits"),
    ],
)
def test_bytes_that_are_not_a_filter_are_refused_naming_the_object(data, complaint):
    with pytest.raises(ArchiveCorrupt, match=f"k0/p1.filter: .*{complaint}"):
        KeyFilter.decode(data, "k0/p1.filter")


def test_a_rebuild_with_the_stated_parameters_tells_a_tampered_filter():
    """What `audit --full` does: rebuild from the period's keys with the parameters the stored
    filter states; a filter that lost a key's bit (a lookup would deny an archived transfer)
    differs, and so does its digest in the chain."""
    keys = record_keys(500)
    stored = KeyFilter.of(keys)
    data = bytearray(stored.encode())
    first_set = next(i for i in range(17, len(data)) if data[i])
    data[first_set] = 0
    tampered = KeyFilter.decode(bytes(data), "f")
    assert not all(tampered.may_hold(key) for key in keys)
    assert KeyFilter.sized(keys, hashes=tampered.hashes, bits=tampered.bits) != tampered
    assert KeyFilter.sized(keys, hashes=stored.hashes, bits=stored.bits) == stored
    assert sha256_hex(bytes(data)) != sha256_hex(stored.encode())


def test_a_period_builder_gives_the_filter_of_its_ids_and_the_manifest_names_it():
    builder = PeriodBuilder(0, 0, 1, 1)
    builder.finish()
    key_filter = builder.key_filter()
    assert key_filter == KeyFilter.of([])
    figures = FoldFigures(settled={}, confirmed={}, problem_count=0, problems=[])
    manifest = builder.manifest(
        events_sha256="a" * 64,
        ids_shard_sha256=["b" * 64],
        snapshot_sha256="c" * 64,
        figures=figures,
        prev_chain=ZERO_CHAIN,
        archived_at_ms=1,
        filter_sha256=sha256_hex(key_filter.encode()),
    )
    assert manifest.filter_sha256 == sha256_hex(key_filter.encode())
    assert manifest.inconsistencies() == []
