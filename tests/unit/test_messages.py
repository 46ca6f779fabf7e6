"""Protocol messages are cut so that each one fits the ledger's message size limit."""

from __future__ import annotations

import msgspec

from eventsource.core.messages import (
    MAX_ITEMS_PER_MESSAGE,
    MAX_MESSAGE_BYTES,
    SubmitTransfers,
    cut_items,
)
from eventsource.core.model import AccountRef, TransferRequest


def request(i: int, comment: str = "") -> TransferRequest:
    return TransferRequest(
        id=f"t{i}",
        debtor=AccountRef("a", "x"),
        creditor=AccountRef("b", "y"),
        amount="1.00",
        currency="EUR",
        comment=comment,
    )


def test_small_items_are_cut_at_the_item_limit_and_keep_their_order():
    items = [request(i) for i in range(450)]
    chunks = cut_items(items)
    assert [len(c) for c in chunks] == [200, 200, 50]
    assert [r for c in chunks for r in c] == items


def test_wide_items_are_cut_by_size_so_every_message_fits_the_stream():
    items = [request(i, "\x01" * 280) for i in range(200)]  # ~1.8 KB each once escaped
    chunks = cut_items(items)
    assert len(chunks) > 1
    for chunk in chunks:
        encoded = msgspec.json.encode(SubmitTransfers(transfers=chunk))
        assert len(encoded) <= MAX_MESSAGE_BYTES + 200
        assert len(chunk) <= MAX_ITEMS_PER_MESSAGE
    assert sum(len(c) for c in chunks) == 200
