"""A period's key filter, pure: a Bloom filter over the state keys of the period's final
records (the keys of its ids shards), so that a lookup of a key the period does not hold
usually reads no ids shard.

A filter answers "definitely not" or "maybe": it has no false negative (every key it was built
from is "maybe"), and a key it was not built from is "maybe" with a probability of about
(1 - e^(-hashes/bits_per_key))^hashes (0.82% with ARCHIVE_FILTER_BITS_PER_KEY and
ARCHIVE_FILTER_HASHES). A "maybe" reads the shard, as a lookup without a filter does, so a false
positive costs time, never an answer.

The bytes are specified here and in docs/ARCHIVE.md, not left to a library's serialization:
an archive is read and verified for years, by any reader, and the same keys always give the
same bytes (the manifest's digest covers them).

    b"NBBLOOM1" | hashes (1 byte) | bits (8 bytes, big-endian) | bits / 8 bytes of bit array

Bit j is `array[j // 8] & (1 << (j % 8))`. The bits of a key are, for i in 0..hashes-1,
`(h1 + i * h2) % bits`, where h1 and h2 are the first and last 8 bytes (little-endian) of
BLAKE2b-128 of the key's UTF-8 bytes, and h2 is made odd (Kirsch-Mitzenmacher double hashing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from eventsource.core.errors import ArchiveCorrupt
from eventsource.core.limits import (
    ARCHIVE_FILTER_BITS_MIN,
    ARCHIVE_FILTER_BITS_PER_KEY,
    ARCHIVE_FILTER_BYTES_MAX,
    ARCHIVE_FILTER_HASHES,
)

FILTER_MAGIC = b"NBBLOOM1"
FILTER_HASHES_MAX = 32  # a filter that says more is not one natsbank wrote
_HEADER_BYTES = len(FILTER_MAGIC) + 1 + 8


class KeyFilter:
    """The bit array and its parameters; build it with `of`, read it with `decode`."""

    __slots__ = ("_array", "bits", "hashes")

    def __init__(self, hashes: int, bits: int, array: bytes | bytearray) -> None:
        if not 1 <= hashes <= FILTER_HASHES_MAX:
            raise ValueError(f"a filter of {hashes} hash functions")
        if bits < 8 or bits % 8 or len(array) != bits // 8:
            raise ValueError(f"a filter of {bits} bits in {len(array)} bytes")
        self.hashes, self.bits = hashes, bits
        self._array = bytes(array)

    @classmethod
    def of(
        cls,
        keys: Iterable[str],
        *,
        bits_per_key: int = ARCHIVE_FILTER_BITS_PER_KEY,
        hashes: int = ARCHIVE_FILTER_HASHES,
    ) -> KeyFilter:
        """The filter of `keys`, sized for their number."""
        keys = list(keys)
        bits = max(ARCHIVE_FILTER_BITS_MIN, len(keys) * bits_per_key)
        bits += -bits % 8
        return cls.sized(keys, hashes=hashes, bits=bits)

    @classmethod
    def sized(cls, keys: Iterable[str], *, hashes: int, bits: int) -> KeyFilter:
        """The filter of `keys` with the given parameters: a verifier rebuilds a stored
        filter with the parameters it states, so changing the limits never fails old periods."""
        if not 1 <= hashes <= FILTER_HASHES_MAX or bits < 8 or bits % 8:
            raise ValueError(f"a filter of {hashes} hash functions and {bits} bits")
        array = bytearray(bits // 8)
        for key in keys:
            for bit in _bits_of(key, hashes, bits):
                array[bit >> 3] |= 1 << (bit & 7)
        return cls(hashes, bits, array)

    def may_hold(self, key: str) -> bool:
        """False: the key was certainly not among those the filter was built from."""
        array = self._array
        return all(
            array[bit >> 3] & (1 << (bit & 7)) for bit in _bits_of(key, self.hashes, self.bits)
        )

    def encode(self) -> bytes:
        return FILTER_MAGIC + bytes([self.hashes]) + self.bits.to_bytes(8, "big") + self._array

    @classmethod
    def decode(cls, data: bytes, where: str) -> KeyFilter:
        """The filter of stored bytes; ArchiveCorrupt naming `where` if they are not one."""
        if len(data) > ARCHIVE_FILTER_BYTES_MAX:
            raise ArchiveCorrupt(f"{where}: more than {ARCHIVE_FILTER_BYTES_MAX} bytes")
        if len(data) < _HEADER_BYTES or not data.startswith(FILTER_MAGIC):
            raise ArchiveCorrupt(f"{where}: not a key filter (no {FILTER_MAGIC.decode()} header)")
        hashes = data[len(FILTER_MAGIC)]
        bits = int.from_bytes(data[len(FILTER_MAGIC) + 1 : _HEADER_BYTES], "big")
        try:
            return cls(hashes, bits, data[_HEADER_BYTES:])
        except ValueError as exc:
            raise ArchiveCorrupt(f"{where}: not a key filter ({exc})") from None

    @property
    def size_bytes(self) -> int:
        """Its encoded size: what a cache of filters counts."""
        return len(self._array) + _HEADER_BYTES

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyFilter) and self.encode() == other.encode()

    __hash__ = None  # type: ignore[assignment]


def _bits_of(key: str, hashes: int, bits: int) -> Iterable[int]:
    digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
    h1 = int.from_bytes(digest[:8], "little")
    h2 = int.from_bytes(digest[8:], "little") | 1
    return ((h1 + i * h2) % bits for i in range(hashes))
