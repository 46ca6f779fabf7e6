"""`natsbank submit` says what actually happened to each line, the same in text and in JSON
(issue 11, item 2): a line that reuses an earlier line's id with other content is refused before
anything is published, with both line numbers; a line that repeats an earlier one is reported as
the one transfer it is; and an id that the ledger gave to other content between the check and
the publish is reported as ID_CONFLICT, never as the other content's OK."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from eventsource.adapters.cluster import resolve_nats_url
from eventsource.adapters.jetstream import connect
from eventsource.core.subjects import ledger_stream
from eventsource.settings import Settings
from tests.e2e.cli import COMMAND_TIMEOUT, Cli, assert_one_line_error, ndjson_line
from tests.e2e.polling import eventually

DOMAIN = 1
ONE = ("submit", "--from", "bank-a/a1", "--to", "bank-b/b1")
MODES = [pytest.param((), id="text"), pytest.param(("--json",), id="json")]


def _acked(bank: Cli) -> int:
    return bank.json("audit", "--json")["transfers_acked"]


@pytest.mark.parametrize("mode", MODES)
def test_an_id_reused_with_other_content_in_one_file_is_refused_before_publishing(
    bank: Cli, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    before = _acked(bank)
    batch = tmp_path / "batch.ndjson"
    lines = [
        ndjson_line("in-file-1", "1.00"),
        ndjson_line("in-file-2", "1.00"),
        ndjson_line("in-file-1", "2.00"),
    ]
    batch.write_text("\n".join(lines) + "\n")

    line = assert_one_line_error(bank("submit", "--file", str(batch), "--wait", *mode), DOMAIN)

    assert f"{batch}:3" in line and f"{batch}:1" in line
    assert "in-file-1" in line and "ID_CONFLICT" in line and "nothing was submitted" in line
    assert _acked(bank) == before


def test_a_repeated_line_is_one_transfer_in_text_and_json(bank: Cli, tmp_path: Path) -> None:
    batch = tmp_path / "batch.ndjson"
    # The same transfer twice ("1.0" is "1.00"), a blank line between.
    batch.write_text(ndjson_line("again-1", "1.00") + "\n\n" + ndjson_line("again-1", "1.0") + "\n")

    with bank.background("serve", "bank-a", "bank-b", log=bank.home / "serve-again.log"):
        text = bank("submit", "--file", str(batch), "--wait")
        rows = bank.json("submit", "--file", str(batch), "--wait", "--json")

    assert text.returncode == 0, text.stderr
    first, second = text.stdout.splitlines()
    assert "again-1" in first and " OK " in first and "repeats" not in first
    assert "again-1" in second and " OK " in second and "(repeats line 1: one transfer)" in second
    assert [(r["id"], r["outcome"], r.get("repeats_line")) for r in rows] == [
        ("again-1", "OK", None),
        ("again-1", "OK", 1),
    ]
    assert rows[0]["ack"] == rows[1]["ack"]
    assert bank.json("status", "again-1", "--json")["submitter"]["amount"] == "1.00"


async def _last_sequence(home: Path) -> int:
    nc = await connect(resolve_nats_url(Settings(home=str(home))))
    try:
        return (await nc.jetstream().stream_info(ledger_stream(0))).state.last_seq
    finally:
        await nc.close()


def _background_submit(bank: Cli, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "eventsource.cli", *args],
        env=bank.env,
        cwd=bank.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_an_id_taken_by_other_content_after_the_check_is_an_id_conflict_not_ok(
    bank: Cli,
) -> None:
    """With no service running, content A of each id is ACKed but not yet recorded, so the
    check before publishing cannot see it: content B is ACKed too. The service then records A
    (OK) and dead-letters B: B's report must say ID_CONFLICT in both output modes."""
    for transfer_id in ("race-text", "race-json"):
        bank.json(*ONE, "--amount", "1.00", "--id", transfer_id, "--json")
    published = asyncio.run(_last_sequence(bank.home))
    b_args = (*ONE, "--amount", "2.00", "--wait", "--timeout", "60")
    text = _background_submit(bank, *b_args, "--id", "race-text")
    as_json = _background_submit(bank, *b_args, "--id", "race-json", "--json")
    eventually(
        lambda: asyncio.run(_last_sequence(bank.home)) >= published + 2 or None,
        within=30,
        what="both B contents ACKed",
    )

    with bank.background("serve", "bank-a", "bank-b", log=bank.home / "serve-race.log"):
        text_out, text_err = text.communicate(timeout=COMMAND_TIMEOUT)
        json_out, json_err = as_json.communicate(timeout=COMMAND_TIMEOUT)

    assert text.returncode == DOMAIN, text_err
    assert "race-text" in text_out and "ID_CONFLICT" in text_out
    assert " OK " not in text_out.split("(the id holds")[0]
    row = json.loads(json_out)
    assert as_json.returncode == DOMAIN, json_err
    assert (row["id"], row["outcome"], row["cause"]) == ("race-json", "REJECTED", "ID_CONFLICT")
    assert "position" not in row
    for transfer_id in ("race-text", "race-json"):
        assert bank.json("status", transfer_id, "--json")["submitter"]["amount"] == "1.00"
