"""The rendered authorization as data: what each identity may publish, checked with NATS's own
matching rules (a wildcard is a whole token; deny wins over allow) and, for a bank, through the
account boundary (only what its account imports reaches the ledger)."""

from __future__ import annotations

import json

import pytest

from eventsource.adapters.auth_config import SYSTEM_USER, render_accounts
from eventsource.core.permissions import (
    LEDGER_ACCOUNT,
    OPERATOR_ROLES,
    Identity,
    Role,
    bank_account,
    tool_account,
)
from eventsource.core.subjects import partition_of

BANKS = ["bank-a", "bank-b", "bank-c", "bank-d"]
K = 2  # bank-a, bank-b, bank-c live in partition 1, bank-d in 0 (PROTOCOL.md test vectors)


def matches(pattern: str, subject: str) -> bool:
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


@pytest.fixture(scope="module")
def config() -> dict:
    keys = {i.name: f"U{i.name}" for i in _identities()} | {SYSTEM_USER: "Usys"}
    text = render_accounts(keys, BANKS, K)
    body = text.split("accounts: ", 1)[1].rsplit("system_account", 1)[0]
    return json.loads(body)


def _identities() -> list[Identity]:
    banks = [Identity(r, p) for p in BANKS for r in (Role.SERVICE, Role.CLIENT)]
    return [*(Identity(r) for r in OPERATOR_ROLES), *banks]


def may_publish(config: dict, identity: Identity, subject: str) -> bool:
    account = config[identity.account]
    user = next(u for u in account["users"] if u["nkey"] == f"U{identity.name}")
    publish = user["permissions"]["publish"]
    if not any(matches(p, subject) for p in publish["allow"]):
        return False
    if any(matches(p, subject) for p in publish.get("deny", [])):
        return False
    if identity.account == LEDGER_ACCOUNT:
        return True
    services = [i["to"] for i in account["imports"] if "service" in i]
    streams = [e["stream"] for e in account.get("exports", [])]  # core mode: to other banks
    # Within the account: what its own users may receive (a bank's link to its remote bank).
    local = [s for u in account["users"] for s in u["permissions"]["subscribe"]["allow"]]
    local = [s for s in local if not s.startswith("_INBOX.")]  # replies cross no boundary
    return any(matches(to, subject) for to in [*services, *streams, *local])


def h(p: str) -> int:
    return partition_of(p, K)


SVC_A, CLI_A, SVC_C = (
    Identity(Role.SERVICE, "bank-a"),
    Identity(Role.CLIENT, "bank-a"),
    Identity(Role.SERVICE, "bank-c"),
)

