"""compose.yaml and k8s/ say only what natsbank understands: every command line parses against the
real CLI, every NATS_URL / NATSBANK_* variable is one the settings read (or, for a signing seed,
the one adapters/signing_keys.py reads), and the deployment's streams.yaml is the repository's
plus the participants it serves."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import nkeys
import pytest

from eventsource.adapters.credentials import ensure_seed
from eventsource.adapters.signing_keys import operator_signer, participant_signer
from eventsource.adapters.topology import load_topology
from eventsource.core.errors import ConfigError
from eventsource.settings import load_settings
from tests.deploy import manifests
from tests.deploy.cli_parse import ClickException, UsageError, parse
from tests.deploy.manifests import CommandLine

# The commands the deployment cannot do without; finding fewer means the collector went blind.
EXPECTED = {
    ("serve",),
    ("streams", "init"),
    ("projections", "run"),
    ("submit",),
    ("health",),
    ("accounts", "open"),
    ("accounts", "list"),
    ("archive", "run"),
}


def problems(lines: list[CommandLine]) -> list[str]:
    found = []
    for line in lines:
        try:
            parse(line.argv)
        except ClickException as exc:
            found.append(f"{line.where}: natsbank {' '.join(line.argv)}: {exc.format_message()}")
        except ConfigError as exc:  # a name or a number the CLI checks as it parses
            found.append(f"{line.where}: natsbank {' '.join(line.argv)}: {exc}")
    return found


def test_every_compose_command_line_parses() -> None:
    lines = manifests.compose_commands(manifests.load_compose())
    assert problems(lines) == []
    assert {parse(line.argv) for line in lines} >= EXPECTED


def test_every_k8s_command_line_parses(k8s: list[dict]) -> None:
    lines = manifests.k8s_commands(k8s)
    assert problems(lines) == []
    assert EXPECTED - {("submit",)} <= {parse(line.argv) for line in lines}


@pytest.mark.parametrize(
    "argv",
    [
        ("serve", "bank-a", "--made-up"),
        ("serve", "bank-a", "--mode", "carrier-pigeon"),
        ("streams", "initialise"),
        ("health", "--participant"),
        ("submit", "--random", "many"),
        ("projections",),
    ],
)
def test_the_checker_refuses_what_the_cli_refuses(argv: tuple[str, ...]) -> None:
    with pytest.raises(UsageError):
        parse(argv)


def test_a_made_up_flag_in_compose_yaml_is_reported() -> None:
    text = manifests.COMPOSE.read_text()
    served = 'command: ["serve", "bank-a", '
    broken = text.replace(served, served + '"--jobs", ')
    assert broken != text
    found = problems(manifests.compose_commands(manifests.load_compose(broken)))
    assert len(found) == 1 and "bank-a" in found[0] and "--jobs" in found[0], found


def read_by_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> bool:
    """True if setting the variable changes what load_settings() returns (or makes it refuse)."""
    with monkeypatch.context() as env:
        env.delenv(name, raising=False)
        baseline = load_settings()
        env.setenv(name, "1")
        try:
            return load_settings() != baseline
        except ConfigError:
            return True


def read_as_signing_seed(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> bool:
    """True if a seed file named by the variable is what a bank or the operator signs with
    (an empty NATSBANK_HOME: no dev key can stand in for it)."""
    seed = tmp_path / "probe.nk"
    public = ensure_seed(seed, nkeys.PREFIX_BYTE_OPERATOR)
    with monkeypatch.context() as env:
        env.setenv("NATSBANK_HOME", str(tmp_path / "home"))
        env.setenv(name, str(seed))
        for signer in (lambda: participant_signer("bank-a"), operator_signer):
            try:
                if signer().public_key == public:
                    return True
            except ConfigError:
                continue
    return False


def check_environment(
    variables: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    unread = [
        name
        for name in variables
        if not read_by_settings(name, monkeypatch)
        and not read_as_signing_seed(name, monkeypatch, tmp_path)
    ]
    assert unread == [], f"set in the manifests but never read by eventsource/settings.py: {unread}"
    for name, values in variables.items():
        for value in values:
            with monkeypatch.context() as env:
                env.setenv(name, value)
                load_settings()  # a value the settings refuse raises ConfigError here


SIGNING = {"NATSBANK_SIGNING_KEY", "NATSBANK_OPERATOR_KEY", "NATSBANK_SIGNING_KEYS"}


def test_compose_sets_only_variables_the_settings_read(
    deployment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    variables = manifests.compose_environment(manifests.load_compose(), deployment)
    assert {"NATS_URL", "NATSBANK_STREAMS_FILE", "NATSBANK_PG_DSN", *SIGNING} <= variables.keys()
    check_environment(variables, monkeypatch, tmp_path)


def test_k8s_sets_only_variables_the_settings_read(
    k8s: list[dict], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    variables = manifests.k8s_environment(k8s)
    assert {"NATS_URL", "NATSBANK_STREAMS_FILE", "NATSBANK_PG_DSN", *SIGNING} <= variables.keys()
    check_environment(variables, monkeypatch, tmp_path)


def test_a_variable_the_settings_do_not_read_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert read_by_settings("NATSBANK_HOME", monkeypatch)
    assert read_by_settings("NATSBANK_SIGNING_KEYS", monkeypatch)
    assert not read_by_settings("NATSBANK_MADE_UP", monkeypatch)
    assert read_as_signing_seed("NATSBANK_SIGNING_KEY", monkeypatch, tmp_path)
    assert read_as_signing_seed("NATSBANK_OPERATOR_KEY", monkeypatch, tmp_path)
    assert not read_as_signing_seed("NATSBANK_MADE_UP", monkeypatch, tmp_path)


def test_the_deployed_streams_file_is_the_repository_one_plus_participants_and_a_horizon(
    k8s: list[dict],
) -> None:
    deployed = load_topology(manifests.CONFIG / "streams.yaml")
    repository = load_topology(manifests.ROOT / "streams.yaml")
    # The one intended difference: a deployment bounds its live ledger (and runs the archiver).
    assert deployed.history.to_history().bounded and not repository.history.to_history().bounded
    same = msgspec.structs.replace(
        deployed, participants=repository.participants, history=repository.history
    )
    assert same == repository
    served = {
        argv[1]
        for line in manifests.compose_commands(manifests.load_compose())
        + manifests.k8s_commands(k8s)
        for argv in [line.argv]
        if argv[:1] == ("serve",)
    }
    assert served == {"bank-a", "bank-b"}
    assert served <= set(deployed.participants)


def test_the_image_holds_every_package_the_distribution_ships():
    """The Dockerfile copies each top-level package pyproject.toml installs: the CLI imports
    them all when it starts (`benchmark` too: `submit --random`, `demo`, `bench`)."""
    root = manifests.ROOT
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {
        line.split()[1]
        for line in (root / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    }
    assert packages <= copied, f"the image lacks {sorted(packages - copied)}"
