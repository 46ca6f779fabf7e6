"""`natsbank serve --http-port` answers /healthz, /readyz and /metrics from the real process: ready
once its inbox consumers are bound (not ready, with the reason, when they are gone), and the
metrics count exactly the transfers submitted. `--log-format json` writes only JSON lines, and a
dead letter's line names the transfer and its trace id."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from eventsource.adapters.cluster import resolve_nats_url
from eventsource.adapters.jetstream import connect
from eventsource.adapters.registry import partitions_of
from eventsource.core import trace
from eventsource.core.signing import Signer
from eventsource.core.subjects import inbox_consumer, ledger_stream, partition_of
from eventsource.settings import Settings
from tests.e2e.cli import Cli
from tests.e2e.http_probe import free_port, get, samples, value
from tests.e2e.polling import eventually

TRANSFERS = 4


async def publish_ghost_result(home, parent: str) -> None:
    """A result for a transfer bank-a never sent: a dead letter, with the transfer id."""
    nc = await connect(resolve_nats_url(Settings(home=str(home))))
    try:
        k = partition_of("bank-a", await partitions_of(nc))
        body = {"type": "result", "sender": "bank-b",
                "results": [{"id": "ghost-1", "digest": "0" * 24, "outcome": "OK"}]}  # fmt: skip
        data = json.dumps(body).encode()  # signed by bank-b: only the protocol refuses it
        signer = Signer((Path(home) / "dev" / "keys" / "bank-b.nk").read_bytes())
        signature = signer.message_headers("bank-b", "bank-a", "result", data)
        await nc.jetstream().publish(
            f"nb.{k}.to.bank-a.result.bank-b.ghost-1",
            data,
            headers={trace.HEADER: parent, **signature},
        )
    finally:
        await nc.close()


def test_probes_metrics_and_json_logs_of_a_real_serve(bank: Cli) -> None:
    port = free_port()
    log = bank.home / "serve-observed.log"
    serve = ("serve", "bank-a", "bank-b", "--http-port", str(port), "--log-format", "json")
    with bank.background(*serve, log=log):
        ready = eventually(
            lambda: r if (r := get(port, "/readyz")) and r[0] == 200 else None,
            within=60,
            what="/readyz answers 200",
        )
        assert ready[1].strip() == "ready"
        assert get(port, "/healthz") == (200, "ok\n")
        assert get(port, "/nowhere")[0] == 404

        for _ in range(TRANSFERS):
            done = bank("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", "1.00",
                        "--wait", "--json")  # fmt: skip
            assert done.returncode == 0, done.stderr
            row = json.loads(done.stdout)
            assert row["outcome"] == "OK" and trace.parse(row["traceparent"])

        def confirmed() -> dict | None:  # the receiver's side is final once it has the confirm
            found = samples(port)
            ok = value(found, "natsbank_transfers_total",
                       participant="bank-b", side="receiver", outcome="OK")  # fmt: skip
            return found if ok == TRANSFERS else None

        found = eventually(confirmed, within=60, what="bank-b confirmed every transfer")
        assert value(found, "natsbank_transfers_total",
                     participant="bank-a", side="submitter", outcome="OK") == TRANSFERS  # fmt: skip
        assert value(found, "natsbank_ack_to_final_seconds_count", participant="bank-a") == (
            TRANSFERS
        )
        assert value(found, "natsbank_groups_total", participant="bank-a") >= TRANSFERS
        for counter in ("commit_conflicts", "commit_retries", "redeliveries", "dead_letters"):
            assert f"natsbank_{counter}" in get(port, "/metrics")[1]
        # where its time went: it committed, so some seconds went to each deciding stage
        for stage in ("decode", "decide", "commit", "ack"):
            spent = value(found, "natsbank_stage_seconds_total", participant="bank-a", stage=stage)
            assert spent is not None and spent > 0, stage

        parent = trace.new_traceparent()
        asyncio.run(publish_ghost_result(bank.home, parent))

        def dead_letter_line() -> dict | None:
            text = log.read_text()
            for line in text[: text.rfind("\n") + 1].splitlines():  # whole lines only
                record = json.loads(line)  # every line, not only this one, must be JSON
                if record.get("transfer_id") == "ghost-1":
                    return record
            return None

        record = eventually(dead_letter_line, within=60, what="a JSON line for the dead letter")
        assert record["level"] == "WARNING" and "PROTOCOL_VIOLATION" in record["msg"]
        assert record["trace_id"] == trace.trace_id(parent)
        assert {"ts", "logger"} <= record.keys()
        assert value(samples(port), "natsbank_dead_letters_total",
                     participant="bank-a", reason="PROTOCOL_VIOLATION") == 1  # fmt: skip
        inbox = f"inbox_bank-a_{partition_of('bank-a', 1)}"
        lag = value(
            samples(port), "natsbank_consumer_pending", participant="bank-a", consumer=inbox
        )
        assert lag is not None and lag >= 0
    for line in log.read_text().splitlines():
        assert {"ts", "level", "logger", "msg"} <= json.loads(line).keys()


async def delete_inbox_consumers(home, participant: str) -> None:
    nc = await connect(resolve_nats_url(Settings(home=str(home))))
    try:
        for k in range(await partitions_of(nc)):
            await nc.jetstream().delete_consumer(ledger_stream(k), inbox_consumer(participant, k))
    finally:
        await nc.close()


def test_readyz_says_why_a_participant_whose_consumers_are_gone_is_not_ready(bank: Cli) -> None:
    """`serve` refuses a participant without consumers at start (one line, exit 2); one whose
    consumers are deleted while it runs stays up, not ready, and says why."""
    bank.json("accounts", "open", "bank-y", "y1", "--json")
    port = free_port()

    def readyz(status: int):
        return lambda: r if (r := get(port, "/readyz")) and r[0] == status else None

    with bank.background("serve", "bank-y", "--http-port", str(port), log=bank.home / "y.log"):
        eventually(readyz(200), within=60, what="/readyz answers 200")
        asyncio.run(delete_inbox_consumers(bank.home, "bank-y"))
        try:
            answer = eventually(readyz(503), within=60, what="/readyz answers 503")
            assert "bank-y" in answer[1] and "consumer" in answer[1]
            assert get(port, "/healthz") == (200, "ok\n")
        finally:
            bank.json("streams", "init", "--json")  # gives bank-y its consumers again
