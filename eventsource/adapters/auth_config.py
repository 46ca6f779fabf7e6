"""The `accounts` block of the nats-server config: the account-per-bank model of
core/permissions.py rendered for the public keys of one set of credentials.

JSON is valid nats-server config, and quoting every string keeps `$KV…` and `>` literal (an
unquoted `$NAME` is a variable to nats-server)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from eventsource.core.grants import grant_for, tool_exports
from eventsource.core.permissions import (
    LEDGER_ACCOUNT,
    OPERATOR_ROLES,
    SYSTEM_ACCOUNT,
    Export,
    Grant,
    Identity,
    Role,
    bank_account,
    bank_exports,
    core_route,
    shared_reads,
)

SYSTEM_USER = "sys"  # the key name of the SYS account's user (monitoring; no tool uses it)


def render_accounts(
    public_keys: Mapping[str, str], participants: Iterable[str], partitions: int
) -> str:
    """`accounts: {...}` and `system_account`, for the keys named by `Identity.name` (and
    `SYSTEM_USER`). Every participant needs its service and client key."""
    banks = sorted(set(participants))
    exports: dict[str, dict] = {}
    accounts: dict[str, dict] = {}
    for e in shared_reads():
        _add_export(exports, e)
    for p in banks:
        own = bank_exports(p, partitions)
        imports = [_import(e) for e in [*own, *shared_reads()]]
        imports += [_core_import(sender, p) for sender in banks if sender != p]
        users = [
            _user(public_keys, Identity(role, p), partitions, banks)
            for role in Role
            if role.per_bank
        ]
        core = [_core_export(p, recipient) for recipient in banks if recipient != p]
        accounts[bank_account(p)] = {"users": users, "imports": imports, "exports": core}
    tools = tool_exports(partitions, banks)
    for role in OPERATOR_ROLES:
        identity = Identity(role)
        user = _user(public_keys, identity, partitions, banks)
        if role.in_ledger:
            continue
        imports = [_import(e) for e in tools if e.account == identity.account]
        accounts[identity.account] = {"users": [user], "imports": imports}
    for export in [*_bank_side(banks, partitions), *tools]:
        _add_export(exports, export)
    ledger_users = [
        _user(public_keys, Identity(r), partitions, banks) for r in OPERATOR_ROLES if r.in_ledger
    ]
    accounts[LEDGER_ACCOUNT] = {"jetstream": "enabled", "users": ledger_users}
    accounts[LEDGER_ACCOUNT]["exports"] = list(exports.values())
    accounts[SYSTEM_ACCOUNT] = {"users": [{"nkey": public_keys[SYSTEM_USER]}]}
    return (
        f"accounts: {json.dumps(accounts, indent=2)}\n"
        f"system_account: {json.dumps(SYSTEM_ACCOUNT)}\n"
    )


def _bank_side(banks: list[str], partitions: int) -> list[Export]:
    return [e for p in banks for e in bank_exports(p, partitions)]


def _add_export(exports: dict[str, dict], export: Export) -> None:
    """One export per subject and kind, naming every account that may import it (a leader
    get is per stream, shared by the banks of a partition and the tools)."""
    rendered = exports.setdefault(export.subject, _export(export))
    public = "accounts" not in rendered  # the registry: already open to every account
    if not public and export.account not in rendered["accounts"]:
        rendered["accounts"].append(export.account)


def _export(export: Export) -> dict:
    rendered: dict = {"service": export.subject}
    if export.account is not None:
        rendered["accounts"] = []
    if export.streamed:
        rendered["response_type"] = "stream"
    return rendered


def _core_export(sender: str, recipient: str) -> dict:
    return {"stream": core_route(sender, recipient), "accounts": [bank_account(recipient)]}


def _core_import(sender: str, recipient: str) -> dict:
    return {"stream": {"account": bank_account(sender), "subject": core_route(sender, recipient)}}


def _import(export: Export) -> dict:
    return {"service": {"account": LEDGER_ACCOUNT, "subject": export.subject}, "to": export.local}


def _user(keys: Mapping[str, str], identity: Identity, partitions: int, banks: list[str]) -> dict:
    grant: Grant = grant_for(identity, partitions, banks)
    publish: dict = {"allow": list(grant.allow)}
    if grant.deny:
        publish["deny"] = list(grant.deny)
    permissions = {"publish": publish, "subscribe": {"allow": list(grant.subscribe)}}
    return {"nkey": keys[identity.name], "permissions": permissions}
