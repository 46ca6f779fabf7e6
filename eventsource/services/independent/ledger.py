"""The independent store: each participant's own ledger partition, the three-phase protocol."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.client import Client

from eventsource.adapters.archive_lookup import ArchiveLookup
from eventsource.adapters.provision import Change, apply_topology, register_participant
from eventsource.adapters.registry import registered_participants, require_registered
from eventsource.adapters.signing_key_file import SigningKeys
from eventsource.adapters.topology import Topology
from eventsource.adapters.views import list_accounts, list_transfers
from eventsource.core.events import AccountSnapshot, TransferState
from eventsource.core.history import KEEP_EVERYTHING, History
from eventsource.core.model import TransferRequest, is_token
from eventsource.core.subjects import (
    KeySpace,
    inbox_consumers,
    ledger_stream,
    outgoing_key,
    partition_of,
    partition_space,
    submit_consumer,
)
from eventsource.services import audit, client
from eventsource.services.archived import NO_ARCHIVE, ArchivedRecords
from eventsource.services.audit_report import AuditReport
from eventsource.services.client import Submitted
from eventsource.services.ledger import AccountBook, Record, TransferViews
from eventsource.settings import Store


class IndependentLedger(AccountBook):
    gives_up = True  # transfers may carry a deadline or a maximum of attempts
    store = Store.INDEPENDENT

    def __init__(
        self,
        nc: Client,
        partitions: int,
        history: History = KEEP_EVERYTHING,
        *,
        accepts_old_subjects: bool = True,
    ) -> None:
        self.nc = nc
        self.partitions = partitions  # 0 until provisioned
        self.history = history  # the live horizon streams init recorded
        self.accepts_old_subjects = accepts_old_subjects  # inbox.old_subjects
        self._registered: set[str] = set()

    def archive_of(self, partition: int) -> ArchivedRecords:
        """Where a decider looks for records that left partition k's live ledger."""
        if not self.history.bounded:
            return NO_ARCHIVE
        return ArchiveLookup(self.nc, partition)

    async def provision(
        self,
        topology: Topology,
        *,
        dry_run: bool = False,
        force: bool = False,
        signing_keys: SigningKeys | None = None,
    ) -> list[Change]:
        changes = await apply_topology(
            self.nc, topology, dry_run=dry_run, force=force, signing_keys=signing_keys
        )
        self.partitions = topology.partitions
        return changes

    async def register(
        self, topology: Topology, participant: str, *, signing_key: str | None = None
    ) -> None:
        await register_participant(self.nc, topology, participant, signing_key=signing_key)

    async def require(self, participants: Sequence[str] = ()) -> None:
        # The registry's topology record was read when this ledger was opened.
        await require_registered(self.nc, list(participants), self.partitions)

    def space_of(self, participant: str) -> KeySpace:
        return partition_space(self.home_of(participant))

    def home_of(self, participant: str) -> int:
        return partition_of(participant, self.partitions)

    def consumers(self, participant: str) -> list[tuple[str, str]]:
        return [
            (ledger_stream(k), durable)
            for k in range(self.partitions)
            for durable in inbox_consumers(participant, k)
        ]

    def submission_consumers(self, participant: str) -> set[str]:
        return {submit_consumer(participant, k) for k in range(self.partitions)}

    async def accounts(self, participant: str | None = None) -> list[AccountSnapshot]:
        return await list_accounts(self.nc, self.partitions, participant)

    async def submit(
        self, submitter: str, requests: list[TransferRequest], traceparent: str | None = None
    ) -> Submitted:
        await self.check_submitter(submitter)
        return await client.submit(
            self.nc, self.partitions, submitter, requests, traceparent=traceparent
        )

    async def record(self, submitter: str, transfer_id: str) -> Record | None:
        key = outgoing_key(submitter, transfer_id)
        found = await client.read_transfer(
            self.nc, self.partitions, submitter, key, self.archive_of
        )
        if found is None:
            return None
        return Record(submitter, found[0], ledger_stream(self.home_of(submitter)), found[1])

    async def views(self, transfer_id: str, submitter: str | None = None) -> TransferViews | None:
        if submitter is None:
            submitter = await self._submitter_of(transfer_id)
            if submitter is None:
                return None
        mine, theirs = await client.transfer_views(
            self.nc, self.partitions, submitter, transfer_id, self.archive_of
        )
        if mine is None:
            return None
        receiver = mine[0].transfer.creditor.participant
        return TransferViews(
            submitter,
            Record(submitter, mine[0], ledger_stream(self.home_of(submitter)), mine[1]),
            None
            if theirs is None
            else Record(receiver, theirs[0], ledger_stream(self.home_of(receiver)), theirs[1]),
        )

    async def _submitter_of(self, transfer_id: str) -> str | None:
        """Who submitted `transfer_id`: a live record says, else (with a live horizon) the
        archive of each registered participant is asked in turn."""
        found = await list_transfers(self.nc, self.partitions, f"*.out.{transfer_id}")
        if found:
            return next(iter(found)).split(".", 1)[0]
        if not self.history.bounded or not is_token(transfer_id):
            return None
        for registration in await registered_participants(self.nc):
            key = outgoing_key(registration.participant, transfer_id)
            if await self.archive_of(registration.partition).latest(key) is not None:
                return registration.participant
        return None

    async def wait_final(
        self, submitter: str, ids: list[str], timeout: float
    ) -> dict[str, TransferState]:
        return await client.wait_final(
            self.nc, self.partitions, submitter, ids, timeout=timeout, archives=self.archive_of
        )

    async def audit(self, *, expect_final: bool, full: bool = False) -> AuditReport:
        return await audit.audit(
            self.nc, self.partitions, expect_final=expect_final, history=self.history, full=full
        )
