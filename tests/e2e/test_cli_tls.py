"""`natsbank dev up --tls` (issue 13): three nodes that speak TLS only to clients and mutual TLS
between themselves, with a generated CA; every command trusts that CA by itself, a plain-text
client gets no service, and a command that trusts another CA is refused in one line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventsource.adapters.pki import CA_CERT, TLS_DIR, ensure_pki
from tests.e2e.cli import Cli, cli_for
from tests.e2e.polling import until_exit_0
from tests.e2e.processes import dev_down

NODES = 3


@pytest.fixture(scope="module")
def tls_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """`natsbank dev up --tls --nodes 3` (authorization on); `dev down` after."""
    home = tmp_path_factory.mktemp("natsbank-tls-home")
    natsbank = cli_for(home)
    up = natsbank("dev", "up", "--tls", "--nodes", str(NODES))
    try:
        assert up.returncode == 0, up.stderr
        assert "TLS on" in up.stdout and "authorization on" in up.stdout
        assert "eof_received" not in up.stderr
        yield natsbank
    finally:
        dev_down(natsbank)


def cluster(natsbank: Cli) -> dict:
    return json.loads((natsbank.home / "dev" / "cluster.json").read_text())


def test_the_servers_speak_tls_and_route_over_mutual_tls(tls_dev: Cli) -> None:
    status = tls_dev.json("dev", "status", "--json")
    assert status["running"] and all(u.startswith("tls://") for u in status["url"].split(","))
    for node in cluster(tls_dev)["nodes"]:
        config = Path(node["config_path"]).read_text()
        assert config.count("tls {") == 2 and "verify: true" in config  # clients, routes
        url = f"http://127.0.0.1:{node['monitor_port']}/routez"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=5) as answer:
            routez = json.loads(answer.read())
        peers = {route["remote_name"] for route in routez["routes"]}
        assert len(peers) == NODES - 1, routez  # the other two, over mutual TLS


async def test_a_plain_text_client_gets_no_service(tls_dev: Cli) -> None:
    port = cluster(tls_dev)["nodes"][0]["client_port"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        info = await asyncio.wait_for(reader.readline(), 10)
        writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(200), 10)  # b"" once the server hangs up
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert b'"tls_required":true' in info
    assert b"PONG" not in answer


def test_the_commands_work_over_tls(tls_dev: Cli) -> None:
    natsbank = tls_dev
    assert natsbank("accounts", "open", "bank-a", "a1", "--fund", "100.00").returncode == 0
    assert natsbank("accounts", "open", "bank-b", "b1").returncode == 0
    listed = natsbank.json("accounts", "list", "--json")
    assert {(a["participant"], a["account"], a["balance"]) for a in listed} == {
        ("bank-a", "a1", "100.00"),
        ("bank-b", "b1", "0.00"),
    }
    audit = natsbank.json("audit", "--json")
    assert audit["ok"] is True and audit["funded"] == {"EUR": "100.00"}
    health = until_exit_0(  # the R3 assets were created a moment before: leaders first
        lambda: natsbank(
            *("--identity", "service.bank-a", "health", "--participant", "bank-a"),
            *("--timeout", "20"),
        ),
        within=60.0,
    )
    assert health.returncode == 0 and health.stdout.startswith("healthy:"), health.stderr


def test_the_dev_ca_works_for_any_client_given_it(tls_dev: Cli) -> None:
    """NATS_URL and NATSBANK_TLS_CA, as for a client that is not the dev state's."""
    url = cluster(tls_dev)["nodes"][0]
    ca = tls_dev.home / "dev" / TLS_DIR / CA_CERT
    given = tls_dev.with_env(
        NATS_URL=f"tls://127.0.0.1:{url['client_port']}",
        NATSBANK_TLS_CA=str(ca),
        NATSBANK_NKEY=str(tls_dev.home / "dev" / "credentials" / "audit.nk"),
    )
    assert given("audit").returncode == 0


def test_a_command_trusting_another_ca_is_refused_in_one_line(tls_dev: Cli, tmp_path: Path) -> None:
    other = ensure_pki(tmp_path / "other-ca")
    done = tls_dev.with_env(NATSBANK_TLS_CA=other.ca_file)("accounts", "list")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "not signed by a CA this command trusts" in done.stderr.splitlines()[-1]


def test_a_transfer_completes_over_tls(tls_dev: Cli, tmp_path: Path) -> None:
    natsbank = tls_dev
    natsbank("accounts", "open", "bank-a", "t1", "--fund", "10.00")
    natsbank("accounts", "open", "bank-b", "t2")
    with natsbank.background("serve", "bank-a", "bank-b", log=tmp_path / "serve.log"):
        submitted = natsbank.json(
            *("submit", "--from", "bank-a/t1", "--to", "bank-b/t2", "--amount", "1.50"),
            *("--wait", "--json"),
        )
    assert (submitted["outcome"], submitted["phase"]) == ("OK", "SETTLED")
    assert natsbank.json("audit", "--json")["ok"] is True
