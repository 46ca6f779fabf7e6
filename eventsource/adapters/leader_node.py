"""Which node a bank's service should connect to: the one that leads its home partition.

Every message of an atomic batch is published on its own, and a server that does not lead the
stream forwards each one over a route to the leader: 2 more messages through the servers per
stored message, about 10 per transfer on 3 nodes (docs/FINDINGS.md, "Messages per transfer").
Connected to the leader, the batch goes straight in. This changes only where the connection
lands, never what is written or how: a leader that moves later, a node that cannot be found, or
a single node leave the service where it is, correct and merely costlier.
"""

from __future__ import annotations

import contextlib
import json
import logging
from urllib.parse import urlparse

from nats.aio.client import Client

from eventsource.adapters.credentials import Credential
from eventsource.adapters.jetstream import api_subject, connect
from eventsource.adapters.nats_url import server_list
from eventsource.core.limits import LEADER_PROBE_TIMEOUT_S
from eventsource.core.permissions import JS_API

log = logging.getLogger("natsbank.connect")


async def stream_leader(nc: Client, stream: str) -> str | None:
    """The name of the server that leads `stream`; None when it has none or is not clustered."""
    reply = await nc.request(
        api_subject(nc, f"STREAM.INFO.{stream}"), b"", timeout=LEADER_PROBE_TIMEOUT_S
    )
    body = json.loads(reply.data)
    return (body.get("cluster") or {}).get("leader") or None


def server_name(nc: Client) -> str | None:
    """The name of the server `nc` is connected to (from its INFO)."""
    return (getattr(nc, "_server_info", None) or {}).get("server_name")


async def leader_first(nc: Client, url: str, credential: Credential, stream: str) -> str | None:
    """`url` with the node that leads `stream` first (connect to it with `dont_randomize`), or
    None: no leader, or the leader's node is not among the configured and discovered URLs.
    `nc` is a connection to any node; each other URL is probed with a short connection.
    A bank's credential under authorization may not ask for the ledger's stream info (it
    would tell one bank how busy the others are): it connects as before."""
    if credential.js_api != JS_API:
        return None
    try:
        leader = await stream_leader(nc, stream)
    except Exception as exc:  # no answer now: connect as before
        log.info("no leader of %s found (%s): connecting to any node", stream, exc)
        return None
    if leader is None:
        return None
    configured = server_list(url)
    here = _address(getattr(nc, "connected_url", None))
    for candidate in dict.fromkeys(configured + _discovered(nc)):
        at_hand = _address(urlparse(candidate)) == here
        name = server_name(nc) if at_hand else await _probe(candidate, credential)
        if name == leader:
            return ",".join([candidate, *(u for u in configured if u != candidate)])
    log.info("the leader of %s (%s) is at no known URL: connecting to any node", stream, leader)
    return None


async def _probe(url: str, credential: Credential) -> str | None:
    """The server name at `url`, from one short connection; None if it does not answer."""
    try:
        probe = await connect(
            url,
            name="natsbank-probe",
            credential=credential,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=LEADER_PROBE_TIMEOUT_S,
            error_cb=_quiet,
        )
    except Exception:  # a node down or unreachable: not this one
        return None
    try:
        return server_name(probe)
    finally:
        with contextlib.suppress(Exception):
            await probe.close()


async def _quiet(exc: Exception) -> None:
    log.debug("probe: %s", exc)


def _address(parsed) -> str | None:
    """host:port of a parsed URL, without any user and password."""
    return parsed.netloc.rsplit("@", 1)[-1] if parsed is not None else None


def _discovered(nc: Client) -> list[str]:
    """URLs the cluster told the client about (a deployment may configure one seed URL)."""
    found = []
    for server in getattr(nc, "discovered_servers", None) or []:  # urllib ParseResults
        uri = getattr(server, "uri", server)
        found.append(f"{uri.scheme}://{_address(uri)}")
    return found
