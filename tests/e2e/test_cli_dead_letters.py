"""`natsbank dead-letters list|show|retry` on a real cluster and real services: an operator reads
what was refused and why, and republishes a letter once its cause is fixed, exactly once.

Every reason today's services dead-letter for is permanent (a payload that does not decode, an
id already used with other content, a step that contradicts the ledger), and `retry` refuses
those. A retryable letter is one whose cause lay outside the message: here an earlier, buggy
service that refused a valid submission; the test plays that service (it takes the message
from bank-a's inbox consumer, dead-letters it through the real adapter and terminates it)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nats.js.api import AckPolicy, ConsumerConfig

from eventsource.adapters.cluster import resolve_nats_url
from eventsource.adapters.dead_letters import dead_letter
from eventsource.adapters.jetstream import connect
from eventsource.core.signing import Signer
from eventsource.core.subjects import ledger_stream, submit_consumer
from eventsource.settings import Settings
from tests.e2e.cli import Cli, assert_one_line_error
from tests.e2e.polling import eventually

DOMAIN, USAGE = 1, 2
LOST = "lost-1"  # the valid submission the buggy service refused
CONFLICT = "twice-1"  # submitted twice with other content
EARLY = "early-1"  # sent to bank-c before bank-c was registered


def submission(transfer_id: str, amount: str, debtor: str = "bank-a/a1") -> bytes:
    participant, account = debtor.split("/")
    transfer = {"id": transfer_id, "amount": amount, "currency": "EUR",
                "debtor": {"participant": participant, "account": account},
                "creditor": {"participant": "bank-b", "account": "b1"}}  # fmt: skip
    return json.dumps({"type": "submit", "transfers": [transfer]}).encode()


async def refused_by_a_buggy_service(home) -> None:
    """A valid submission onto bank-a's inbox, taken by 'bank-a's service' and dead-lettered
    as a bug would have; then junk, one id with two contents (`submit` refuses the second, any
    other client can send it) and a result for a transfer bank-a never sent. All on the old
    subject layout (no sender token), which services still accept: a retry puts them back on
    the new one."""
    nc = await connect(resolve_nats_url(Settings(home=str(home))))
    try:
        js = nc.jetstream()
        await js.publish(f"nb.0.to.bank-a.submit.{LOST}", submission(LOST, "10.00"))
        sub = await js.pull_subscribe_bind(submit_consumer("bank-a", 0), ledger_stream(0))
        (msg,) = await sub.fetch(1, timeout=5)
        await dead_letter(nc, "bank-a", msg, "PROTOCOL_VIOLATION", "refused by a bug (fixed)")
        await msg.term()
        await sub.unsubscribe()
        await js.publish("nb.0.to.bank-a.submit.junk", b"{not json")
        for amount in ("1.00", "2.00"):
            conflicting = submission(CONFLICT, amount, debtor="bank-a/a2")
            await js.publish(f"nb.0.to.bank-a.submit.{CONFLICT}", conflicting)
        ghost = {"type": "result", "sender": "bank-b",
                 "results": [{"id": "ghost-1", "digest": "0" * 24, "outcome": "OK"}]}  # fmt: skip
        body = json.dumps(ghost).encode()  # signed by bank-b: only the protocol refuses it
        signer = Signer((Path(home) / "dev" / "keys" / "bank-b.nk").read_bytes())
        headers = signer.message_headers("bank-b", "bank-a", "result", body)
        await js.publish("nb.0.to.bank-a.result.ghost-1", body, headers=headers)
    finally:
        await nc.close()


def letters(bank: Cli, *filters: str) -> list[dict]:
    """bank-a's letters (another test of the module dead-letters for bank-c)."""
    if "--participant" not in filters:
        filters = (*filters, "--participant", "bank-a")
    return bank.json("dead-letters", "list", "--json", *filters)["letters"]


def by_reason(bank: Cli) -> dict[str, dict]:
    return {letter["reason"]: letter for letter in letters(bank)}


