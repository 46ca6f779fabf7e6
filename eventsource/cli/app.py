"""The `natsbank` command. Sub-commands live in their own modules and are registered here."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from eventsource.core.errors import NatsbankError

app = typer.Typer(
    name="natsbank",
    help="Bank transfers over NATS JetStream with a three-phase protocol.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


def _register() -> None:
    from eventsource.cli import dev

    app.add_typer(dev.app, name="dev")


def main() -> None:
    _register()
    try:
        app(standalone_mode=False)
    except NatsbankError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise
