"""Parse a natsbank command line as the CLI would, without running it: what the drift tests
check every command written in the deployment files against."""

from __future__ import annotations

import functools

import typer.main

from eventsource.cli import app as cli_app

try:  # recent typer vendors click as typer._click; older ones use click itself
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, UsageError  # type: ignore[no-redef]


@functools.cache
def natsbank():
    cli_app._register()  # what `natsbank` does before it parses argv
    return typer.main.get_command(cli_app.app)  # type: ignore[return-value]


def parse(argv: tuple[str, ...]) -> tuple[str, ...]:
    """Parse like `natsbank ARGV` would, without running anything; return the command path.
    Raises UsageError (or a subclass) for an unknown command, option or bad value."""
    command = natsbank()
    ctx = command.make_context("natsbank", list(argv))
    path: list[str] = []
    while hasattr(command, "resolve_command"):  # a group: find the sub-command
        rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
        if not rest:
            raise UsageError(f"natsbank {' '.join(path)} needs a command", ctx)
        name, sub, args = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        path.append(name)
        command, ctx = sub, sub.make_context(name, args, parent=ctx)
    return tuple(path)


__all__ = ["ClickException", "UsageError", "natsbank", "parse"]
