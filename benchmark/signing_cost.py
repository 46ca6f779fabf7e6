"""What a signature costs (PROTOCOL.md section 12), measured on this machine: ed25519 signs and
verifies per second over the canonical bytes of a protocol message of 1 and of 200 transfers
(the most one message carries). Every run of the bench signs and verifies for real; this is the
micro-measure beside its throughput."""

from __future__ import annotations

import time

from eventsource.core.events import encoder
from eventsource.core.limits import MAX_ITEMS_PER_MESSAGE
from eventsource.core.messages import Posting, Postings
from eventsource.core.model import AccountRef, TransferRequest, validate_transfer
from eventsource.core.signing import Signer, message_bytes, message_problem, new_seed

MEASURE_S = 0.5  # per figure


def signing_cost(seconds: float = MEASURE_S) -> dict:
    signer = Signer(new_seed())
    keys = {"bank-a": signer.public_key}
    figures = {}
    for items in (1, MAX_ITEMS_PER_MESSAGE):
        payload = _postings(items)
        data = message_bytes("bank-a", "bank-b", "posting", payload)
        headers = signer.message_headers("bank-a", "bank-b", "posting", payload)
        signs = _rate(lambda data=data: signer.sign(data), seconds)
        verifies = _rate(
            lambda payload=payload, headers=headers: message_problem(
                headers, keys, "bank-a", "bank-b", "posting", payload
            ),
            seconds,
        )
        figures[f"{items}_transfers"] = {
            "message_bytes": len(payload),
            "signs_per_s": round(signs),
            "verifies_per_s": round(verifies),
            "transfers_signed_per_s": round(signs * items),
            "transfers_verified_per_s": round(verifies * items),
        }
    return figures


def _rate(call, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            call()
        count += 50
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def _postings(items: int) -> bytes:
    postings = []
    for i in range(items):
        request = TransferRequest(
            id=f"01JD{i:022d}",
            debtor=AccountRef("bank-a", f"acct-{i % 50}"),
            creditor=AccountRef("bank-b", f"acct-{i % 70}"),
            amount="125.40",
            currency="EUR",
        )
        postings.append(Posting(transfer=validate_transfer(request, "bank-a"), digest="0" * 32))
    return encoder.encode(Postings(sender="bank-a", postings=postings))
