"""Every receiver a proxy to a remote bank on core NATS request/reply (core/remote.py): the
remote bank answers late, loses answers and sends some twice, and declines some credits. Every
transfer still ends with one outcome, the same at the submitter, the proxy and the remote bank,
which applies each accepted credit exactly once; the audit (I1-I7) is clean."""

from __future__ import annotations

import asyncio

from eventsource.adapters.remote_bank import RemoteBankResponder
from eventsource.adapters.topology import quick_redelivery
from eventsource.bootstrap import ServeOptions, participant_service
from eventsource.core.errors import RejectionCause
from eventsource.core.model import Outcome
from eventsource.core.remote import RemoteMode, RemotePlan, remote_key
from tests.integration.live_bank import LiveBank, live_bank, transfer

NOISY_REMOTE = RemotePlan(
    RemoteMode.EXTERNAL,
    delay_ms_min=5,
    delay_ms_max=40,
    loss=0.2,
    duplicate=0.2,
    reject=0.25,
    timeout_ms=150,
    seed=3,
)


async def start_proxies(bank: LiveBank, plan: RemotePlan) -> dict[str, RemoteBankResponder]:
    """A remote bank per participant (here, in the test's process, to read its book), and each
    participant's service as its proxy."""
    remotes = {}
    for participant in bank.participants:
        remotes[participant] = RemoteBankResponder(bank.nc, participant, plan, salt="test")
        await remotes[participant].start()
        options = ServeOptions(remote=plan, instance=participant)
        service = participant_service(bank.ledger, participant, options)
        bank.services.append((service, asyncio.create_task(service.run(bank.stop))))
    return remotes


async def test_lost_late_and_duplicated_remote_answers_leave_one_outcome_everywhere(nats1):
    async with live_bank(nats1, "100.00", topology=quick_redelivery(1.0)) as bank:
        remotes = await start_proxies(bank, NOISY_REMOTE)
        pairs = [("alpha/a1", "beta/b1"), ("beta/b2", "gamma/g1"), ("gamma/g1", "alpha/a2")]
        requests = [transfer(f"r-{i}", *pairs[i % 3], "1.00") for i in range(90)]
        for request in requests:  # one by one: many groups, many asks
            await bank.submit(request)
        outcomes = {}
        for submitter in ("alpha", "beta", "gamma"):
            ids = [r.id for r in requests if r.debtor.participant == submitter]
            final = await bank.wait(submitter, ids, timeout=120)
            assert len(final) == len(ids)
            outcomes |= {tid: (state.outcome, state.cause) for tid, state in final.items()}
        report = await bank.audit(patience=60)  # inboxes drained: every confirm relayed
        assert report.ok, report.violations
        assert report.transfers_acked == 90

        books = {p: remote.book for p, remote in remotes.items()}
        for request in requests:
            book = books[request.creditor.participant]
            record = book.records[remote_key(request.debtor.participant, request.id)]
            outcome, cause = outcomes[request.id]
            assert record.final is outcome, request.id  # the remote bank agrees (I4)
            assert record.accepted is (cause is not RejectionCause.REMOTE_REJECTED)
        accepted = sum(o is Outcome.OK for o, _ in outcomes.values())
        declined = sum(c is RejectionCause.REMOTE_REJECTED for _, c in outcomes.values())
        assert 0 < declined < 90 and accepted + declined == 90
        assert sum(b.applied for b in books.values()) == accepted  # each credit once
        assert sum(b.contradictions for b in books.values()) == 0
        fates = [r.fates.counts for r in remotes.values()]
        assert sum(f["lost"] for f in fates) and sum(f["duplicated"] for f in fates)
        links = [s.decider.link.stats for s, _ in bank.services]
        assert sum(s.remote_asked_again for s in links)  # lost answers were asked for again
        assert sum(s.remote_answers_unawaited for s in links)  # duplicates were set aside


async def test_a_proxy_allowed_to_give_up_declines_and_the_remote_bank_voids_its_yes(nats1):
    slow = RemotePlan(
        RemoteMode.EXTERNAL,
        delay_ms_min=1500,
        delay_ms_max=1500,
        timeout_ms=100,
        decide_after_ms=300,
    )
    async with live_bank(nats1, "100.00", topology=quick_redelivery(1.0)) as bank:
        remotes = await start_proxies(bank, slow)
        ids = [f"s-{i}" for i in range(5)]
        await bank.submit(*(transfer(i, "alpha/a1", "beta/b1", "2.00") for i in ids))
        final = await bank.wait("alpha", ids, timeout=60)
        assert {(s.outcome, s.cause) for s in final.values()} == {
            (Outcome.REJECTED, RejectionCause.REMOTE_TIMEOUT)
        }
        report = await bank.audit(patience=60)
        assert report.ok, report.violations
        book = remotes["beta"].book
        for tid in ids:
            record = book.records[remote_key("alpha", tid)]
            assert (record.accepted, record.final) == (True, Outcome.REJECTED)
        assert (book.applied, book.voided, book.contradictions) == (0, 5, 0)