def test_an_operator_lists_shows_and_retries_dead_letters(bank: Cli) -> None:
    assert letters(bank) == []
    asyncio.run(refused_by_a_buggy_service(bank.home))
    with bank.background("serve", "bank-a", "bank-b", log=bank.home / "serve.log"):
        eventually(lambda: len(letters(bank)) == 4 or None, within=60, what="4 dead letters")
        assert_one_line_error(bank("status", LOST), DOMAIN)  # the original was terminated
        found = by_reason(bank)
        assert set(found) == {"PROTOCOL_VIOLATION", "UNDECODABLE", "ID_CONFLICT"}
        check_the_listing(bank, found)
        check_show(bank, found)
        check_what_cannot_be_retried(bank, found)

        lost = next(x for x in letters(bank, "--reason", "PROTOCOL_VIOLATION")
                    if x["payload_kind"] == "message")  # fmt: skip
        retried = bank.json("dead-letters", "retry", str(lost["seq"]), "--json")
        assert retried["republished"]
        assert retried["subject"] == f"nb.0.to.bank-a.submit.bank-a.{LOST}"
        final = eventually(lambda: final_status(bank, LOST), within=60, what=f"{LOST} final")
        assert final["submitter"]["outcome"] == final["receiver"]["outcome"] == "OK"

        again = bank("dead-letters", "retry", str(lost["seq"]))
        assert again.returncode == 0 and "already republished" in again.stdout
        assert bank.json("dead-letters", "retry", str(lost["seq"]), "--json") == (
            retried | {"republished": False}
        )
        shown = bank.json("dead-letters", "show", str(lost["seq"]), "--json")
        assert shown["retried"]["seq"] == retried["seq"]
        text = bank("dead-letters", "list", "--reason", "PROTOCOL_VIOLATION", "-p", "bank-a").stdout
        assert f"retried: as {ledger_stream(0)}:{retried['seq']}" in text

        check_an_item_is_retried_as_a_one_item_message(bank)
        audit = bank.json("audit", "--expect-final", "--json")
    assert audit["ok"], audit
    balances = {a["account"]: a["balance"] for a in bank.json("accounts", "list", "--json")}
    assert balances["a1"] == "990.00", "the lost transfer moved money once, however retried"
    assert balances["a2"] == "999.00", "the conflicting second content was never applied"


def final_status(bank: Cli, transfer_id: str) -> dict | None:
    done = bank("status", transfer_id, "--json")
    if done.returncode != 0:
        return None
    found = json.loads(done.stdout)
    receiver = found["receiver"]
    return found if receiver and receiver["phase"] == "CONFIRMED" else None


def check_the_listing(bank: Cli, found: dict[str, dict]) -> None:
    junk, conflict = found["UNDECODABLE"], found["ID_CONFLICT"]
    assert junk["participant"] == "bank-a" and junk["payload_kind"] == "message"
    assert junk["source_subject"] == "nb.0.to.bank-a.submit.junk"
    assert junk["source"].startswith(f"{ledger_stream(0)}:") and junk["size"] == 9
    assert conflict["payload_kind"] == "item" and junk["retried"] is None
    assert [x["seq"] for x in letters(bank, "--reason", "id_conflict")] == [conflict["seq"]]
    assert letters(bank, "--participant", "bank-b") == []
    assert len(letters(bank, "--since", "1h")) == 4
    later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert letters(bank, "--since", later) == []
    assert len(letters(bank, "--since", "2020-01-01T00:00:00")) == 4
    newest = bank.json("dead-letters", "list", "--json", "--limit", "1", "-p", "bank-a")
    assert newest["matched"] == 4 and len(newest["letters"]) == 1
    text = bank("dead-letters", "list", "-p", "bank-a")
    assert text.returncode == 0 and text.stdout.splitlines()[-1] == "4 dead letters"
    assert "UNDECODABLE message from" in text.stdout
    for bad in (("--since", "yesterday"), ("--participant", "a.b"), ("--limit", "0")):
        assert_one_line_error(bank("dead-letters", "list", *bad), USAGE)


def check_show(bank: Cli, found: dict[str, dict]) -> None:
    junk, conflict = found["UNDECODABLE"], found["ID_CONFLICT"]
    shown = bank("dead-letters", "show", str(junk["seq"]))
    assert shown.returncode == 0, shown.stderr
    for words in ("reason:  UNDECODABLE", "the whole message (9 bytes)", "{not json",
                  "nb.0.to.bank-a.submit.junk", junk["source"], "retried: no"):  # fmt: skip
        assert words in shown.stdout
    item = bank.json("dead-letters", "show", str(conflict["seq"]), "--json")
    assert item["payload"]["id"] == CONFLICT and item["payload"]["amount"] == "2.00"
    assert "already used with other content" in item["detail"]
    assert_one_line_error(bank("dead-letters", "show", "999999"), DOMAIN)
    assert_one_line_error(bank("dead-letters", "show", "x"), USAGE)


