"""The shared store: every account in one stream, one atomic step per transfer."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.client import Client

from eventsource.adapters.provision import Change
from eventsource.adapters.shared.provision import (
    apply_shared_topology,
    register_shared_participant,
    require_shared_store,
)
from eventsource.adapters.signing_key_file import SigningKeys
from eventsource.adapters.topology import Topology
from eventsource.core.events import AccountSnapshot, TransferState
from eventsource.core.model import TransferRequest
from eventsource.core.shared.layout import SHARED_STREAM, shared_consumer, shared_space
from eventsource.core.subjects import KeySpace
from eventsource.services.audit_report import AuditReport
from eventsource.services.client import Submitted
from eventsource.services.ledger import AccountBook, Record, TransferViews
from eventsource.services.shared import client
from eventsource.services.shared.audit import audit_shared
from eventsource.settings import Store


class SharedLedger(AccountBook):
    partitions = 1  # one stream
    gives_up = False  # a transfer is applied in one step: nothing to give up on
    store = Store.SHARED

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._registered: set[str] = set()

    async def provision(
        self,
        topology: Topology,
        *,
        dry_run: bool = False,
        force: bool = False,
        signing_keys: SigningKeys | None = None,
    ) -> list[Change]:
        return await apply_shared_topology(
            self.nc, topology, dry_run=dry_run, force=force, signing_keys=signing_keys
        )

    async def register(
        self, topology: Topology, participant: str, *, signing_key: str | None = None
    ) -> None:
        # no protocol messages: a shared-store registration names no signing key
        await register_shared_participant(self.nc, topology, participant)

    async def require(self, participants: Sequence[str] = ()) -> None:
        await require_shared_store(self.nc, list(participants))

    def space_of(self, participant: str) -> KeySpace:
        return shared_space()

    def consumers(self, participant: str) -> list[tuple[str, str]]:
        return [(SHARED_STREAM, shared_consumer(participant))]

    def submission_consumers(self, participant: str) -> set[str]:
        return {shared_consumer(participant)}

    async def accounts(self, participant: str | None = None) -> list[AccountSnapshot]:
        return await client.list_shared_accounts(self.nc, participant)

    async def submit(
        self, submitter: str, requests: list[TransferRequest], traceparent: str | None = None
    ) -> Submitted:
        await self.check_submitter(submitter)
        return await client.submit_shared(self.nc, submitter, requests, traceparent=traceparent)

    async def record(self, submitter: str, transfer_id: str) -> Record | None:
        found = await client.read_decision(self.nc, submitter, transfer_id)
        if found is None:
            return None
        return Record(submitter, client.as_final_state(found[0]), SHARED_STREAM, found[1])

    async def views(self, transfer_id: str, submitter: str | None = None) -> TransferViews | None:
        submitter = submitter or await client.find_submitter(self.nc, transfer_id)
        mine = await self.record(submitter, transfer_id) if submitter else None
        if submitter is None or mine is None:
            return None
        return TransferViews(submitter, mine, None, one_record=True)

    async def wait_final(
        self, submitter: str, ids: list[str], timeout: float
    ) -> dict[str, TransferState]:
        return await client.wait_decided(self.nc, submitter, ids, timeout=timeout)

    async def audit(self, *, expect_final: bool, full: bool = False) -> AuditReport:
        return await audit_shared(self.nc, expect_final=expect_final)  # nothing is archived
