"""The `accounts` block of the nats-server config: the account-per-bank model of
core/permissions.py rendered for the public keys of one set of credentials.

JSON is valid nats-server config, and quoting every string keeps `$KV…` and `>` literal (an
unquoted `$NAME` is a variable to nats-server)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from eventsource.core.grants import grant_for
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
    registry_exports,
)

SYSTEM_USER = "sys"  # the key name of the SYS account's user (monitoring; no tool uses it)


def render_accounts(
    public_keys: Mapping[str, str], participants: Iterable[str], partitions: int
) -> str:
    """`accounts: {...}` and `system_account`, for the keys named by `Identity.name` (and
    `SYSTEM_USER`). Every participant needs its service and client key."""
    banks = sorted(set(participants))
    exports: dict[str, dict] = {e.subject: _export(e) for e in registry_exports()}
    accounts: dict[str, dict] = {}
    for p in banks:
        own = bank_exports(p, partitions)
        for export in own:  # one export per subject: the leader get is per stream, shared
            rendered = exports.setdefault(export.subject, _export(export))
            if bank_account(p) not in rendered["accounts"]:
                rendered["accounts"].append(bank_account(p))
        imports = [_import(e) for e in [*own, *registry_exports()]]
        users = [
            _user(public_keys, Identity(role, p), partitions, banks)
            for role in (Role.SERVICE, Role.CLIENT)
        ]
        accounts[bank_account(p)] = {"users": users, "imports": imports}
    ledger_users = [_user(public_keys, Identity(r), partitions, banks) for r in OPERATOR_ROLES]
    accounts[LEDGER_ACCOUNT] = {"jetstream": "enabled", "users": ledger_users}
    accounts[LEDGER_ACCOUNT]["exports"] = list(exports.values())
    accounts[SYSTEM_ACCOUNT] = {"users": [{"nkey": public_keys[SYSTEM_USER]}]}
    return (
        f"accounts: {json.dumps(accounts, indent=2)}\n"
        f"system_account: {json.dumps(SYSTEM_ACCOUNT)}\n"
    )


def _export(export: Export) -> dict:
    rendered: dict = {"service": export.subject}
    if export.bank is not None:
        rendered["accounts"] = [bank_account(export.bank)]
    if export.streamed:
        rendered["response_type"] = "stream"
    return rendered


def _import(export: Export) -> dict:
    return {"service": {"account": LEDGER_ACCOUNT, "subject": export.subject}, "to": export.local}


def _user(keys: Mapping[str, str], identity: Identity, partitions: int, banks: list[str]) -> dict:
    grant: Grant = grant_for(identity, partitions, banks)
    publish: dict = {"allow": list(grant.allow)}
    if grant.deny:
        publish["deny"] = list(grant.deny)
    permissions = {"publish": publish, "subscribe": {"allow": list(grant.subscribe)}}
    return {"nkey": keys[identity.name], "permissions": permissions}