ALLOWED = [
    (SVC_A, "$KV.ledger_1.bank-a.acct.alice"),
    (SVC_A, "$KV.ledger_1.bank-a.out.T1"),
    (SVC_A, "$KV.ledger_1.bank-a.in.bank-b.T1"),
    (SVC_A, "nb.1.to.bank-b.posting.bank-a.tok"),
    (SVC_A, "nb.1.to.bank-d.result.bank-a.tok"),
    (SVC_A, "nb.1.to.bank-d.confirm.bank-a.tok"),
    (SVC_A, "nb.dlq.bank-a"),
    (SVC_A, "$JS.ledger.API.CONSUMER.MSG.NEXT.KV_ledger_0.inbox_bank-a_0"),
    (SVC_A, "$JS.ledger.API.CONSUMER.MSG.NEXT.KV_ledger_1.submit_bank-a_1"),
    (SVC_A, "$JS.ACK.KV_ledger_1.inbox_bank-a_1.1.5.5.1700000000.0"),
    (SVC_A, "$JS.ledger.API.CONSUMER.INFO.KV_ledger_0.submit_bank-a_0"),
    (SVC_A, "$JS.ledger.API.DIRECT.GET.KV_ledger_1.$KV.ledger_1.bank-a.acct.alice"),
    (SVC_A, "$JS.ledger.API.STREAM.MSG.GET.KV_ledger_1"),
    (SVC_A, "$JS.ledger.API.DIRECT.GET.KV_participants.$KV.participants.bank-b"),
    (SVC_A, "$JS.ledger.API.DIRECT.GET.KV_ledger_1"),  # batched reads of its home stream
    (SVC_A, "nb.core.bank-b.posting.bank-a"),
    (SVC_A, "nb.remote.bank-a.ask"),  # its link to its remote bank (core/remote.py)
    (SVC_A, "nb.remote.bank-a.answer.tok"),
    (SVC_A, "nb.core.bank-d.result.bank-a"),
    (SVC_A, "nb.core.bank-b.confirm.bank-a"),
    (CLI_A, "nb.1.to.bank-a.submit.bank-a.tok"),
    (CLI_A, "$JS.ledger.API.DIRECT.GET.KV_ledger_1.$KV.ledger_1.bank-a.out.T1"),
    (Identity(Role.FUNDING), "$KV.ledger_1.bank-a.fund.REF1"),
    (Identity(Role.FUNDING), "$KV.ledger_0.bank-d.acct.dora"),
    (Identity(Role.ADMIN), "$KV.participants.bank-a"),
    (Identity(Role.ADMIN), "$JS.API.STREAM.CREATE.KV_ledger_0"),
    (Identity(Role.ADMIN), "$JS.API.CONSUMER.DURABLE.CREATE.KV_ledger_0.inbox_bank-a_0"),
    (Identity(Role.FUNDING), "$JS.ledger.API.STREAM.MSG.GET.KV_ledger_0"),
    (Identity(Role.AUDIT), "$JS.ledger.API.STREAM.MSG.GET.KV_ledger_1"),
    (Identity(Role.AUDIT), "$JS.ledger.API.DIRECT.GET.DEADLETTER"),
    (Identity(Role.AUDIT), "$JS.ledger.API.STREAM.INFO.KV_ledger_1"),
    (Identity(Role.AUDIT), "$KV.archive.lease.KV_ledger_1"),  # holds the archive while it reads
    (Identity(Role.PROJECTOR), "$JS.ledger.API.CONSUMER.MSG.NEXT.KV_ledger_0.projector_pg_0"),
    (Identity(Role.PROJECTOR), "$JS.ledger.API.CONSUMER.DURABLE.CREATE.KV_ledger_0.projector_pg_0"),
    (Identity(Role.PROJECTOR), "$JS.ACK.KV_ledger_0.projector_pg_0.1.5.5.1700000000.0"),
    (Identity(Role.DEAD_LETTERS), "nb.dlq.bank-a.retried.7"),
    (Identity(Role.DEAD_LETTERS), "nb.1.to.bank-b.posting.bank-a.tok"),
    (Identity(Role.DEAD_LETTERS), "nb.0.to.bank-d.submit.bank-d.tok"),
    (Identity(Role.ARCHIVER), "$JS.ledger.API.STREAM.PURGE.KV_ledger_0"),
    (Identity(Role.ARCHIVER), "$JS.ledger.API.STREAM.CREATE.OBJ_ledger_archive"),
    (Identity(Role.ARCHIVER), "$O.ledger_archive.C.abc"),
    (Identity(Role.ARCHIVER), "$KV.archive.head_0"),
    (Identity(Role.ARCHIVER), "$KV.ledger_1.bank-a.acct.alice"),  # carried forward
]

