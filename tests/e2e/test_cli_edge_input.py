"""What a user types never makes the CLI hang, lie or show a traceback (issue 11, items 2 and 3):
a name, an id, a number, a NATS_URL or a setting that cannot be meant is refused at the edge,
in one line on stderr, with exit code 2, before it reaches a subject, a wait or a loop. A
configuration that was changed by hand (streams.yaml, the participant registry) gets one line
that says what to do."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from eventsource.adapters.cluster import resolve_nats_url
from eventsource.adapters.jetstream import connect
from eventsource.core.subjects import PARTICIPANTS_BUCKET
from eventsource.settings import Settings
from tests.e2e.cli import Cli, assert_one_line_error

USAGE = 2
ONE = ("submit", "--from", "bank-a/a1", "--to", "bank-b/b1", "--amount", "1.00")
NOT_A_PARTICIPANT = "cannot be a participant"
NOT_AN_ID = "is not a transfer id"


def row(case: str, args: tuple[str, ...], words: list[str], **env: str) -> object:
    return pytest.param(args, env, words, id=case)


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        # NATS_URL naming no server made nats-py's first connect spin for ever.
        row("nats-url-blank", ("accounts", "list"), ["NATS_URL", "no server"], NATS_URL=" "),
        row("nats-url-commas", ("status", "x"), ["NATS_URL", "no server"], NATS_URL=",,,"),
        row("nats-url-scheme", ("audit",), ["NATS_URL", "'foo'"], NATS_URL="foo://h:4222"),
        # Ids and names: a wildcard, an empty or a malformed token never reaches a subject.
        row("status-empty", ("status", ""), ["ID: ''", NOT_AN_ID]),
        row("status-gt", ("status", ">"), ["ID: '>'", NOT_AN_ID]),
        row("status-star", ("status", "*"), ["ID: '*'", NOT_AN_ID]),
        row("status-space", ("status", "a b"), ["ID: 'a b'", NOT_AN_ID]),
        row("status-5000", ("status", "x" * 5000), [NOT_AN_ID]),
        row("status-p-gt", ("status", "x", "-p", "bank-a.>"), ["--participant", NOT_A_PARTICIPANT]),
        row(
            "list-gt", ("accounts", "list", "-p", ">"), ["--participant", "'>'", NOT_A_PARTICIPANT]
        ),
        row("list-wild", ("accounts", "list", "-p", "bank-a.>"), ["'bank-a.>'", NOT_A_PARTICIPANT]),
        row("fund-gt", ("accounts", "fund", "bank-a", ">", "1"), ["ACCOUNT: '>'", "account name"]),
        row("health-gt", ("health", "-p", ">"), ["--participant", "'>'", NOT_A_PARTICIPANT]),
        row("submit-empty-id", (*ONE, "--id", ""), ["--id: ''", NOT_AN_ID]),
        row("submit-wild-to", (*ONE[:3], "--to", "bank-b/*", *ONE[5:]), ["--to: '*'"]),
        # Numbers: a wait, a count or a rate that cannot be meant.
        row("timeout-negative", (*ONE, "--wait", "--timeout", "-1"), ["--timeout", "-1"]),
        row("timeout-nan", (*ONE, "--wait", "--timeout", "nan"), ["--timeout", "nan"]),
        row("timeout-inf", ("status", "x", "--timeout", "inf"), ["--timeout", "inf"]),
        row("health-timeout-nan", ("health", "--timeout", "nan"), ["--timeout", "nan"]),
        row("random-negative", ("submit", "--random", "-3"), ["--random", "-3"]),
        row("rate-zero", ("submit", "--random", "5", "--rate", "0"), ["--rate", "0 is not"]),
        row("rate-negative", ("submit", "--random", "5", "--rate", "-5"), ["--rate", "-5"]),
        row("rate-alone", (*ONE, "--rate", "5"), ["--rate goes with --random"]),
        # A service that could never fetch retried for ever; it exits instead.
        row("serve-unregistered", ("serve", "bank-zz"), ["bank-zz is not registered"]),
        row("serve-invalid", ("serve", "bank-a", "a b"), ["'a b'", NOT_A_PARTICIPANT]),
        row(
            "serve-batch-0",
            ("serve", "bank-a"),
            ["NATSBANK_FETCH_BATCH=0"],
            NATSBANK_FETCH_BATCH="0",
        ),
        row("serve-batch-flag", ("serve", "bank-a", "--fetch-batch", "-1"), ["--fetch-batch=-1"]),
    ],
)
def test_input_that_cannot_be_meant_is_one_line_and_exit_2(
    bank: Cli, args: tuple[str, ...], env: dict[str, str], words: list[str]
) -> None:
    line = assert_one_line_error(bank.with_env(**env)(*args), USAGE)

    for word in words:
        assert word in line
    assert bank.json("audit", "--json")["transfers_acked"] == 0


def test_a_streams_yaml_the_server_would_refuse_is_one_line(bank: Cli, tmp_path: Path) -> None:
    before = bank.json("streams", "init", "--dry-run", "--json")
    shipped = (Path(__file__).parents[2] / "streams.yaml").read_text()
    bad = tmp_path / "streams.yaml"
    bad.write_text(shipped.replace("max_deliver: -1", "max_deliver: 1"))

    line = assert_one_line_error(bank("streams", "init", "--file", str(bad)), USAGE)

    assert str(bad) in line and "max_deliver" in line and "backoff" in line
    assert bank.json("streams", "init", "--dry-run", "--json") == before


async def _put_registry(bank: Cli, key: str, value: bytes | None) -> bytes | None:
    """Put `value` under `key` in the registry (None: delete it); returns what was there."""
    nc = await connect(resolve_nats_url(Settings(home=str(bank.home))))
    try:
        kv = await nc.jetstream().key_value(PARTICIPANTS_BUCKET)
        try:
            old = (await kv.get(key)).value
        except Exception:  # nats-py: KeyNotFoundError
            old = None
        await (kv.put(key, value) if value is not None else kv.delete(key))
        return old
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("key", "value", "commands", "words"),
    [
        pytest.param("_topology", b"garbage", ["audit", "accounts"], ["_topology", "unreadable"],
                     id="topology-not-json"),
        pytest.param("_topology", b'{"partitions": "x"}', ["audit", "accounts"],
                     ["_topology", "unreadable"], id="topology-not-a-count"),
        pytest.param("_topology", b'{"partitions": 0}', ["audit", "accounts"],
                     ["_topology", "0 partitions"], id="topology-zero"),
        pytest.param("_topology", b'{"partitions": 3}', ["audit", "accounts"],
                     ["stream not found", "streams init"], id="topology-more-than-exist"),
        pytest.param("bank-x", b"garbage", ["audit"], ["'bank-x'", "unreadable"],
                     id="participant-not-json"),
    ],
)  # fmt: skip
def test_a_registry_changed_by_hand_is_one_line_and_exit_2(
    bank: Cli, key: str, value: bytes, commands: list[str], words: list[str]
) -> None:
    old = asyncio.run(_put_registry(bank, key, value))
    try:
        for command in commands:
            args = ("audit", "--json") if command == "audit" else ("accounts", "list", "--json")
            line = assert_one_line_error(bank(*args), USAGE)
            for word in words:
                assert word in line
    finally:
        asyncio.run(_put_registry(bank, key, old))
    assert bank.json("audit", "--json")["ok"] is True
