"""Ed25519 signatures over natsbank's canonical bytes, with NATS nkeys as the key format.

Pure: no I/O. A bank signs each protocol message it sends (posting, result, confirm, CANCEL);
the operator signs each FUNDED entry. PROTOCOL.md section 12 defines the canonical bytes; a
signature over them names the sender, the recipient and the kind, so it cannot be replayed onto
another recipient or kind, and it covers the payload byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping

import nacl.exceptions
import nacl.signing
import nkeys

SIG_HEADER = "Natsbank-Sig"  # base64url (no padding) of the 64-byte ed25519 signature
KEY_HEADER = "Natsbank-Key"  # the signer's nkey public key (informative: verified against the
# registry, never trusted from the header)
MESSAGE_DOMAIN = b"natsbank-msg/v1"
FUNDING_DOMAIN = b"natsbank-fund/v1"


# A NATS server's connect nonce: base64url of random bytes (15 characters in nats-server 2.x).
# A bank's service nkey both connects (it signs the server's nonce) and signs protocol messages,
# so a client signs a nonce only if it has this form: canonical bytes (a newline, a "/" in the
# domain) can never be passed off as one, and a server cannot get a message signed that way.
_SERVER_NONCE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def server_nonce_problem(nonce: object) -> str | None:
    """Why a connect nonce is not one a NATS server makes (signing it could sign a message)."""
    if isinstance(nonce, str) and _SERVER_NONCE.fullmatch(nonce):
        return None
    shown = f"{str(nonce)!r:.40}"
    return f"the server's nonce {shown} is not base64url: no authorization is signed with it"


class SignatureProblem(ValueError):
    """Why a signature does not verify: the one line a dead letter or the audit reports."""


def message_bytes(sender: str, recipient: str, kind: str, payload: bytes) -> bytes:
    """The canonical bytes of a protocol message: the domain, the sender, the recipient and the
    kind (tokens: no newline), each on its own line, then the payload exactly as published."""
    head = b"\n".join([MESSAGE_DOMAIN, sender.encode(), recipient.encode(), kind.encode()])
    return head + b"\n" + payload


def funding_bytes(participant: str, account: str, currency: str, ref: str, amount: str) -> bytes:
    """The canonical bytes of a FUNDED entry: the account, the currency, the funding reference
    and the amount as written in the entry."""
    fields = [participant, account, currency, ref, amount]
    return b"\n".join([FUNDING_DOMAIN, *(f.encode() for f in fields)])


class Signer:
    """A signing key (an nkey seed): signs canonical bytes, names its public key."""

    def __init__(self, seed: bytes) -> None:
        try:
            self._pair = nkeys.from_seed(bytearray(seed.strip()))
            self.public_key: str = self._pair.public_key.decode()
        except (nkeys.NkeysError, binascii.Error, ValueError) as exc:
            raise SignatureProblem(f"not an nkey seed ({type(exc).__name__})") from None

    def sign(self, data: bytes) -> str:
        return _b64(self._pair.sign(data))

    def message_headers(self, sender: str, recipient: str, kind: str, payload: bytes) -> dict:
        signature = self.sign(message_bytes(sender, recipient, kind, payload))
        return {SIG_HEADER: signature, KEY_HEADER: self.public_key}


def new_seed(prefix: int = nkeys.PREFIX_BYTE_USER) -> bytes:
    """A fresh nkey seed (a user key by default, like a service's nkey)."""
    return nkeys.encode_seed(os.urandom(32), prefix)


_verify_keys: dict[str, nacl.signing.VerifyKey] = {}


def _public_key_bytes(public_key: str) -> bytearray:
    """The decoded nkey public key (prefix byte, 32 key bytes, checksum), or SignatureProblem."""
    try:
        raw = bytearray(base64.b32decode(public_key.encode()))
    except (binascii.Error, ValueError):
        raise SignatureProblem("the public key is not an nkey") from None
    if len(raw) != 35 or not nkeys.valid_public_prefix_byte(raw[0]):
        raise SignatureProblem("the public key is not an nkey")
    crc = int.from_bytes(raw[-2:], "little")
    if nkeys.crc16(raw[:-2]) != crc:
        raise SignatureProblem("the public key's checksum is wrong")
    return raw


def public_key_problem(public_key: object, prefix: int) -> str | None:
    """Why `public_key` is not an nkey public key of kind `prefix` (nkeys.PREFIX_BYTE_USER: a
    bank's service key, PREFIX_BYTE_OPERATOR: the operator's), or None."""
    if not isinstance(public_key, str):
        return "not a string"
    try:
        raw = _public_key_bytes(public_key)
    except SignatureProblem as exc:
        return str(exc)
    if raw[0] != prefix:
        return f"not an nkey {_KINDS.get(prefix, 'public')} key (it starts with {public_key[:1]})"
    return None


_KINDS = {nkeys.PREFIX_BYTE_USER: "user (U…)", nkeys.PREFIX_BYTE_OPERATOR: "operator (O…)"}


def _verify_key(public_key: str) -> nacl.signing.VerifyKey:
    found = _verify_keys.get(public_key)
    if found is not None:
        return found
    raw = _public_key_bytes(public_key)
    key = nacl.signing.VerifyKey(bytes(raw[1:-2]))
    if len(_verify_keys) < 10_000:  # registered keys: few; never grows with hostile input
        _verify_keys[public_key] = key
    return key


def verify(public_key: str, data: bytes, signature: str | None) -> None:
    """Nothing if `signature` is `public_key`'s over `data`, else a SignatureProblem."""
    if not signature:
        raise SignatureProblem("no signature")
    try:
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except (binascii.Error, ValueError):
        raise SignatureProblem("the signature is not base64url") from None
    try:
        _verify_key(public_key).verify(data, raw)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        raise SignatureProblem("the signature does not verify") from None


def message_problem(
    headers: Mapping[str, str] | None,
    keys: Mapping[str, str],
    sender: str,
    recipient: str,
    kind: str,
    payload: bytes,
) -> str | None:
    """Why a received protocol message is not signed by its sender's registered key, or None.
    `keys`: participant -> its registered public key."""
    public_key = keys.get(sender)
    if not public_key:
        return f"the sender {sender!r:.40} has no registered signing key"
    signature = (headers or {}).get(SIG_HEADER)
    try:
        verify(public_key, message_bytes(sender, recipient, kind, payload), signature)
    except SignatureProblem as exc:
        return f"{exc} (sender {sender}, recipient {recipient}, kind {kind})"
    return None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
