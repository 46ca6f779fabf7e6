"""What a bank's client reads from the shared store: a transfer's one record, exactly."""

from __future__ import annotations

from nats.aio.client import Client

from eventsource.adapters.jetstream import read_last
from eventsource.adapters.views import kv_latest
from eventsource.core.events import AccountSnapshot, TransferState, account_event_decoder
from eventsource.core.model import Side, TransferRequest
from eventsource.core.protocol import Phase
from eventsource.core.shared.layout import (
    SHARED_BUCKET,
    SHARED_STREAM,
    TransferDecision,
    shared_subject,
    shared_transfer_decoder,
    submit_subject,
    transfer_key,
)
from eventsource.services.client import (
    Submitted,
    poll_until_found,
    publish_submission,
    submission_token,
)


async def read_decision(
    nc: Client, submitter: str, transfer_id: str
) -> tuple[TransferDecision, int] | None:
    """The record and its stream sequence, from the stream leader; None while undecided."""
    last = await read_last(
        nc, SHARED_STREAM, shared_subject(transfer_key(submitter, transfer_id)), leader=True
    )
    if last is None:
        return None
    return shared_transfer_decoder.decode(last[0]).state, last[1]


def as_final_state(decision: TransferDecision) -> TransferState:
    """The record as the submitter's final view, so `submit --wait` reports it as it reports
    an independent-store outcome (there is one side, and it is final at once)."""
    return TransferState(
        transfer=decision.transfer,
        digest=decision.digest,
        side=Side.SUBMITTER,
        phase=Phase.SETTLED,
        outcome=decision.outcome,
        cause=decision.cause,
        detail=decision.detail,
    )


async def wait_decided(
    nc: Client, submitter: str, ids: list[str], *, timeout: float = 60.0
) -> dict[str, TransferState]:
    """Poll until each id has its record (or time runs out)."""

    async def decided(transfer_id: str) -> TransferState | None:
        view = await read_decision(nc, submitter, transfer_id)
        return None if view is None else as_final_state(view[0])

    return await poll_until_found(ids, decided, timeout)


async def submit_shared(
    nc: Client,
    submitter: str,
    requests: list[TransferRequest],
    *,
    traceparent: str | None = None,
) -> Submitted:
    """Submit into the submitter's inbox on the shared store."""
    subject = submit_subject(submitter, submission_token(requests))
    return await publish_submission(nc, subject, requests, traceparent=traceparent)


async def list_shared_accounts(nc: Client, participant: str | None = None) -> list[AccountSnapshot]:
    values = await kv_latest(nc, SHARED_BUCKET, f"{participant or '*'}.acct.*")
    return [account_event_decoder.decode(values[k]).state for k in sorted(values)]


async def find_submitter(nc: Client, transfer_id: str) -> str | None:
    """Whose transfer this id is (ids are unique per submitter; the first found is taken)."""
    found = await kv_latest(nc, SHARED_BUCKET, f"*.xfer.{transfer_id}")
    return next(iter(sorted(found)), "").split(".", 1)[0] or None
