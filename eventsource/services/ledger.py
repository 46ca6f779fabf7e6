"""What a bank, an operator and the benchmark do with a store, in one interface: provision it,
open and fund accounts, submit, read outcomes, audit. `bootstrap.open_ledger` gives the
implementation of the configured store (services/independent/ledger.py, services/shared/)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from nats.aio.client import Client

from eventsource.adapters.provision import Change
from eventsource.adapters.registry import is_registered
from eventsource.adapters.signing_key_file import SigningKeys
from eventsource.adapters.topology import Topology
from eventsource.core.account import Account
from eventsource.core.errors import DomainError, RejectionCause
from eventsource.core.events import AccountSnapshot, TransferState
from eventsource.core.model import TransferRequest
from eventsource.core.subjects import KeySpace
from eventsource.services import accounts
from eventsource.services.audit_report import AuditReport
from eventsource.services.client import Submitted
from eventsource.settings import Store


@dataclass(frozen=True, slots=True)
class Record:
    """One side's record of a transfer, read from the stream leader, and where it sits."""

    owner: str  # the participant whose record it is
    state: TransferState
    stream: str
    sequence: int


@dataclass(frozen=True, slots=True)
class TransferViews:
    """Both sides' records of one transfer. The shared store keeps one record for both
    (`one_record`): it is final from its first write."""

    submitter: str
    mine: Record
    theirs: Record | None
    one_record: bool = False


class Ledger(Protocol):
    nc: Client
    store: Store
    partitions: int  # ledger partitions (the shared store: 1)
    gives_up: bool  # whether transfers may carry give-up limits (DESIGN.md section 5)

    async def provision(
        self,
        topology: Topology,
        *,
        dry_run: bool = False,
        force: bool = False,
        signing_keys: SigningKeys | None = None,
    ) -> list[Change]: ...

    async def register(
        self, topology: Topology, participant: str, *, signing_key: str | None = None
    ) -> None:
        """Register `participant` with `signing_key` (a public key), else its dev key."""

    async def require(self, participants: Sequence[str] = ()) -> None:
        """A clear ConfigError when the store or a participant is not set up."""

    def space_of(self, participant: str) -> KeySpace: ...

    def consumers(self, participant: str) -> list[tuple[str, str]]:
        """(stream, durable) of each inbox consumer a participant's service reads."""

    def submission_consumers(self, participant: str) -> set[str]:
        """The durables among them that carry submissions (decided in ACK order)."""

    async def accounts(self, participant: str | None = None) -> list[AccountSnapshot]: ...

    async def submit(
        self, submitter: str, requests: list[TransferRequest], traceparent: str | None = None
    ) -> Submitted: ...

    async def record(self, submitter: str, transfer_id: str) -> Record | None:
        """The submitter's record, exactly (from the stream leader)."""

    async def views(self, transfer_id: str, submitter: str | None = None) -> TransferViews | None:
        """Both sides' records; the submitter is found when not given. None: unknown."""

    async def wait_final(
        self, submitter: str, ids: list[str], timeout: float
    ) -> dict[str, TransferState]: ...

    async def audit(self, *, expect_final: bool, full: bool = False) -> AuditReport:
        """I1-I5 and I7; `full`: every archived period verified again too."""


class AccountBook:
    """Opening, funding and closing accounts, where the ledger keeps them, and what every
    ledger checks before it submits (a mixin)."""

    nc: Client
    _registered: set[str]  # participants seen in the registry (a registration is never undone)

    async def check_submitter(self, participant: str) -> None:
        """Refuse, before any ACK, a submission from a participant nobody registered: its
        inbox takes no message (docs/PROTOCOL.md section 3, Registration)."""
        if participant in self._registered:
            return
        if not await is_registered(self.nc, participant):
            raise DomainError(
                f"{participant!r:.70} is not a registered participant: register it first "
                "(`natsbank accounts open`)",
                RejectionCause.UNKNOWN_PARTICIPANT,
            )
        self._registered.add(participant)

    def space_of(self, participant: str) -> KeySpace:
        raise NotImplementedError

    async def open_account(
        self, participant: str, account: str, currency: str, initial: str | None = None
    ) -> Account:
        space = self.space_of(participant)
        return await accounts.open_account(self.nc, space, participant, account, currency, initial)

    async def fund_account(
        self, participant: str, account: str, amount: str, reference: str | None = None
    ) -> Account:
        space = self.space_of(participant)
        return await accounts.fund_account(self.nc, space, participant, account, amount, reference)

    async def read_account(self, participant: str, account: str) -> tuple[Account, int]:
        """The account and its sequence, from the stream leader."""
        return await accounts.read_account(
            self.nc, self.space_of(participant), participant, account
        )

    async def close_account(self, participant: str, account: str) -> Account:
        return await accounts.close_account(
            self.nc, self.space_of(participant), participant, account
        )
