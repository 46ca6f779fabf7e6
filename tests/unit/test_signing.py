"""Signatures over canonical bytes (core/signing.py): what verifies, and every way a forgery
does not."""

from __future__ import annotations

import pytest

from eventsource.core.signing import (
    KEY_HEADER,
    SIG_HEADER,
    SignatureProblem,
    Signer,
    funding_bytes,
    message_bytes,
    message_problem,
    new_seed,
    verify,
)

ALPHA, BETA = Signer(new_seed()), Signer(new_seed())
KEYS = {"alpha": ALPHA.public_key, "beta": BETA.public_key}
PAYLOAD = b'{"type":"posting","sender":"alpha","postings":[]}'


def signed(signer: Signer = ALPHA, recipient: str = "beta", kind: str = "posting") -> dict:
    return signer.message_headers("alpha", recipient, kind, PAYLOAD)


def test_the_canonical_bytes_are_the_documented_layout():
    assert message_bytes("alpha", "beta", "posting", b"{}") == (
        b"natsbank-msg/v1\nalpha\nbeta\nposting\n{}"
    )
    assert funding_bytes("alpha", "a1", "EUR", "fund-1", "10.00") == (
        b"natsbank-fund/v1\nalpha\na1\nEUR\nfund-1\n10.00"
    )


def test_a_message_signed_by_its_sender_verifies():
    headers = signed()
    assert headers[KEY_HEADER] == ALPHA.public_key and headers[KEY_HEADER].startswith("U")
    assert message_problem(headers, KEYS, "alpha", "beta", "posting", PAYLOAD) is None


@pytest.mark.parametrize(
    ("headers", "recipient", "kind", "payload", "why"),
    [
        (None, "beta", "posting", PAYLOAD, "no signature"),
        ({SIG_HEADER: ""}, "beta", "posting", PAYLOAD, "no signature"),
        ({SIG_HEADER: "not base64!"}, "beta", "posting", PAYLOAD, "signature"),
        (signed(), "beta", "posting", PAYLOAD.replace(b"[]", b"[ ]"), "does not verify"),
        (signed(BETA), "beta", "posting", PAYLOAD, "does not verify"),  # another bank's key
        (signed(recipient="gamma"), "beta", "posting", PAYLOAD, "does not verify"),
        (signed(kind="confirm"), "beta", "posting", PAYLOAD, "does not verify"),
    ],
    ids=["missing", "empty", "malformed", "tampered", "wrong-key", "other-recipient", "kind"],
)
def test_a_forgery_does_not_verify(headers, recipient, kind, payload, why):
    problem = message_problem(headers, KEYS, "alpha", recipient, kind, payload)
    assert problem is not None and why in problem


def test_the_key_header_is_never_trusted():
    """A forger who signs with its own key and names that key still fails: the registry's
    key for the sender is the one used."""
    headers = {**signed(BETA), KEY_HEADER: BETA.public_key}
    assert message_problem(headers, KEYS, "alpha", "beta", "posting", PAYLOAD) is not None


def test_a_sender_without_a_registered_key_is_refused():
    problem = message_problem(
        signed(), {"beta": BETA.public_key}, "alpha", "beta", "posting", PAYLOAD
    )
    assert problem is not None and "no registered signing key" in problem


def _flipped(key: str, at: int = 10) -> str:
    return key[:at] + ("B" if key[at] != "B" else "C") + key[at + 1 :]


@pytest.mark.parametrize(
    "key",
    ["", "UABC", "not a key", _flipped(ALPHA.public_key)],
    ids=["empty", "short", "not-a-key", "checksum-broken"],  # ALPHA is new in each process
)
def test_a_malformed_public_key_is_a_problem_not_a_crash(key):
    with pytest.raises(SignatureProblem):
        verify(key, b"x", ALPHA.sign(b"x"))


def test_a_seed_that_is_not_an_nkey_is_refused():
    with pytest.raises(SignatureProblem):
        Signer(b"SUNOTASEED")