def check_what_cannot_be_retried(bank: Cli, found: dict[str, dict]) -> None:
    for reason, words in (
        ("UNDECODABLE", "would be dead-lettered again"),
        ("ID_CONFLICT", "submit it under a new id"),
    ):
        line = assert_one_line_error(
            bank("dead-letters", "retry", str(found[reason]["seq"])), DOMAIN
        )
        assert words in line
    assert "no dead letter" in assert_one_line_error(
        bank("dead-letters", "retry", "999999"), DOMAIN
    )
    assert letters(bank, "--reason", "UNDECODABLE")[0]["retried"] is None


def check_an_item_is_retried_as_a_one_item_message(bank: Cli) -> None:
    """The ghost result is an item: republished alone, in a result message from bank-b, and
    dead-lettered again (its transfer is still unknown) with the republished copy as source."""
    (ghost,) = [x for x in letters(bank, "--reason", "PROTOCOL_VIOLATION")
                if x["payload_kind"] == "item"]  # fmt: skip
    retried = bank.json("dead-letters", "retry", str(ghost["seq"]), "--json")
    assert retried["subject"] == "nb.0.to.bank-a.result.bank-b.ghost-1"
    source = f"{retried['stream']}:{retried['seq']}"

    def again() -> dict | None:
        return next((x for x in letters(bank) if x["source"] == source), None)

    letter = eventually(again, within=60, what="the republished ghost result dead-lettered")
    shown = bank.json("dead-letters", "show", str(letter["seq"]), "--json")
    assert shown["payload"]["id"] == "ghost-1" and shown["payload_kind"] == "item"


async def sent_while_its_owner_had_no_consumer(home) -> int:
    """A submission onto bank-c's inbox, dead-lettered by an operator's sweep, and bank-c's
    submission consumer gone (as on a system being re-provisioned); returns the letter's
    sequence. (An unregistered participant's inbox takes no message at all.)"""
    nc = await connect(resolve_nats_url(Settings(home=str(home))))
    try:
        js = nc.jetstream()
        body = submission(EARLY, "5.00").replace(
            b'"bank-a", "account": "a1"', b'"bank-c", "account": "c1"'
        )
        await js.publish(f"nb.0.to.bank-c.submit.{EARLY}", body)
        sweep = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, filter_subject="nb.0.to.bank-c.>")
        sub = await js.pull_subscribe("nb.0.to.bank-c.>", stream=ledger_stream(0), config=sweep)
        (msg,) = await sub.fetch(1, timeout=5)
        await dead_letter(nc, "bank-c", msg, "UNDECODABLE", "taken aside by an operator")
        await sub.unsubscribe()
        await js.delete_consumer(ledger_stream(0), submit_consumer("bank-c", 0))
        info = await js.stream_info("DEADLETTER")
        return info.state.last_seq
    finally:
        await nc.close()


def test_a_letter_for_a_participant_without_its_consumer_is_retried_once_it_has(
    bank: Cli,
) -> None:
    bank.json("accounts", "open", "bank-c", "c1", "--fund", "100.00", "--json")
    seq = str(asyncio.run(sent_while_its_owner_had_no_consumer(bank.home)))
    refused = assert_one_line_error(bank("dead-letters", "retry", seq), DOMAIN)
    assert "bank-c has no inbox consumer" in refused and "register it first" in refused
    bank.json("streams", "init", "--json")  # re-provisioned: the consumer is back
    with bank.background("serve", "bank-b", "bank-c", log=bank.home / "serve-c.log"):
        retried = bank.json("dead-letters", "retry", seq, "--json")
        assert retried["republished"]
        final = eventually(lambda: final_status(bank, EARLY), within=60, what=f"{EARLY} final")
        assert final["submitter"]["outcome"] == "OK"
        assert not bank.json("dead-letters", "retry", seq, "--json")["republished"]
        audit = bank.json("audit", "--expect-final", "--json")
    assert audit["ok"], audit
    # Registering bank-c also delivered the original to it: the id is the idempotency key.
    balances = {a["account"]: a["balance"] for a in bank.json("accounts", "list", "--json")}
    assert balances["c1"] == "95.00"
