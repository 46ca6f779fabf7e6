"""A switch under attack from one of its own banks (issue 13): a cluster with authorization on,
three banks each served with its own credential and signing key, and bank-c's service and
client credentials in the attacker's hands. What the attacks need: raw publishes and requests
as bank-c, forged events and messages, and the operator's view to check that nothing moved."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client

from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.jetstream import connect, read_last
from eventsource.bootstrap import ServeOptions, participant_service
from eventsource.core.account import Account, EntryKind
from eventsource.core.dead_letter_records import LetterFilter
from eventsource.core.events import (
    AccountChanged,
    AccountSnapshot,
    Entry,
    account_event_decoder,
    encoder,
)
from eventsource.core.messages import Kind, Posting, Postings
from eventsource.core.model import Outcome, validate_transfer
from eventsource.core.money import format_amount
from eventsource.core.permissions import Identity, Role
from eventsource.core.protocol import Phase
from eventsource.core.subjects import (
    account_key,
    inbox_subject,
    incoming_key,
    ledger_stream,
    state_subject,
)
from eventsource.services.audit import AuditReport, audit
from eventsource.services.client import read_transfer, submit, wait_final
from eventsource.services.dead_letters import list_dead_letters
from eventsource.services.independent.ledger import IndependentLedger
from eventsource.services.participant import ParticipantService
from eventsource.settings import Transport
from tests.integration.authorized import AUTH, connected, credential, provision
from tests.integration.forging import signed_by
from tests.integration.live_bank import transfer
from tests.integration.refusals import answer, watched

ATTACKER = "bank-c"
LEDGER = ledger_stream(0)
WATCHED_STREAMS = (LEDGER, "KV_participants", "DEADLETTER")
NO_ANSWER_S = 1.0  # a refused request gets no answer: how long to wait for the one it lacks
FUNDED_A1 = 10_000  # bank-a/a1 opened with 100.00; bank-b/b1 empty; bank-c/c1 5.00, c2 empty


@dataclass
class Switch:
    """The running switch, the attacker's connections, and the operator's eyes."""

    cluster: ClusterInfo
    operator: Client  # the audit credential: reads everything, writes nothing
    service: Client  # bank-c's service credential
    client: Client  # bank-c's client credential
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    services: dict[str, ParticipantService] = field(default_factory=dict)  # each bank's own

    async def last_sequences(self) -> dict[str, int]:
        js = self.operator.jetstream()
        return {s: (await js.stream_info(s)).state.last_seq for s in WATCHED_STREAMS}

    async def balance(self, participant: str, name: str) -> tuple[int, int, int]:
        """(balance, pending debits, pending credits), from the stream leader."""
        account = await self.account(participant, name)
        return account.balance, account.pending_debits, account.pending_credits

    async def account(self, participant: str, name: str) -> Account:
        key = account_key(participant, name)
        found = await read_last(self.operator, LEDGER, state_subject(0, key), leader=True)
        assert found is not None, key
        return account_event_decoder.decode(found[0]).state.to_account()

    async def letters(self, reason: str) -> list:
        async with connected(self.cluster, Role.DEAD_LETTERS) as nc:
            return (await list_dead_letters(nc, LetterFilter(reason=reason), 100)).letters

    async def audit(self) -> AuditReport:
        return await audit(self.operator, AUTH.partitions, expect_final=True)

    async def honest_transfer(self, tid: str) -> Outcome:
        """bank-a pays bank-b 10.00 through its own client credential, to the end."""
        request = transfer(tid, "bank-a/a1", "bank-b/b1", "10.00")
        async with connected(self.cluster, Role.CLIENT, "bank-a") as bank_a:
            await submit(bank_a, AUTH.partitions, "bank-a", [request])
            final = await wait_final(bank_a, AUTH.partitions, "bank-a", [tid], timeout=60)
        await self.confirmed_by_bank_b(tid)
        return final[tid].outcome

    async def confirmed_by_bank_b(self, tid: str, patience_s: float = 30.0) -> None:
        """bank-a settles on bank-b's result; bank-b posts its credit on bank-a's confirm, a
        moment later: wait (bounded) for that side too before reading balances."""
        key = incoming_key("bank-b", "bank-a", tid)
        deadline = asyncio.get_running_loop().time() + patience_s
        while asyncio.get_running_loop().time() < deadline:
            found = await read_transfer(self.operator, AUTH.partitions, "bank-b", key)
            if found is not None and found[0].phase is Phase.CONFIRMED:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"bank-b never confirmed {tid}")


async def attempt(nc: Client, subject: str, payload: bytes, headers: dict | None = None):
    """A publish as an attacker sends it, asking for the stream's answer: the answer's bytes, or
    None when none came (the server refused it and nothing answers)."""
    return await answer(nc, subject, payload, timeout=NO_ANSWER_S, headers=headers)


def forged_entries(account: Account, *entries: tuple[EntryKind, str, int]) -> bytes:
    """An AccountChanged whose snapshot agrees with its entries: only a cause is missing."""
    written = []
    for kind, ref, minor in entries:
        account = account.apply(kind, minor)
        written.append(Entry(kind, ref, format_amount(minor, account.currency)))
    return encoder.encode(AccountChanged(state=AccountSnapshot.of(account), at=0, entries=written))


def posting_from(sender: str, debtor: str, creditor: str, tid: str, amount: str) -> bytes:
    t = validate_transfer(transfer(tid, debtor, creditor, amount), debtor.split("/")[0])
    return msgspec.json.encode(
        Postings(sender=sender, postings=[Posting(transfer=t, digest=t.digest)])
    )


async def publish_as_attacker(
    switch: Switch, recipient: str, kind: Kind, payload: bytes, headers: dict | None
) -> bytes | None:
    """On the recipient's inbox, on the one sender subject bank-c's credential may use."""
    subject = inbox_subject(0, recipient, kind, ATTACKER, "forged")
    return await attempt(switch.service, subject, payload, headers)


def signed_as_attacker(recipient: str, kind: Kind, payload: bytes) -> dict[str, str]:
    return signed_by(ATTACKER, recipient, kind, payload)


JETSTREAM = ServeOptions(transport=Transport.JETSTREAM)


@contextlib.asynccontextmanager
async def running_switch(
    cluster: ClusterInfo, options: ServeOptions = JETSTREAM
) -> AsyncIterator[Switch]:
    """The banks provisioned as the operator would, each served with its own credential (and
    the `options`: JetStream mode unless a row says otherwise)."""
    await provision(cluster)
    async with connected(cluster, Role.FUNDING) as funding:
        await IndependentLedger(funding, AUTH.partitions).open_account("bank-c", "c2", "EUR")
    services: list[tuple[Client, asyncio.Task]] = []
    serving: dict[str, ParticipantService] = {}
    stop = asyncio.Event()
    try:
        for bank in AUTH.participants:
            identity = Identity(Role.SERVICE, bank)
            nc = await connect(cluster.url, credential=credential(cluster, identity))
            ledger = IndependentLedger(nc, AUTH.partitions)
            service = participant_service(ledger, bank, options)
            serving[bank] = service
            services.append((nc, asyncio.create_task(service.run(stop))))
        async with (
            connected(cluster, Role.AUDIT) as operator,
            watched(cluster, Role.SERVICE, ATTACKER) as service,
            watched(cluster, Role.CLIENT, ATTACKER) as client,
        ):
            yield Switch(cluster, operator, service, client, stop, serving)
    finally:
        stop.set()
        for _, task in services:  # the row is over: no need to wait out a fetch (FETCH_WAIT_S)
            task.cancel()
        if services:
            await asyncio.wait([task for _, task in services], timeout=10)
        for nc, _ in services:
            with contextlib.suppress(Exception):
                await nc.close()
