"""The `natsbank` command. Sub-commands live in their own modules and are registered here."""

from __future__ import annotations

import os
import sys

import typer

from eventsource.cli.common import err_console
from eventsource.core.errors import NatsbankError

app = typer.Typer(
    name="natsbank",
    help="Bank transfers over NATS JetStream with a three-phase protocol.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def credentials(
    creds: str | None = typer.Option(
        None, "--creds", help="A NATS creds file (env NATSBANK_CREDS).", show_default=False
    ),
    nkey: str | None = typer.Option(
        None, "--nkey", help="An nkey seed file (env NATSBANK_NKEY).", show_default=False
    ),
    user: str | None = typer.Option(None, "--user", help="env NATSBANK_USER."),
    password: str | None = typer.Option(None, "--password", help="env NATSBANK_PASSWORD."),
    identity: str | None = typer.Option(
        None,
        "--identity",
        help="Connect as this identity (audit, service.bank-a, ...) rather than the one the "
        "command needs (env NATSBANK_IDENTITY).",
        show_default=False,
    ),
    tls_ca: str | None = typer.Option(
        None, "--tls-ca", help="The CA of the servers' certificates (env NATSBANK_TLS_CA)."
    ),
    tls_cert: str | None = typer.Option(
        None, "--tls-cert", help="A client certificate, for mutual TLS (env NATSBANK_TLS_CERT)."
    ),
    tls_key: str | None = typer.Option(
        None, "--tls-key", help="Its private key (env NATSBANK_TLS_KEY)."
    ),
) -> None:
    """Credentials and TLS for every command: given here or in the environment, else the dev
    cluster's own for the role the command needs (adapters/credentials.py, adapters/tls.py)."""
    given = {
        "CREDS": creds,
        "NKEY": nkey,
        "USER": user,
        "PASSWORD": password,
        "IDENTITY": identity,
        "TLS_CA": tls_ca,
        "TLS_CERT": tls_cert,
        "TLS_KEY": tls_key,
    }
    for name, value in given.items():
        if value is not None:  # the settings read them from there, flags over environment
            os.environ[f"NATSBANK_{name}"] = value


def _register() -> None:
    from eventsource.cli import (
        accounts,
        archive,
        audit,
        bench,
        dead_letters,
        demo,
        deploy,
        dev,
        health,
        projections,
        remote_bank,
        serve,
        status,
        streams,
        submit,
    )

    app.add_typer(dev.app, name="dev")
    app.add_typer(deploy.app, name="deploy")
    app.add_typer(streams.app, name="streams")
    app.add_typer(accounts.app, name="accounts")
    app.add_typer(projections.app, name="projections")
    app.add_typer(archive.app, name="archive")
    for module in (serve, remote_bank, submit, status, audit, demo, bench, health, dead_letters):
        module.register(app)


def main() -> None:
    """Usage errors exit 2 (typer's standalone mode); natsbank errors print one line."""
    _register()
    try:
        app()
    except NatsbankError as exc:
        # One line even when the cause is multi-line (a YAML parser's message, a log tail).
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
