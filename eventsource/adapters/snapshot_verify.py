"""Re-fold an account's events before a service trusts its last snapshot (issue 13; the fold is
core/snapshot_check.py, the starting points and what is checked are in docs/ARCHITECTURE.md,
"A snapshot is trusted only if the service's own fold reproduces it").

The events are read with batched direct gets filtered on the account's subject (`next_by_subj`:
no consumer, which a bank may not create), and the walk reaches the stream leader's last
sequence for that subject before it ends (adapters/direct_reader.py), so a replica that is
catching up cannot hide an event. It stops at the sequence of the snapshot being checked.
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client

from eventsource.adapters.direct_reader import count_from, read_by_direct_get
from eventsource.core.account import Account
from eventsource.core.archive_fold import CARRIED_HEADER
from eventsource.core.errors import ReplicaBehind
from eventsource.core.events import AccountEvent, account_event_decoder
from eventsource.core.limits import REFOLD_EVENTS_MAX
from eventsource.core.snapshot_check import AccountRefold, ApplyEntry, apply_entry


async def refold_problem(
    nc: Client,
    stream: str,
    subject: str,
    key: str,
    last_seq: int,
    *,
    trusted: tuple[Account, int] | None = None,
    apply: ApplyEntry = apply_entry,
    events_max: int = REFOLD_EVENTS_MAX,
) -> str | None:
    """Why the snapshot of the event at `last_seq` on `subject` is not what the key's entries
    fold to, or None. `trusted`: a state the caller trusts and its sequence; the fold starts
    there instead of at the subject's first live event; without it, at most the last
    `events_max` events are folded (the first of them is the start). ReplicaBehind if the walk
    could not reach `last_seq` (the caller's read is retried: nothing is decided on it)."""
    if trusted is not None and trusted[1] == last_seq:
        return None  # the very state trusted
    if trusted is not None and trusted[1] > last_seq:
        trusted = None  # an older event (a lagging replica) was never compared itself
    if trusted is not None:
        refold, start = AccountRefold.trusted(key, trusted[0], apply), trusted[1] + 1
    else:
        refold = AccountRefold(key, apply)
        start = await window_start(nc, stream, subject, last_seq, events_max)
    last: AccountEvent | None = None
    async for msg in read_by_direct_get(nc, stream, [subject], start_seq=start):
        if msg.seq > last_seq:
            break
        try:
            last = account_event_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            return f"its event at sequence {msg.seq} does not decode: {str(exc)[:200]}"
        refold.add(last, msg.seq, carried=CARRIED_HEADER in msg.headers)
        if msg.seq == last_seq:
            return refold.verdict(last)
        if refold.problem is not None:
            return refold.problem
    raise ReplicaBehind(f"the events of {key} read short of sequence {last_seq}")


async def window_start(
    nc: Client, stream: str, subject: str, last_seq: int, events_max: int
) -> int:
    """The lowest sequence from which `subject` holds at most `events_max` events up to
    `last_seq`: 1 for a history that short (one request), else a binary search on counts
    (about log2(last_seq) requests). Counts come from any replica: a lagging one shifts the
    window a little, never what the walk must reach."""
    after_last = await count_from(nc, stream, subject, last_seq + 1)

    async def held(seq: int) -> int:  # events in seq..last_seq
        return await count_from(nc, stream, subject, seq) - after_last

    if await held(1) <= events_max:
        return 1
    low, high = 1, last_seq  # held(low) > events_max >= held(high)
    while high - low > 1:
        middle = (low + high) // 2
        if await held(middle) > events_max:
            low = middle
        else:
            high = middle
    return high
