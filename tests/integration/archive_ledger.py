"""A real ledger partition for the archive tests: provisioned as natsbank does, filled with real
events (JSON), inbox messages and a few payloads that are not JSON."""

from __future__ import annotations

import base64
import gzip
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
from nats.aio.client import Client

from eventsource.adapters.archive_store import PeriodExtras, read_period, write_period
from eventsource.adapters.provision import apply_topology
from eventsource.adapters.stream_reader import read_messages
from eventsource.adapters.topology import Topology
from eventsource.core.account import EntryKind
from eventsource.core.archive_format import ArchivedMessage, kept_headers
from eventsource.core.archive_manifest import decode_manifest, encode_manifest
from eventsource.core.events import (
    AccountChanged,
    AccountSnapshot,
    Entry,
    FundsReserved,
    TransferSettled,
    TransferState,
    encoder,
)
from eventsource.core.limits import ARCHIVE_BUCKET
from eventsource.core.model import AccountRef, Outcome, Side, Transfer
from eventsource.core.protocol import Phase
from eventsource.core.subjects import ledger_stream, state_subject

STREAM = ledger_stream(0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def provision(nc: Client) -> None:
    await apply_topology(nc, Topology(replicas=1, participants=["bank-a", "bank-b"]))


def transfer_of(transfer_id: str, comment: str = "") -> Transfer:
    return Transfer(
        id=transfer_id,
        debtor=AccountRef("bank-a", "alice"),
        creditor=AccountRef("bank-b", "bob"),
        amount="10.50",
        currency="EUR",
        comment=comment,
    )


def event(transfer_id: str, settled: bool, comment: str = "") -> bytes:
    transfer = transfer_of(transfer_id, comment)
    state = TransferState(
        transfer=transfer,
        digest=transfer.digest,
        side=Side.SUBMITTER,
        phase=Phase.SETTLED if settled else Phase.RESERVED,
        outcome=Outcome.OK if settled else None,
    )
    kind = TransferSettled if settled else FundsReserved
    return encoder.encode(kind(state=state, at=1_700_000_000_000))


def funding(amount: str) -> bytes:
    snapshot = AccountSnapshot(
        participant="bank-a",
        account="alice",
        currency="EUR",
        balance=amount,
        pending_debits="0.00",
        pending_credits="0.00",
    )
    entries = [Entry(EntryKind.FUNDED, "f1", amount)]
    return encoder.encode(AccountChanged(state=snapshot, at=1, entries=entries))


async def publish_transfers(nc: Client, ids: list[str], *, settle: bool = True) -> int:
    """Each id reserved, an inbox message, a message that is not JSON, then (if `settle`) each
    id settled OK; the last stream sequence."""
    js = nc.jetstream()
    ack = None
    for transfer_id in ids:
        subject = state_subject(0, f"bank-a.out.{transfer_id}")
        dropped = {"traceparent": "00-x", "Other": "y"}
        ack = await js.publish(subject, event(transfer_id, False), headers=dropped)
        ack = await js.publish(
            f"nb.0.to.bank-b.posting.{transfer_id}",
            b'{"type":"posting","sender":"bank-a","items":[]}',
            headers={"Nats-Msg-Id": f"m-{transfer_id}", "traceparent": "00-x"},
        )
        # The posting on the old layout (no sender token), the junk on the new one: the archive
        # keeps and reads both.
        ack = await js.publish("nb.0.to.bank-b.submit.bank-b.junk", b"\x00\xffnot json \n at all")
    if settle:
        for transfer_id in ids:
            subject = state_subject(0, f"bank-a.out.{transfer_id}")
            ack = await js.publish(subject, event(transfer_id, True))
    assert ack is not None
    return ack.seq


async def publish_noise(nc: Client, count: int, size: int) -> int:
    """`count` inbox messages of random JSON (it compresses badly, so objects span chunks)."""
    js = nc.jetstream()
    ack = None
    for i in range(count):
        noise = base64.b64encode(os.urandom(size * 3 // 4)).decode()
        payload = json.dumps({"type": "submit", "noise": noise}).encode()
        ack = await js.publish(f"nb.0.to.bank-a.submit.n{i}", payload)
    assert ack is not None
    return ack.seq


async def publish_funding(nc: Client, amount: str) -> int:
    subject = state_subject(0, "bank-a.acct.alice")
    return (await nc.jetstream().publish(subject, funding(amount))).seq


async def stream_messages(nc: Client, first_seq: int, end_seq: int) -> list[ArchivedMessage]:
    """What the stream holds in the range, as the archive must give it back."""
    found = []
    async for msg in read_messages(nc, STREAM, start_seq=first_seq):
        seq = msg.seq
        if seq >= end_seq:
            break
        raw = await nc.jetstream().get_msg(STREAM, seq)  # its time, as the server wrote it
        found.append(
            ArchivedMessage(
                seq=seq,
                time_ms=(raw.time - EPOCH) // timedelta(milliseconds=1),
                subject=msg.subject,
                payload=msg.data,
                headers=kept_headers(msg.headers),
            )
        )
    return found


async def ledger_range(nc: Client, first_seq: int, end_seq: int):
    """The ledger's messages in [first_seq, end_seq), streamed as the archiver would read them."""
    async for msg in read_messages(nc, STREAM, start_seq=first_seq):
        if msg.seq >= end_seq:
            return
        yield msg


def no_extras() -> PeriodExtras:
    """What an archiver that folds nothing gives: an empty snapshot, no findings."""
    return PeriodExtras(snapshot=b"[]", problems=[], settled={}, confirmed={})


async def archive(nc: Client, period: int, first_seq: int, end_seq: int, prev_chain: str):
    """Archive the ledger's [first_seq, end_seq) as `period`, read as the archiver reads it."""
    messages = ledger_range(nc, first_seq, end_seq)
    return await write_period(
        nc,
        0,
        period,
        messages,
        prev_chain,
        first_seq=first_seq,
        end_seq=end_seq,
        extras=no_extras,
    )


async def archived(nc: Client, period: int) -> list[ArchivedMessage]:
    return [message async for message in read_period(nc, 0, period)]


async def rewrite_object(nc: Client, name: str, change: Callable[[bytes], bytes]) -> None:
    """Replace an archived object's bytes (compressed, as stored) with `change(bytes)`, as
    anybody allowed to write the bucket could."""
    store = await nc.jetstream().object_store(ARCHIVE_BUCKET)
    await store.put(name, change((await store.get(name)).data))


def in_gzip(change: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """`change` applied to the uncompressed bytes, gzipped again."""
    return lambda data: gzip.compress(change(gzip.decompress(data)))


def rechained(data: bytes) -> bytes:
    """A manifest whose chain is made to match its (edited) fields again."""
    manifest = decode_manifest(data, "manifest")
    return encode_manifest(msgspec.structs.replace(manifest, chain=manifest.expected_chain()))


def flip_byte(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)