REFUSED = [
    (SVC_A, "nb.remote.bank-b.ask"),  # another bank's remote link
    (CLI_A, "nb.remote.bank-a.ask"),
    (SVC_A, "$KV.ledger_1.bank-b.acct.bob"),  # another bank's state
    (SVC_A, "$KV.ledger_1.bank-a.fund.REF1"),  # money entering the ledger
    (SVC_A, "nb.1.to.bank-b.posting.bank-c.tok"),  # claiming another sender
    (SVC_A, "nb.0.to.bank-b.posting.bank-a.tok"),  # another partition
    (SVC_A, "nb.1.to.bank-a.submit.bank-a.tok"),  # submitting is the client's
    (SVC_A, "nb.1.to.bank-b.posting.tok"),  # the legacy 6-token subject
    (SVC_A, "nb.1.to.bank-b.posting.bank-a.tok.more"),
    (SVC_A, "nb.dlq.bank-b"),
    (SVC_A, "$KV.participants.bank-a"),  # the registry
    (SVC_A, "$JS.ledger.API.CONSUMER.MSG.NEXT.KV_ledger_1.inbox_bank-b_1"),
    (SVC_A, "$JS.ACK.KV_ledger_1.inbox_bank-b_1.1.5.5.1700000000.0"),
    (SVC_A, "$JS.ledger.API.DIRECT.GET.KV_ledger_1.$KV.ledger_1.bank-b.acct.bob"),
    (SVC_A, "$JS.ledger.API.STREAM.DELETE.KV_ledger_1"),
    (SVC_A, "$JS.ledger.API.CONSUMER.DELETE.KV_ledger_1.inbox_bank-a_1"),
    (SVC_A, "$JS.ledger.API.CONSUMER.CREATE.KV_ledger_1.x.$KV.ledger_1.bank-a.out.>"),
    (SVC_A, "$JS.API.STREAM.INFO.KV_ledger_1"),  # lists every key
    (SVC_C, "$KV.ledger_1.bank-a.acct.alice"),
    (SVC_C, "nb.1.to.bank-b.posting.bank-a.tok"),
    (SVC_C, "$JS.ledger.API.CONSUMER.MSG.NEXT.KV_ledger_1.inbox_bank-a_1"),
    (CLI_A, "nb.1.to.bank-b.submit.bank-b.tok"),  # submitting for another bank
    (CLI_A, "nb.1.to.bank-b.posting.bank-a.tok"),
    (CLI_A, "$KV.ledger_1.bank-a.acct.alice"),
    (Identity(Role.FUNDING), "$KV.ledger_1.bank-a.out.T1"),
    (Identity(Role.FUNDING), "nb.1.to.bank-b.posting.bank-a.tok"),
    (Identity(Role.ADMIN), "$KV.ledger_1.bank-a.acct.alice"),
    (Identity(Role.ADMIN), "$JS.API.STREAM.DELETE.KV_ledger_1"),
    (Identity(Role.ADMIN), "$JS.API.STREAM.PURGE.KV_ledger_1"),
    (SVC_A, "$JS.ledger.API.DIRECT.GET.KV_ledger_0"),  # batched reads: home stream only
    (SVC_A, "nb.core.bank-b.posting.bank-c"),  # core mode: claiming another sender
    (SVC_A, "nb.core.bank-b.submit.bank-a"),
    (SVC_C, "nb.core.bank-b.result.bank-a"),
    (CLI_A, "nb.core.bank-b.posting.bank-a"),
    (CLI_A, "$JS.ledger.API.DIRECT.GET.KV_ledger_1"),
    (Identity(Role.FUNDING), "$JS.ledger.API.CONSUMER.CREATE.KV_ledger_1.x"),
    (Identity(Role.FUNDING), "$JS.ledger.API.STREAM.UPDATE.KV_ledger_1"),
    (Identity(Role.FUNDING), "$JS.API.STREAM.MSG.GET.KV_ledger_0"),  # LEDGER's own names
    (Identity(Role.ADMIN), "$JS.API.CONSUMER.MSG.NEXT.KV_ledger_1.inbox_bank-a_1"),
    (Identity(Role.AUDIT), "$KV.ledger_1.bank-a.acct.alice"),
    (Identity(Role.AUDIT), "$JS.ledger.API.CONSUMER.DURABLE.CREATE.KV_ledger_1.x"),
    (Identity(Role.AUDIT), "$JS.ledger.API.CONSUMER.CREATE.KV_ledger_1.x"),  # no ephemerals
    (Identity(Role.AUDIT), "$JS.ledger.API.CONSUMER.CREATE.KV_ledger_1.x.$KV.ledger_1.>"),
    (Identity(Role.AUDIT), "$JS.ledger.API.CONSUMER.DELETE.KV_ledger_1.inbox_bank-a_1"),
    (Identity(Role.AUDIT), "$JS.API.STREAM.INFO.KV_ledger_1"),  # LEDGER's own names
    (Identity(Role.AUDIT), "nb.core.bank-b.posting.bank-a"),
    (Identity(Role.AUDIT), "$KV.archive.head.KV_ledger_1"),  # the archiver's head
    (Identity(Role.AUDIT), "$JS.ledger.API.STREAM.CREATE.KV_archive"),
    (Identity(Role.PROJECTOR), "$JS.ledger.API.CONSUMER.DELETE.KV_ledger_1.inbox_bank-a_1"),
    (Identity(Role.PROJECTOR), "$JS.ledger.API.CONSUMER.MSG.NEXT.KV_ledger_1.submit_bank-a_1"),
    (Identity(Role.PROJECTOR), "$JS.ACK.KV_ledger_1.inbox_bank-a_1.1.5.5.1700000000.0"),
    (Identity(Role.PROJECTOR), "$JS.ledger.API.CONSUMER.CREATE.DEADLETTER.x"),
    (Identity(Role.PROJECTOR), "$KV.ledger_1.bank-a.acct.alice"),
    (Identity(Role.DEAD_LETTERS), "$JS.ledger.API.STREAM.PURGE.DEADLETTER"),
    (Identity(Role.DEAD_LETTERS), "$JS.ledger.API.CONSUMER.CREATE.DEADLETTER.x"),
    (Identity(Role.DEAD_LETTERS), "$KV.ledger_1.bank-a.acct.alice"),
    (Identity(Role.DEAD_LETTERS), "nb.1.to.bank-b.posting.bank-a.tok.more"),
    (Identity(Role.DEAD_LETTERS), "nb.dlq.bank-a"),
    (Identity(Role.DEAD_LETTERS), "nb.core.bank-b.posting.bank-a"),
    (Identity(Role.ARCHIVER), "$JS.ledger.API.STREAM.DELETE.KV_ledger_0"),
    (Identity(Role.ARCHIVER), "$JS.ledger.API.STREAM.PURGE.DEADLETTER"),
    (Identity(Role.ARCHIVER), "$JS.ledger.API.STREAM.PURGE.KV_participants"),
    (Identity(Role.ARCHIVER), "$JS.ledger.API.STREAM.CREATE.KV_ledger_0"),
    (Identity(Role.ARCHIVER), "$JS.ledger.API.STREAM.UPDATE.KV_ledger_0"),
    (Identity(Role.ARCHIVER), "$JS.ledger.API.CONSUMER.CREATE.KV_ledger_0.x"),
    (Identity(Role.ARCHIVER), "$KV.participants._topology"),
    (Identity(Role.ARCHIVER), "$O.other_bucket.C.abc"),
    (Identity(Role.ARCHIVER), "nb.1.to.bank-b.posting.bank-a.tok"),
]


@pytest.mark.parametrize(("identity", "subject"), ALLOWED, ids=lambda v: str(v))
def test_an_identity_may_publish_what_its_job_needs(config, identity, subject) -> None:
    assert may_publish(config, identity, subject)


@pytest.mark.parametrize(("identity", "subject"), REFUSED, ids=lambda v: str(v))
def test_an_identity_may_not_publish_anything_else(config, identity, subject) -> None:
    assert not may_publish(config, identity, subject)


def test_only_admin_lives_with_the_streams_and_every_other_identity_has_its_account(
    config,
) -> None:
    assert config[LEDGER_ACCOUNT]["jetstream"] == "enabled"
    assert [u["nkey"] for u in config[LEDGER_ACCOUNT]["users"]] == ["Uadmin"]
    for identity in _identities():
        if identity.role is not Role.ADMIN:
            assert identity.account != LEDGER_ACCOUNT
            assert "jetstream" not in config[identity.account]
    assert config["SYS"]["users"] == [{"nkey": "Usys"}]


def test_every_export_is_restricted_to_the_accounts_that_need_it(config) -> None:
    for export in config[LEDGER_ACCOUNT]["exports"]:
        subject = export.get("service") or export["stream"]
        if "accounts" not in export:
            # The registry is public; the archive is read by every bank (read confidentiality).
            assert "participants" in subject or "OBJ_ledger_archive" in subject
            continue
        owners = export["accounts"]
        banks = [a for a in owners if a.startswith("BANK_")]
        stream = subject.rsplit(".", 1)[1]
        per_stream = (".STREAM.MSG.GET.", ".DIRECT.GET.")  # leader gets, batched direct gets
        if banks and any(subject.endswith(f + stream) for f in per_stream):
            home = [b for b in BANKS if f"KV_ledger_{h(b)}" == stream]
            assert banks == [bank_account(b) for b in home]
            continue
        assert len(banks) <= 1
        if banks:
            assert banks[0].removeprefix("BANK_") in subject
            assert owners == banks  # no tool shares a bank's own subjects
        else:
            assert all(a in {tool_account(r) for r in OPERATOR_ROLES} for a in owners)


