"""Every attack of issue 13, made with bank-c's own valid credentials against a switch with
authorization on: each is refused by the server, dead-lettered by the bank it targets, or (what
bank-c writes on its own ledger, which the server must let its service write) reported by the
audit as I8. Whatever stopped it, nothing moves at the other banks and the switch carries on.
docs/ARCHITECTURE.md ("Attacks and what stops them") lists the same table."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
import pytest
from nats.aio.client import Client

from eventsource.adapters.batch_commit import commit
from eventsource.adapters.cluster import ClusterInfo
from eventsource.bootstrap import ServeOptions
from eventsource.core.account import EntryKind
from eventsource.core.messages import Confirm, Confirms, Kind, Result, Results
from eventsource.core.model import Outcome, validate_transfer
from eventsource.core.subjects import account_key, core_subject, inbox_subject, state_subject
from eventsource.core.workset import Write
from eventsource.settings import Transport
from tests.integration.hostile import (
    ATTACKER,
    FUNDED_A1,
    JETSTREAM,
    Switch,
    attempt,
    forged_entries,
    posting_from,
    publish_as_attacker,
    running_switch,
    signed_as_attacker,
)
from tests.integration.live_bank import transfer

pytestmark = pytest.mark.timeout(180)

OPEN_BATCHES = 60  # more than the server lets a stream hold open (50)
PENDING_CREDIT_FORGED = 92_000_000_000_000_000  # the credit that once blocked an account for good
# The core-mode row: every bank's window and bound per peer, small so that the row is quick,
# and the postings bank-c sends past them.
UNCONFIRMED_BOUND = 5
UNCONFIRMED_SENT = 3 * UNCONFIRMED_BOUND
CORE = ServeOptions(
    transport=Transport.CORE, window=UNCONFIRMED_BOUND, unconfirmed_per_peer=UNCONFIRMED_BOUND
)


class Stop(enum.Enum):
    SERVER = "refused by the server"
    DEAD_LETTER = "dead-lettered by the bank it targets"
    AUDIT = "reported by the audit (I8)"
    BOUND = "shed past a bound per sender by the bank it targets"


@dataclass(frozen=True)
class Attack:
    name: str
    run: Callable[[Switch], Awaitable[object]]
    stop: Stop
    expect: str = ""  # the dead letter's reason, or the account key I8 names
    options: ServeOptions = JETSTREAM  # how every bank is served during the row


def _debit(ref: str, minor: int) -> list[tuple[EntryKind, str, int]]:
    """A debit as a transfer writes it: reserved, then debited (a consistent snapshot)."""
    return [(EntryKind.RESERVED, ref, minor), (EntryKind.DEBITED, ref, minor)]


def _credit(ref: str, minor: int) -> list[tuple[EntryKind, str, int]]:
    return [(EntryKind.CREDIT_PENDING, ref, minor), (EntryKind.CREDITED, ref, minor)]


# --- attacks on other banks' state, and the switch's own streams ------------------------------
async def mint_at_bank_a(s: Switch) -> object:
    funded = forged_entries(await s.account("bank-a", "a1"), (EntryKind.FUNDED, "MINT", 10_000))
    return await attempt(s.service, state_subject(0, account_key("bank-a", "a1")), funded)


async def mint_with_the_client_credential(s: Switch) -> object:
    funded = forged_entries(await s.account(ATTACKER, "c1"), (EntryKind.FUNDED, "MINT", 10_000))
    return await attempt(s.client, state_subject(0, account_key(ATTACKER, "c1")), funded)


async def steal_from_bank_a_in_one_batch(s: Switch) -> object:
    debit = forged_entries(await s.account("bank-a", "a1"), *_debit("STEAL", 5_000))
    credit = forged_entries(await s.account(ATTACKER, "c1"), *_credit("STEAL", 5_000))
    writes = [
        Write(state_subject(0, account_key("bank-a", "a1")), debit, None, None),
        Write(state_subject(0, account_key(ATTACKER, "c1")), credit, None, None),
    ]
    try:
        return await commit(s.service, writes, timeout=2.0)
    except Exception as exc:
        return exc


async def forged_snapshot_at_bank_a(s: Switch) -> object:
    account = await s.account("bank-a", "a1")
    stuck = forged_entries(account, (EntryKind.CREDIT_PENDING, "STUCK", PENDING_CREDIT_FORGED))
    return await attempt(s.service, state_subject(0, account_key("bank-a", "a1")), stuck)


def _as_bank(sender: str, recipient: str, kind: Kind, payload_of: Callable[[], bytes]):
    async def forge(s: Switch) -> object:
        subject = inbox_subject(0, recipient, kind, sender, "forged")
        return await attempt(s.service, subject, payload_of())

    return forge


def _posting_as_bank_a() -> bytes:
    return posting_from("bank-a", "bank-a/a1", ATTACKER + "/c1", "f-post", "50.00")


def _result_as_bank_b() -> bytes:
    result = Result(id="f-res", digest="d", outcome=Outcome.OK)
    return _encode(Results(sender="bank-b", results=[result]))


def _confirm_as_bank_a(outcome: Outcome) -> Callable[[], bytes]:
    def payload() -> bytes:
        t = validate_transfer(transfer("f-conf", "bank-a/a1", "bank-b/b1"), "bank-a")
        extra = {"transfer": t} if outcome is Outcome.CANCELLED else {}
        confirm = Confirm(id=t.id, digest=t.digest, outcome=outcome, **extra)
        return _encode(Confirms(sender="bank-a", confirms=[confirm]))

    return payload


def _encode(message: object) -> bytes:
    return msgspec.json.encode(message)


async def fetch_bank_as_inbox(s: Switch) -> object:
    spy = await s.service.jetstream().pull_subscribe_bind("inbox_bank-a_0", stream="KV_ledger_0")
    try:
        return await spy.fetch(1, timeout=1.0)
    except Exception as exc:
        return exc


async def ack_bank_as_postings(s: Switch) -> object:
    """An ack on bank-a's consumer, as `$JS.ACK` subjects look (anyone can guess one)."""
    return await attempt(s.service, "$JS.ACK.KV_ledger_0.inbox_bank-a_0.1.1.1.0.0", b"+ACK")


def _api(tail: str, body: bytes = b""):
    async def call(s: Switch) -> object:
        prefix = getattr(s.service, "js_api", "$JS.API")
        return await attempt(s.service, f"{prefix}.{tail}", body)

    return call


async def rewrite_the_registry(s: Switch) -> object:
    return await attempt(s.service, "$KV.participants.bank-a", b'{"signing_key": "forged"}')


async def stall_with_open_batches(s: Switch) -> object:
    """Batches opened on bank-c's own account and never committed: the server abandons them."""
    subject = state_subject(0, account_key(ATTACKER, "c1"))
    for _ in range(OPEN_BATCHES):
        headers = {"Nats-Batch-Id": uuid.uuid4().hex, "Nats-Batch-Sequence": "1"}
        await s.service.publish(subject, b"{}", headers=headers)
    await s.service.flush()
    return None


# --- messages on bank-c's own sender subject, which the server lets through -------------------
async def posting_debiting_bank_a(s: Switch) -> object:
    payload = posting_from(ATTACKER, "bank-a/a1", "bank-b/b1", "f-debtor", "50.00")
    return await publish_as_attacker(
        s, "bank-b", Kind.POSTING, payload, signed_as_attacker("bank-b", Kind.POSTING, payload)
    )


async def unsigned_posting(s: Switch) -> object:
    payload = posting_from(ATTACKER, f"{ATTACKER}/c1", "bank-b/b1", "f-unsigned", "1.00")
    return await publish_as_attacker(s, "bank-b", Kind.POSTING, payload, None)


# --- core mode: bank-c's own signed postings, never confirmed ---------------------------------
async def fill_bank_a_with_unconfirmed_postings(s: Switch) -> bool:
    """bank-c, as itself and signed, sends bank-a more postings than bank-a's bound and never
    confirms them. Each debits bank-c's own account and credits one bank-a does not have, so
    bank-a declines it (no money moves) and its record waits for bank-c's confirm, resending
    its result. Whether bank-a decided exactly its bound and shed the rest, undecided."""
    link = s.services["bank-a"].carrier
    await asyncio.wait_for(link.listening.wait(), timeout=30)
    subject = core_subject("bank-a", Kind.POSTING, ATTACKER)
    for i in range(UNCONFIRMED_SENT):
        payload = posting_from(ATTACKER, f"{ATTACKER}/c1", "bank-a/a9", f"f-fill-{i}", "0.01")
        headers = signed_as_attacker("bank-a", Kind.POSTING, payload)
        await s.service.publish(subject, payload, headers=headers)
    await s.service.flush()
    return await _until(
        lambda: (
            (link.bound.shed, link.schedule.unconfirmed_from(ATTACKER))
            == (UNCONFIRMED_SENT - UNCONFIRMED_BOUND, UNCONFIRMED_BOUND)
        )
    )


# --- bank-c's own ledger: the server must let its service write there -------------------------
async def mint_in_its_own_account(s: Switch) -> object:
    funded = forged_entries(await s.account(ATTACKER, "c1"), (EntryKind.FUNDED, "MINT", 10_000))
    return await attempt(s.service, state_subject(0, account_key(ATTACKER, "c1")), funded)


async def move_money_between_its_own_accounts(s: Switch) -> object:
    debit = forged_entries(await s.account(ATTACKER, "c1"), *_debit("SHIFT", 500))
    credit = forged_entries(await s.account(ATTACKER, "c2"), *_credit("SHIFT", 500))
    writes = [
        Write(state_subject(0, account_key(ATTACKER, "c1")), debit, None, None),
        Write(state_subject(0, account_key(ATTACKER, "c2")), credit, None, None),
    ]
    return await commit(s.service, writes)


