"""Opening, funding and closing accounts: the only way money enters the ledger (I1).

Each change is committed with `commit_checked`: retried through a leader election, and landed
exactly once, because its first write expects the account subject's last sequence and its
payload is unique (a time stamp, and a funding reference)."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable

from nats.aio.client import Client

from eventsource.adapters.jetstream import StaleState, commit_checked, read_last
from eventsource.adapters.ledger_state import decode_state
from eventsource.core.account import Account, EntryKind
from eventsource.core.errors import DomainError, RejectionCause, UnknownAccount
from eventsource.core.events import (
    AccountChanged,
    AccountClosed,
    AccountOpened,
    AccountSnapshot,
    Entry,
    encoder,
)
from eventsource.core.model import require_token
from eventsource.core.money import exponent_of, format_amount, parse_amount
from eventsource.core.shared_store import SHARED_STREAM, shared_subject
from eventsource.core.subjects import account_key, ledger_stream, partition_of, state_subject
from eventsource.core.workset import Write


def _now() -> int:
    return int(time.time() * 1000)


def _where(partitions: int, participant: str, shared: bool) -> tuple[str, Callable[[str], str]]:
    """The stream, and the subject of a key: the participant's partition, or the shared store."""
    if shared:
        return SHARED_STREAM, shared_subject
    k = partition_of(participant, partitions)
    return ledger_stream(k), functools.partial(state_subject, k)


async def open_account(
    nc: Client,
    partitions: int,
    participant: str,
    account: str,
    currency: str,
    initial: str | None = None,
    *,
    shared: bool = False,
) -> Account:
    """Open (and optionally fund) an account; opening the same account twice is refused."""
    require_token(participant, "participant")
    require_token(account, "account")
    exponent_of(currency)
    stream, subject_of = _where(partitions, participant, shared)
    key = account_key(participant, account)
    opened = Account(participant, account, currency)
    writes = [
        Write(
            subject_of(key),
            encoder.encode(AccountOpened(state=AccountSnapshot.of(opened), at=_now())),
            0,
            key,
        )
    ]
    if initial is not None:
        amount = parse_amount(initial, currency)
        funded = opened.apply(EntryKind.FUNDED, amount)
        event = AccountChanged(
            state=AccountSnapshot.of(funded),
            at=_now(),
            entries=[
                Entry(
                    EntryKind.FUNDED,
                    f"open-{uuid.uuid4().hex[:12]}",
                    format_amount(amount, currency),
                )
            ],
        )
        writes.append(Write(subject_of(key), encoder.encode(event), None, key))
        opened = funded
    try:
        await commit_checked(nc, stream, writes, what=f"open account {participant}/{account}")
    except StaleState:
        raise DomainError(
            f"account {participant}/{account} already exists", RejectionCause.INVALID_TRANSFER
        ) from None
    return opened


async def read_account(
    nc: Client, partitions: int, participant: str, account: str, *, shared: bool = False
) -> tuple[Account, int]:
    stream, subject_of = _where(partitions, participant, shared)
    key = account_key(participant, account)
    last = await read_last(nc, stream, subject_of(key), leader=True)
    if last is None:
        raise UnknownAccount(f"unknown account {participant}/{account}")
    state = decode_state(key, last[0])
    assert isinstance(state, Account)
    return state, last[1]


async def fund_account(
    nc: Client,
    partitions: int,
    participant: str,
    account: str,
    amount_text: str,
    reference: str | None = None,
    *,
    shared: bool = False,
) -> Account:
    """Create money on an account (a FUNDED entry), guarded like any other account change."""
    reference = reference or f"fund-{uuid.uuid4().hex[:12]}"
    require_token(reference, "funding reference")
    stream, subject_of = _where(partitions, participant, shared)
    key = account_key(participant, account)
    while True:
        current, seq = await read_account(nc, partitions, participant, account, shared=shared)
        amount = parse_amount(amount_text, current.currency)
        funded = current.apply(EntryKind.FUNDED, amount)
        event = AccountChanged(
            state=AccountSnapshot.of(funded),
            at=_now(),
            entries=[Entry(EntryKind.FUNDED, reference, format_amount(amount, current.currency))],
        )
        write = Write(subject_of(key), encoder.encode(event), seq, key)
        try:
            await commit_checked(nc, stream, [write], what=f"fund account {participant}/{account}")
            return funded
        except StaleState:
            continue


async def close_account(
    nc: Client, partitions: int, participant: str, account: str, *, shared: bool = False
) -> Account:
    """Closed accounts take no new reservations or credits; money in flight still settles."""
    stream, subject_of = _where(partitions, participant, shared)
    key = account_key(participant, account)
    while True:
        current, seq = await read_account(nc, partitions, participant, account, shared=shared)
        closed = _closed(current)
        event = AccountClosed(state=AccountSnapshot.of(closed), at=_now())
        write = Write(subject_of(key), encoder.encode(event), seq, key)
        try:
            await commit_checked(nc, stream, [write], what=f"close account {participant}/{account}")
            return closed
        except StaleState:
            continue


def _closed(account: Account) -> Account:
    from dataclasses import replace

    return replace(account, closed=True)
