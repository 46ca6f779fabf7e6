"""Mistakes at the command line: one clear line on stderr, no traceback, and the exit code of
DESIGN.md section 8 (1 for what the domain refuses, 2 for a usage or configuration error)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.cli import Cli, assert_one_line_error, cli_for, ndjson_line
from tests.e2e.processes import live_nats_servers

DOMAIN, USAGE = 1, 2
ONE = ("--from", "bank-a/a1", "--to", "bank-b/b1")


def _ndjson_line(amount: object = "1.00", transfer_id: str = "file-1") -> str:
    return ndjson_line(transfer_id, amount)


def _assert_nothing_submitted(bank: Cli) -> None:
    assert bank.json("audit", "--json")["transfers_acked"] == 0


@pytest.mark.parametrize(
    ("args", "exit_code", "words"),
    [
        pytest.param((*ONE, "--amount", "abc"), DOMAIN, ["INVALID_AMOUNT", "'abc'"], id="abc"),
        pytest.param((*ONE, "--amount", "-5"), DOMAIN, ["INVALID_AMOUNT", "'-5'"], id="negative"),
        pytest.param((*ONE, "--amount", "0"), DOMAIN, ["INVALID_AMOUNT", "greater than"], id="0"),
        pytest.param(
            (*ONE, "--amount", "1.234"), DOMAIN, ["INVALID_AMOUNT", "3 decimals"], id="decimals"
        ),
        pytest.param(
            (*ONE, "--amount", "1.00", "--currency", "XYZ"),
            DOMAIN,
            ["UNKNOWN_CURRENCY", "'XYZ'"],
            id="currency",
        ),
        pytest.param(
            ("--from", "bank-a", "--to", "bank-b/b1", "--amount", "1.00"),
            USAGE,
            ["--from", "PARTICIPANT/ACCOUNT", "'bank-a'"],
            id="no-slash",
        ),
        pytest.param(
            ("--from", "bank-a/a1", "--to", "bank-a/a1", "--amount", "1.00"),
            DOMAIN,
            ["SAME_ACCOUNT"],
            id="same-account",
        ),
        pytest.param(
            ("--from", "bank-a/a1", "--amount", "1.00"), USAGE, ["--to"], id="no-creditor"
        ),
    ],
)
def test_a_bad_transfer_on_the_command_line_is_refused_before_publishing(
    bank: Cli, args: tuple[str, ...], exit_code: int, words: list[str]
) -> None:
    line = assert_one_line_error(bank("submit", *args, "--wait"), exit_code)

    for word in words:
        assert word in line
    _assert_nothing_submitted(bank)


@pytest.mark.parametrize(
    ("content", "exit_code", "words"),
    [
        pytest.param(
            _ndjson_line(amount=10.5) + "\n",
            DOMAIN,
            ["file-1", "INVALID_AMOUNT", "number"],
            id="float-amount",
        ),
        pytest.param(
            _ndjson_line() + "\n" + "{not json\n",
            USAGE,
            ["batch.ndjson:2:", "malformed"],
            id="malformed-line",
        ),
        pytest.param(
            _ndjson_line() + "\n" + '{"id": "file-2"}\n',
            USAGE,
            ["batch.ndjson:2:", "debtor"],
            id="missing-field",
        ),
        pytest.param(
            _ndjson_line() + "\n" + json.dumps({"id": "x" * 70_000}) + "\n",
            USAGE,
            ["batch.ndjson:2:", "longer than"],
            id="oversize-line",
        ),
        pytest.param("\n\n", USAGE, ["no transfers"], id="empty"),
    ],
)
def test_a_bad_ndjson_file_is_refused_before_publishing(
    bank: Cli, tmp_path: Path, content: str, exit_code: int, words: list[str]
) -> None:
    batch = tmp_path / "batch.ndjson"
    batch.write_text(content)

    line = assert_one_line_error(
        bank("submit", "--file", str(batch), "--wait", "--json"), exit_code
    )

    for word in words:
        assert word in line
    _assert_nothing_submitted(bank)


def test_a_missing_ndjson_file_is_a_usage_error(bank: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.ndjson"

    line = assert_one_line_error(bank("submit", "--file", str(missing)), USAGE)

    assert str(missing) in line and "No such file" in line


def test_a_status_of_an_unknown_id_is_a_domain_failure(bank: Cli) -> None:
    line = assert_one_line_error(bank("status", "no-such-transfer", "--json"), DOMAIN)

    assert "no-such-transfer" in line


@pytest.mark.parametrize("participant", ["to", "in", "dlq", "_x", "a.b"])
def test_a_reserved_or_malformed_participant_name_is_a_usage_error(
    bank: Cli, participant: str
) -> None:
    line = assert_one_line_error(bank("accounts", "open", participant, "x1"), USAGE)

    assert repr(participant) in line and "cannot be a participant" in line
    names = {a["participant"] for a in bank.json("accounts", "list", "--json")}
    assert participant not in names


def test_two_nodes_is_a_usage_error_with_or_without_a_running_cluster(bank: Cli, cli: Cli) -> None:
    for natsbank in (bank, cli):
        line = assert_one_line_error(natsbank("dev", "up", "--nodes", "2"), USAGE)
        assert "1 or 3 nodes" in line
    assert live_nats_servers(cli.home) == []
    assert len(bank.json("dev", "status", "--json")["nodes"]) == 1


def test_asking_for_another_size_than_the_running_cluster_is_a_usage_error(bank: Cli) -> None:
    line = assert_one_line_error(bank("dev", "up", "--nodes", "3"), USAGE)
    assert "1-node dev cluster is already running" in line
    assert len(bank.json("dev", "status", "--json")["nodes"]) == 1


@pytest.mark.parametrize(
    ("yaml", "words"),
    [
        pytest.param("partitions: 0\n", ["partitions"], id="range"),
        pytest.param("ledger:\n  storage: disk\n", ["$.ledger.storage", "'disk'"], id="enum"),
        pytest.param("ledger:\n  stroage: file\n", ["stroage"], id="unknown-field"),
        pytest.param("partitions: [\n", ["not valid YAML"], id="not-yaml"),
    ],
)
def test_a_bad_streams_yaml_names_its_field_and_changes_nothing(
    bank: Cli, tmp_path: Path, yaml: str, words: list[str]
) -> None:
    before = bank.json("streams", "init", "--dry-run", "--json")
    bad = tmp_path / "streams.yaml"
    bad.write_text(yaml)

    line = assert_one_line_error(bank("streams", "init", "--file", str(bad)), USAGE)

    assert str(bad) in line
    for word in words:
        assert word in line
    assert bank.json("streams", "init", "--dry-run", "--json") == before


@pytest.mark.parametrize(
    "args",
    [
        ("accounts", "list", "--json"),
        ("streams", "init"),
        ("audit", "--json"),
        ("status", "some-id"),
        ("submit", *ONE, "--amount", "1.00"),
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_without_a_cluster_or_nats_url_a_command_says_to_start_one(
    cli: Cli, args: tuple[str, ...]
) -> None:
    line = assert_one_line_error(cli(*args), USAGE)

    assert "natsbank dev up" in line and "NATS_URL" in line


def test_an_empty_home_has_no_cluster_to_stop(tmp_path: Path) -> None:
    natsbank = cli_for(tmp_path)

    down = natsbank("dev", "down")
    status = natsbank("dev", "status", "--json")

    assert down.returncode == 0 and "no dev cluster running" in down.stdout
    assert status.returncode == 1 and json.loads(status.stdout)["running"] is False


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(("--remote-bank", "nearby"), ["--remote-bank", "'nearby'"], id="mode"),
        pytest.param(
            ("--remote-bank", "simulated", "--remote-delay", "fast"),
            ["--remote-delay", "'fast'"],
            id="delay",
        ),
        pytest.param(
            ("--remote-bank", "simulated", "--remote-delay", "80-20"),
            ["--remote-delay", "MIN <= MAX"],
            id="range",
        ),
        pytest.param(
            ("--remote-bank", "simulated", "--remote-loss", "1"), ["--remote-loss"], id="loss"
        ),
        pytest.param(
            (
                "--remote-loss",
                "0.1",
            ),
            ["--remote-bank simulated"],
            id="no-remote",
        ),
        pytest.param(
            ("--remote-bank", "external", "--remote-timeout", "0"),
            ["--remote-timeout"],
            id="timeout",
        ),
    ],
)
def test_a_bad_remote_bank_option_of_serve_is_a_usage_error(
    cli: Cli, args: tuple[str, ...], words: list[str]
) -> None:
    line = assert_one_line_error(cli("serve", "bank-a", *args), USAGE)

    assert all(word in line for word in words), line
