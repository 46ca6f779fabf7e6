"""Opening, funding and closing accounts: the only way money enters the ledger (I1)."""

from __future__ import annotations

import functools
import time
import uuid

from nats.aio.client import Client

from eventsource.adapters.batch_commit import commit_checked
from eventsource.adapters.jetstream import read_last
from eventsource.adapters.key_registry import registered_operator
from eventsource.adapters.state_reader import decode_state
from eventsource.core.account import Account, EntryKind
from eventsource.core.errors import (
    DomainError,
    RecordQuarantined,
    RejectionCause,
    StaleState,
    UnknownAccount,
)
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
from eventsource.core.quarantine import Quarantined, decode_stored
from eventsource.core.signing import Signer, funding_bytes
from eventsource.core.subjects import KeySpace, account_key
from eventsource.core.workset import Write


def _now() -> int:
    return int(time.time() * 1000)


async def open_account(
    nc: Client,
    space: KeySpace,
    participant: str,
    account: str,
    currency: str,
    initial: str | None = None,
) -> Account:
    """Open (and optionally fund) an account; opening the same account twice is refused."""
    require_token(participant, "participant")
    require_token(account, "account")
    exponent_of(currency)
    subject_of = space.subject
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
        event = await _funding_event(nc, funded, f"open-{uuid.uuid4().hex[:12]}", amount)
        writes.append(Write(subject_of(key), encoder.encode(event), None, key))
        opened = funded
    try:
        await commit_checked(nc, space.stream, writes, what=f"open account {participant}/{account}")
    except StaleState:
        raise DomainError(
            f"account {participant}/{account} already exists", RejectionCause.INVALID_TRANSFER
        ) from None
    return opened


async def read_account(
    nc: Client, space: KeySpace, participant: str, account: str
) -> tuple[Account, int]:
    key = account_key(participant, account)
    last = await read_last(nc, space.stream, space.subject(key), leader=True)
    if last is None:
        raise UnknownAccount(f"unknown account {participant}/{account}")
    state = decode_stored(key, last[0], last[1], functools.partial(decode_state, key))
    if isinstance(state, Quarantined):
        raise RecordQuarantined(state.describe())
    assert isinstance(state, Account)
    return state, last[1]


async def fund_account(
    nc: Client,
    space: KeySpace,
    participant: str,
    account: str,
    amount_text: str,
    reference: str | None = None,
) -> Account:
    """Create money on an account (a FUNDED entry), guarded like any other account change."""
    reference = reference or f"fund-{uuid.uuid4().hex[:12]}"
    require_token(reference, "funding reference")

    signer = await _operator(nc)

    async def funded(current: Account) -> tuple[Account, AccountChanged]:
        amount = parse_amount(amount_text, current.currency)
        changed = current.apply(EntryKind.FUNDED, amount)
        return changed, await _funding_event(nc, changed, reference, amount, signer)

    return await _change(nc, space, participant, account, funded, "fund")


async def _operator(nc: Client) -> Signer:
    return await registered_operator(nc)


async def _funding_event(
    nc: Client, funded: Account, reference: str, amount: int, signer: Signer | None = None
) -> AccountChanged:
    """The FUNDED change of `funded` (the account after it), signed by the operator."""
    signer = signer or await _operator(nc)
    text = format_amount(amount, funded.currency)
    signed = funding_bytes(funded.participant, funded.account, funded.currency, reference, text)
    return AccountChanged(
        state=AccountSnapshot.of(funded),
        at=_now(),
        entries=[Entry(EntryKind.FUNDED, reference, text)],
        signatures={reference: signer.sign(signed)},
    )


async def close_account(nc: Client, space: KeySpace, participant: str, account: str) -> Account:
    """Closed accounts take no new reservations or credits; money in flight still settles."""

    async def closed(current: Account) -> tuple[Account, AccountClosed]:
        changed = _closed(current)
        return changed, AccountClosed(state=AccountSnapshot.of(changed), at=_now())

    return await _change(nc, space, participant, account, closed, "close")


async def _change(
    nc: Client, space: KeySpace, participant: str, account: str, change, verb: str
) -> Account:
    """Read the account from the leader, apply `change`, commit it guarded by the sequence
    read; on a race, read again."""
    key = account_key(participant, account)
    while True:
        current, seq = await read_account(nc, space, participant, account)
        changed, event = await change(current)
        write = Write(space.subject(key), encoder.encode(event), seq, key)
        try:
            what = f"{verb} account {participant}/{account}"
            await commit_checked(nc, space.stream, [write], what=what)
            return changed
        except StaleState:
            continue


def _closed(account: Account) -> Account:
    from dataclasses import replace

    return replace(account, closed=True)