def test_a_tool_imports_exactly_what_its_grant_allows(config) -> None:
    for role in OPERATOR_ROLES:
        if role is Role.ADMIN:
            continue
        identity = Identity(role)
        account = config[identity.account]
        [user] = account["users"]
        imported = sorted(i["to"] for i in account["imports"])
        assert imported == sorted(user["permissions"]["publish"]["allow"])


def test_core_mode_flows_between_two_banks_accounts_and_names_its_sender(config) -> None:
    """Each sender's account exports its core messages to each recipient's alone: a bank
    receives from every other bank, and only what names that bank as sender."""
    for recipient in BANKS:
        imports = config[bank_account(recipient)]["imports"]
        streams = {
            (i["stream"]["account"], i["stream"]["subject"]) for i in imports if "stream" in i
        }
        others = [b for b in BANKS if b != recipient]
        assert streams == {(bank_account(s), f"nb.core.{recipient}.*.{s}") for s in others}
    for sender in BANKS:
        exports = config[bank_account(sender)]["exports"]
        assert {(e["stream"], tuple(e["accounts"])) for e in exports} == {
            (f"nb.core.{q}.*.{sender}", (bank_account(q),)) for q in BANKS if q != sender
        }


def test_a_fetch_export_answers_with_a_stream_of_messages(config) -> None:
    exports = config[LEDGER_ACCOUNT]["exports"]
    nexts = [e for e in exports if ".MSG.NEXT." in e.get("service", "")]
    assert len(nexts) == len(BANKS) * K * 2 + K  # the banks' inboxes, the projector's
    batched = [e for e in exports if e.get("service", "").endswith(".DIRECT.GET.KV_ledger_1")]
    assert {e.get("response_type") for e in [*nexts, *batched]} == {"stream"}


def test_no_tool_but_the_archiver_may_delete_or_purge(config) -> None:
    for identity in _identities():
        for verb in ("STREAM.DELETE", "STREAM.PURGE", "STREAM.MSG.DELETE"):
            prefix = identity.js_api
            subject = f"{prefix}.{verb}.KV_ledger_0"
            allowed = may_publish(config, identity, subject)
            assert allowed == (identity.role is Role.ARCHIVER and verb == "STREAM.PURGE")


def test_each_identity_subscribes_only_under_its_own_inbox(config) -> None:
    for identity in _identities():
        users = config[identity.account]["users"]
        user = next(u for u in users if u["nkey"] == f"U{identity.name}")
        allowed = [f"_INBOX.{identity.name}.>"]
        if identity.role is Role.SERVICE:  # and its core-mode inbox, and its remote bank link
            allowed.append(f"nb.core.{identity.participant}.>")
            allowed.append(f"nb.remote.{identity.participant}.>")
        assert user["permissions"]["subscribe"] == {"allow": allowed}


def test_partitions_are_listed_because_a_wildcard_is_a_whole_token() -> None:
    assert h("bank-a") == h("bank-c") == 1 and h("bank-d") == 0
    assert not matches("$KV.ledger_*.bank-a.acct.*", "$KV.ledger_1.bank-a.acct.x")


@pytest.mark.parametrize("name", ["admin", "dead-letters", "service.bank-a", "client.b_2"])
def test_an_identity_is_found_by_its_name(name: str) -> None:
    assert Identity.parse(name).name == name


@pytest.mark.parametrize(
    "name", ["", "root", "service", "audit.bank-a", "client.bank.a", "service.to", "Admin"]
)
def test_a_name_that_is_no_identity_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        Identity.parse(name)


@pytest.mark.parametrize("role", [Role.SERVICE, Role.CLIENT])
def test_a_bank_reads_the_archive_and_writes_nothing_there(config, role: Role) -> None:
    identity = Identity(role, "bank-a")
    for api in ("STREAM.INFO.OBJ_ledger_archive", "STREAM.MSG.GET.OBJ_ledger_archive"):
        assert may_publish(config, identity, f"$JS.ledger.API.{api}")
    meta = "$JS.ledger.API.DIRECT.GET.OBJ_ledger_archive.$O.ledger_archive.M.k0"
    assert may_publish(config, identity, meta)
    assert not may_publish(config, identity, "$O.ledger_archive.C.forged")
    assert not may_publish(config, identity, "$JS.ledger.API.STREAM.PURGE.OBJ_ledger_archive")
