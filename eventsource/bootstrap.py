"""The one place that wires natsbank for a (store, transport) pair: the ledger a command talks
to, and the parts of a participant's service (decider, carrier, consumers, give-up clock).
Nothing else branches on the store or the transport."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client

from eventsource.adapters.registry import layout_of, require_participant_name
from eventsource.adapters.remote_link import RemoteLink
from eventsource.adapters.signing_keys import participant_signer
from eventsource.core.errors import UsageError
from eventsource.core.faults import NO_FAULTS, FaultInjector, FaultPlan
from eventsource.core.limits import (
    CORE_UNCONFIRMED_PER_PEER,
    CORE_WINDOW,
    FETCH_BATCH,
    SWEEP_INTERVAL_S,
)
from eventsource.core.remote import NO_REMOTE, RemotePlan
from eventsource.core.resend import DEFAULT_RESEND, ResendPolicy
from eventsource.core.shared.layout import SHARED_STREAM
from eventsource.core.subjects import ledger_stream
from eventsource.services.independent.decider import IndependentDecider
from eventsource.services.independent.give_up import GiveUpWatch
from eventsource.services.independent.ledger import IndependentLedger
from eventsource.services.ledger import Ledger
from eventsource.services.metrics import NO_OBSERVER, Observer
from eventsource.services.participant import ParticipantService
from eventsource.services.remote_proxy import RemoteProxyDecider
from eventsource.services.shared.decider import SharedDecider
from eventsource.services.shared.ledger import SharedLedger
from eventsource.services.signatures import MessageVerifier
from eventsource.services.submission_gate import SubmissionGate
from eventsource.services.transport.core_link import CoreLink
from eventsource.services.transport.stream_outbox import StreamOutbox
from eventsource.settings import Settings, Store, Transport
from projections.shared.source import SharedSource
from projections.source import LedgerSource, Source


async def open_ledger(nc: Client, store: Store, *, provisioned: bool = True) -> Ledger:
    """The configured store. `provisioned`: it must be set up already (every command but
    `streams init`), else a ConfigError says how."""
    if store is Store.SHARED:
        ledger = SharedLedger(nc)
        if provisioned:
            await ledger.require()
        return ledger
    if not provisioned:
        return IndependentLedger(nc, 0)
    layout = await layout_of(nc)
    return IndependentLedger(
        nc, layout.partitions, layout.history, accepts_old_subjects=layout.accepts_old_subjects
    )


def home_stream(ledger: Ledger, participant: str) -> str:
    """The stream `participant`'s service writes its atomic batches to."""
    if ledger.store is Store.SHARED:
        return SHARED_STREAM
    assert isinstance(ledger, IndependentLedger)
    return ledger_stream(ledger.home_of(participant))


def projection_source(ledger: Ledger, participant: str | None = None) -> Source:
    """What a projector of the configured store follows, and I6 compares with (of
    `participant` only, if given): the same tables whichever store runs."""
    if ledger.store is Store.SHARED:
        return SharedSource(participant)
    return LedgerSource(ledger.partitions, participant)


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """How one `serve` process runs its participants' instances."""

    transport: Transport = Transport.JETSTREAM
    fetch_batch: int = FETCH_BATCH
    faults: FaultPlan = NO_FAULTS
    resend: ResendPolicy = DEFAULT_RESEND  # core mode's resend clock; the give-up's attempts
    sweep_interval: float = SWEEP_INTERVAL_S
    window: int = CORE_WINDOW
    unconfirmed_per_peer: int = CORE_UNCONFIRMED_PER_PEER  # core mode: records one peer leaves
    instance: str = ""  # salts the fault injector, so instances draw different faults
    observer: Observer = NO_OBSERVER
    # The seed file this process signs with (`serve --signing-key`); None: NATSBANK_SIGNING_KEY
    # or the participant's dev key (adapters/signing_keys.py).
    signing_key: Path | None = None
    # The receiving side as a proxy to a remote bank (core/remote.py); off by default.
    remote: RemotePlan = NO_REMOTE

    @classmethod
    def of(cls, config: Settings, **options) -> ServeOptions:
        return cls(transport=config.transport, fetch_batch=config.fetch_batch, **options)


def check_serve_options(store: Store, options: ServeOptions) -> None:
    """What a store cannot do, refused before anything starts."""
    if store is Store.SHARED:
        # The shared store sends no protocol messages: nothing to carry over core NATS, nothing
        # to lose or duplicate in transit.
        if options.transport is Transport.CORE:
            raise UsageError("--mode core has no meaning with --store shared: no protocol messages")
        if options.faults.active:
            raise UsageError("--faults has no meaning with --store shared: no protocol messages")
        if options.remote.active:
            raise UsageError("--remote-bank needs --store independent: a receiver that decides")


def participant_service(
    ledger: Ledger, participant: str, options: ServeOptions
) -> ParticipantService:
    """One instance of `participant` on the ledger's store, over the options' transport."""
    require_participant_name(participant)
    check_serve_options(ledger.store, options)
    nc = ledger.nc
    faults = FaultInjector(options.faults, salt=f"{options.instance}:{participant}")
    give_ups = None
    signer = verifier = None
    if ledger.store is Store.SHARED:
        decider = SharedDecider(nc, participant)
        carrier = StreamOutbox(faults)
    else:
        assert isinstance(ledger, IndependentLedger)
        home = ledger.home_of(participant)
        decider = IndependentDecider(
            nc,
            participant,
            home,
            history=ledger.history,
            archive=ledger.archive_of(home),
            accepts_old_subjects=ledger.accepts_old_subjects,
        )
        carrier = _carrier(nc, participant, home, decider, faults, options)
        # Every protocol message is signed by its sender and verified by its recipient; the
        # shared store sends none (its funding is signed like the independent store's).
        signer = participant_signer(participant, options.signing_key)
        verifier = MessageVerifier(nc, participant)
        if isinstance(carrier, CoreLink):
            carrier.signer = signer  # its resends are signed too
        give_ups = GiveUpWatch(
            nc,
            participant,
            home,
            options.resend,
            counts_sends=carrier.counts_sends,
            sweeps=carrier.adopt is None,
            sweep_interval=options.sweep_interval,
        )
        if isinstance(carrier, CoreLink):
            carrier.on_record = give_ups.observe_event  # one ledger read feeds both
        if options.remote.active:
            decider = RemoteProxyDecider(decider, RemoteLink(nc, participant, options.remote))
    consumers = ledger.consumers(participant)
    return ParticipantService(
        nc,
        participant,
        store=ledger.store,
        transport=options.transport,
        decider=decider,
        carrier=carrier,
        consumers=consumers,
        faults=faults,
        gate=SubmissionGate(nc, ledger.submission_consumers(participant)),
        give_ups=give_ups,
        fetch_batch=options.fetch_batch,
        observer=options.observer,
        signer=signer,
        verifier=verifier,
    )


def _carrier(
    nc: Client,
    participant: str,
    home: int,
    decider: IndependentDecider,
    faults: FaultInjector,
    options: ServeOptions,
) -> StreamOutbox | CoreLink:
    if options.transport is Transport.JETSTREAM:
        return StreamOutbox(faults)
    return CoreLink(
        nc,
        participant,
        home,
        faults,
        policy=options.resend,
        sweep_interval=options.sweep_interval,
        window=options.window,
        unconfirmed_per_peer=options.unconfirmed_per_peer,
        registered=decider.reader.known_participants,
    )
