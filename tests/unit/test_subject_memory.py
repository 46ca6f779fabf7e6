"""The pure helpers of `python -m benchmark.subject_memory`."""

from __future__ import annotations

from benchmark.subject_memory import kept_every_tenth, memstats, per_message

PROFILE = """heap profile: 3: 1024 [9: 4096] @ heap/1048576
# runtime.MemStats
# Alloc = 5242880
# HeapAlloc = 5242880
# PauseNs = [0 0 0]
# NumGC = 7
"""


def test_per_message_counts_bytes_above_the_baseline():
    assert per_message(rss_kib=2048, baseline_kib=1024, messages=1024) == 1024.0
    assert per_message(rss_kib=1024, baseline_kib=1024, messages=0) == 0.0


def test_every_tenth_keeps_the_first_and_the_last_so_every_removal_is_interior():
    kept = [i for i in range(25) if kept_every_tenth(i, 25)]
    assert kept == [0, 10, 20, 24]


def test_memstats_reads_the_numbers_of_a_heap_profile():
    fields = memstats(PROFILE)
    assert fields["HeapAlloc"] == 5_242_880 and fields["NumGC"] == 7
    assert "PauseNs" not in fields
