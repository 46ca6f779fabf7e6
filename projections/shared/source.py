"""The shared store as a projection source: one stream, `KV_shared`, whose state events (not
its submission inboxes) become the independent store's rows (projections/shared/rows.py)."""

from __future__ import annotations

import logging

import msgspec
from nats.aio.client import Client

from eventsource.adapters.views import kv_revisions
from eventsource.core.events import account_event_decoder
from eventsource.core.shared.layout import (
    SHARED_BUCKET,
    SHARED_STREAM,
    is_transfer_key,
    shared_subject,
    shared_transfer_decoder,
)
from projections.compare import account_tuple, transfer_tuple
from projections.model import Row
from projections.shared.rows import shared_rows, views_of
from projections.store import ProjectedState, ProjectionDb

log = logging.getLogger("natsbank.projector")


class SharedSource:
    """Every key of the shared store, and of `participant`, only its own rows: its accounts,
    its transfers sent, and those others' records credited to it."""

    def __init__(self, participant: str | None = None) -> None:
        self.streams = [SHARED_STREAM]
        self.participant = participant

    def filter(self, k: int) -> str:
        # Not narrowed to the participant: its credits are in the other banks' records.
        return shared_subject(">")

    def rows(self, subject: str, data: bytes) -> list[Row]:
        return shared_rows(subject, data, self.participant)

    async def replay(self, nc: Client, store: ProjectionDb, k: int, position: int) -> None:
        return None  # the shared store keeps everything live: no archive

    async def expected(self, nc: Client) -> ProjectedState:
        return await shared_expected_rows(nc)

    async def archived(self, nc: Client) -> bool:
        return False


async def shared_expected_rows(nc: Client) -> ProjectedState:
    """The rows of the latest revision of every shared key, read exactly; a key whose value
    does not decode is quarantined by the services and dead-lettered by the projector: left
    out, with a warning."""
    accounts: dict[str, tuple] = {}
    transfers: dict[str, tuple] = {}
    for key, (data, _) in (await kv_revisions(nc, SHARED_BUCKET)).items():
        try:
            if not is_transfer_key(key):
                accounts[key] = account_tuple(account_event_decoder.decode(data).state)
                continue
            decision = shared_transfer_decoder.decode(data).state
        except (msgspec.DecodeError, IndexError) as exc:
            log.warning("%s: left out of the expected rows: %s", key, exc)
            continue
        for view_key, (_, state) in views_of(key.split(".", 1)[0], decision).items():
            transfers[view_key] = transfer_tuple(view_key, state)
    return ProjectedState(accounts=accounts, transfers=transfers)
