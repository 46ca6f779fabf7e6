"""Signing what a participant sends and verifying what it receives (PROTOCOL.md section 12).

Both transports go through here: the engine signs every outbound protocol message of a
decision before the carrier takes it (JetStream mode: into the atomic batch, so the ledger keeps
the signature with the message; core mode: published after the commit), and core mode's resend
clock signs what it sends again. The engine verifies each received protocol message before it
is decided."""

from __future__ import annotations

import dataclasses

from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.key_registry import SenderKeys
from eventsource.core.dead_letter_records import RETRY_OF_HEADER
from eventsource.core.messages import KIND_OF, InboxMessage, SubmitTransfers
from eventsource.core.signing import Signer, message_problem
from eventsource.core.subjects import parse_inbox_subject
from eventsource.core.workset import Write


def signed(writes: list[Write], sender: str, signer: Signer | None) -> list[Write]:
    """`writes` with each outbound protocol message (key None) signed by `sender`'s key."""
    if signer is None:
        return writes
    out = []
    for write in writes:
        where = parse_inbox_subject(write.subject) if write.key is None else None
        if where is not None:
            recipient, kind = where.recipient, where.kind
            headers = signer.message_headers(sender, recipient, kind, write.payload)
            write = dataclasses.replace(write, headers={**(write.headers or {}), **headers})
        out.append(write)
    return out


class MessageVerifier:
    """A receiver's check of each protocol message: signed by the sender it names, with that
    sender's registered key, for this recipient and this kind, over these exact bytes."""

    def __init__(self, nc: Client, recipient: str) -> None:
        self.recipient = recipient
        self.keys = SenderKeys(nc)
        self.verified = 0
        self.refused = 0

    async def problem(self, msg: Msg, message: InboxMessage) -> str | None:
        """None if the message may be decided; else why not (it is dead-lettered)."""
        if isinstance(message, SubmitTransfers):
            return None  # a client's submission to its own bank: the server's permissions
        sender, kind = message.sender, KIND_OF[type(message)].value
        args = (msg.headers, sender, self.recipient, kind, msg.data)
        problem = message_problem(args[0], {sender: await self.keys.key(sender)}, *args[1:])
        if problem is not None:  # perhaps a key registered since: read the registry again
            fresh = await self.keys.key(sender, refresh=True)
            problem = message_problem(args[0], {sender: fresh}, *args[1:])
        if problem is not None and RETRY_OF_HEADER in (msg.headers or {}):
            # Republished by an operator (`dead-letters retry`): signed by an operator key.
            for key in await self.keys.operators():
                if message_problem(args[0], {sender: key}, *args[1:]) is None:
                    problem = None
                    break
        if problem is None:
            self.verified += 1
        else:
            self.refused += 1
        return problem
