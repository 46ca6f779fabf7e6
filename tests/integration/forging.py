"""Protocol messages as a participant's own service would sign them (its dev key, made when it
was registered): tests that publish messages by hand use it to get past the signature check."""

from __future__ import annotations

from eventsource.adapters.signing_keys import participant_signer


def signed_by(sender: str, recipient: str, kind: str, payload: bytes) -> dict[str, str]:
    """The signature headers `sender`'s service would put on `payload` to `recipient`."""
    return participant_signer(sender).message_headers(sender, recipient, str(kind), payload)
