"""`natsbank deploy keys`: the secrets a deployment (compose.yaml, k8s/) mounts, generated where
it is deployed and never committed (adapters/deploy_secrets.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from eventsource.adapters.deploy_secrets import write_deployment_secrets
from eventsource.cli.common import console, print_json, settings
from eventsource.cli.dev_auth import dev_auth

app = typer.Typer(help="Prepare a deployment (compose.yaml, k8s/).", no_args_is_help=True)
DEFAULT_OUT = Path("k8s/secrets")  # where compose.yaml and k8s/kustomization.yaml look


@app.command("keys")
def keys(
    participants: list[str] = typer.Option(
        [],
        "--participant",
        "-p",
        help="A participant to make credentials for (repeat it; those of the streams file "
        "are added).",
    ),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="The directory to write (0700)."),
    streams_file: Path | None = typer.Option(
        None,
        "--streams-file",
        help="streams.yaml of the deployment (its participants and "
        "partitions; default NATSBANK_STREAMS_FILE, else ./streams.yaml).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write an nkey seed per identity, the operator's signing seed, the nats-server
    authorization config for their public keys, the public signing keys for `streams init
    --signing-keys` (each bank signs with its service seed), and a PostgreSQL password.
    Existing seeds and passwords are kept: run it again after adding a participant, then
    reload the servers and run `streams init` again."""
    config = settings(streams_file=str(streams_file) if streams_file else None)
    auth = dev_auth(config, participants)
    written = write_deployment_secrets(out, auth.participants, auth.partitions)
    if as_json:
        print_json(
            {
                "directory": str(written.directory),
                "participants": list(auth.participants),
                "partitions": auth.partitions,
                "identities": list(written.identities),
                "auth_config": str(written.auth_config),
                "postgres_env": str(written.postgres_env),
                "operator_key": str(written.operator_key),
                "signing_keys": str(written.signing_keys),
            }
        )
        return
    console.print(
        f"wrote {len(written.identities)} nkey seeds, the operator's signing seed "
        f"{written.operator_key.name}, {written.auth_config.name}, {written.signing_keys.name} "
        f"and {written.postgres_env.name} to {written.directory} (participants "
        f"{', '.join(auth.participants)}; keep it out of version control)",
        highlight=False,
        soft_wrap=True,
    )