ATTACKS = [
    Attack("mint: a FUNDED entry on bank-a's account", mint_at_bank_a, Stop.SERVER),
    Attack(
        "mint: its client credential writes its own account",
        mint_with_the_client_credential,
        Stop.SERVER,
    ),
    Attack(
        "steal: bank-a -50, bank-c +50 in one atomic batch",
        steal_from_bank_a_in_one_batch,
        Stop.SERVER,
    ),
    Attack(
        "a forged snapshot: a pending credit of 92 quadrillion at bank-a",
        forged_snapshot_at_bank_a,
        Stop.SERVER,
    ),
    Attack(
        "forge a posting as bank-a",
        _as_bank("bank-a", "bank-b", Kind.POSTING, _posting_as_bank_a),
        Stop.SERVER,
    ),
    Attack(
        "forge a result as bank-b",
        _as_bank("bank-b", "bank-a", Kind.RESULT, _result_as_bank_b),
        Stop.SERVER,
    ),
    Attack(
        "forge a confirm as bank-a",
        _as_bank("bank-a", "bank-b", Kind.CONFIRM, _confirm_as_bank_a(Outcome.OK)),
        Stop.SERVER,
    ),
    Attack(
        "forge a CANCEL as bank-a",
        _as_bank("bank-a", "bank-b", Kind.CONFIRM, _confirm_as_bank_a(Outcome.CANCELLED)),
        Stop.SERVER,
    ),
    Attack(
        "submit for bank-a with its client credential",
        lambda s: attempt(
            s.client, inbox_subject(0, "bank-a", Kind.SUBMIT, "bank-a", "forged"), b"{}"
        ),
        Stop.SERVER,
    ),
    Attack("bind bank-a's inbox consumer", fetch_bank_as_inbox, Stop.SERVER),
    Attack("ack bank-a's postings away", ack_bank_as_postings, Stop.SERVER),
    Attack("rewrite the participants registry", rewrite_the_registry, Stop.SERVER),
    Attack(
        "stall commits: 60 atomic batches opened, never committed",
        stall_with_open_batches,
        Stop.SERVER,
    ),
    Attack("delete DEADLETTER", _api("STREAM.DELETE.DEADLETTER"), Stop.SERVER),
    Attack("delete the ledger stream", _api("STREAM.DELETE.KV_ledger_0"), Stop.SERVER),
    Attack("purge the ledger stream", _api("STREAM.PURGE.KV_ledger_0"), Stop.SERVER),
    Attack(
        "delete bank-a's inbox consumer",
        _api("CONSUMER.DELETE.KV_ledger_0.inbox_bank-a_0"),
        Stop.SERVER,
    ),
    Attack(
        "a posting from bank-c that debits bank-a's account",
        posting_debiting_bank_a,
        Stop.DEAD_LETTER,
        "SUBJECT_MISMATCH",
    ),
    Attack(
        "a posting without bank-c's signature", unsigned_posting, Stop.DEAD_LETTER, "BAD_SIGNATURE"
    ),
    Attack(
        "core mode: fill bank-a's window with its own postings, never confirmed",
        fill_bank_a_with_unconfirmed_postings,
        Stop.BOUND,
        options=CORE,
    ),
    Attack(
        "mint: a FUNDED entry on its own account, not signed by the operator",
        mint_in_its_own_account,
        Stop.AUDIT,
        account_key(ATTACKER, "c1"),
    ),
    Attack(
        "move money between its own accounts with no transfer",
        move_money_between_its_own_accounts,
        Stop.AUDIT,
        account_key(ATTACKER, "c2"),
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
async def test_an_attack_by_bank_c_is_stopped_and_nothing_moves(
    authorized: ClusterInfo, attack: Attack
) -> None:
    async with running_switch(authorized, attack.options) as switch:
        before = await switch.last_sequences()
        answer = await attack.run(switch)
        if attack.stop is Stop.SERVER:
            assert await switch.last_sequences() == before, answer  # nothing stored
        if attack.stop is Stop.DEAD_LETTER:
            letters = await _letters(switch, attack.expect)
            assert [ATTACKER in letter.source_subject for letter in letters] == [True]
        if attack.stop is Stop.BOUND:
            assert answer is True, switch.services["bank-a"].figures()
            assert switch.services["bank-a"].carrier.admits()  # its window is its own

        # The switch carries on, and the other banks' money is where it was.
        assert await switch.honest_transfer("after-the-attack") is Outcome.OK
        assert await switch.balance("bank-a", "a1") == (FUNDED_A1 - 1000, 0, 0)
        assert await switch.balance("bank-b", "b1") == (1000, 0, 0)
        report = await switch.audit()
        if attack.stop is Stop.AUDIT:
            assert any(attack.expect in line for line in report.violations.get("I8", [])), (
                report.violations
            )
        else:
            assert report.ok, report.violations
            assert await switch.balance(ATTACKER, "c1") == (500, 0, 0)


async def _until(condition: Callable[[], bool], attempts: int = 300) -> bool:
    for _ in range(attempts):
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


async def _letters(switch: Switch, reason: str, attempts: int = 300) -> list:
    for _ in range(attempts):
        if letters := await switch.letters(reason):
            return letters
        await asyncio.sleep(0.1)
    return []


async def test_an_unauthenticated_client_is_refused(authorized: ClusterInfo) -> None:
    anonymous = Client()
    try:
        with pytest.raises(Exception, match=r"(?i)authorization"):
            await anonymous.connect(authorized.url, allow_reconnect=False, connect_timeout=2)
    finally:
        await anonymous.close()
