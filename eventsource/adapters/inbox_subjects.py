"""Which inboxes a store's streams accept: only registered participants'. A message published
onto the inbox subject of a participant nobody registered matches no stream, so it is never
ACKed (a 503 "no responders", like every publish no stream takes) and never sits unprocessed.

The registry is the source of truth. Every registration adds to the streams' subjects those of
the whole registry (never removing one) and then advances a version key with a compare-and-set;
a writer that lost the race adds again, so two registrations at once never leave one of them
out, and a registry read that lags behind can only add less, not take away."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from eventsource.adapters.retry import transient_retry
from eventsource.core.errors import InfrastructureError
from eventsource.core.limits import INBOX_SYNC_ATTEMPTS_MAX
from eventsource.core.subjects import PARTICIPANTS_BUCKET

INBOXES_KEY = "_inboxes"  # the version of the streams' inbox subjects, advanced by every sync

# participants -> {stream: its subjects}
SubjectsOf = Callable[[list[str]], dict[str, list[str]]]


async def sync_inbox_subjects(
    nc: Client,
    subjects_of: SubjectsOf,
    registered: Callable[[], object],
    *,
    extra: Iterable[str] = (),
) -> None:
    """Make each stream's subjects those of the registry (and `extra`, a participant about to
    be registered), and advance the version; repeat when another writer advanced it first."""
    js = nc.jetstream()
    kv = await js.key_value(PARTICIPANTS_BUCKET)
    for _ in range(INBOX_SYNC_ATTEMPTS_MAX):
        revision = await transient_retry(
            functools.partial(_revision, kv), what="read of the inbox subjects' version"
        )
        names = sorted({r.participant for r in await registered()} | set(extra))
        for stream, subjects in subjects_of(names).items():
            await transient_retry(
                functools.partial(_set_subjects, js, stream, subjects),
                what=f"update of the inbox subjects of stream {stream}",
            )
        if await _advance(kv, revision, len(names)):
            return
    raise InfrastructureError(
        f"the inbox subjects did not settle after {INBOX_SYNC_ATTEMPTS_MAX} attempts: "
        "registrations keep racing; run `natsbank streams init` again"
    )


async def _revision(kv) -> int:
    try:
        return (await kv.get(INBOXES_KEY)).revision or 0
    except NotFoundError:
        return 0


async def _set_subjects(js, stream: str, subjects: list[str]) -> None:
    """Adds what is missing; never removes a subject (a registration is never undone, and a
    registry read that lags must not close an inbox). Idempotent."""
    info = await js.stream_info(stream)
    current = info.config.subjects or []
    missing = [s for s in subjects if s not in current]
    if missing:
        info.config.subjects = [*current, *missing]
        await js.update_stream(info.config)


async def _advance(kv, revision: int, count: int) -> bool:
    value = str(count).encode()
    try:
        if revision:
            await kv.update(INBOXES_KEY, value, last=revision)
        else:
            await kv.create(INBOXES_KEY, value)
        return True
    except Exception as exc:  # nats-py: KeyWrongLastSequenceError when another writer won
        if "WrongLastSequence" in type(exc).__name__:
            return False
        raise
