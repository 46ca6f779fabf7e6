"""The authorization model in compose.yaml and k8s/: every natsbank process connects with a
credential of the identity its command needs and holds no other seed; a bank signs with its own
service seed, funding with the operator's seed (held only where funding happens), and
streams-init registers the public keys of that same deployment; each seed's public key is a
user of the right account in the rendered nats-server authorization (the operator's signing
seed is none); nothing secret is in the repository, and nothing is published on all of the
host's interfaces."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import nkeys
import pytest

from eventsource.adapters.deploy_secrets import AUTH_CONFIG
from eventsource.adapters.signing_key_file import SIGNING_KEYS_FILE, read_signing_keys
from eventsource.adapters.signing_keys import OPERATOR, OPERATOR_KEY_ENV, SIGNING_KEY_ENV
from eventsource.core.permissions import Identity, Role
from tests.deploy import manifests
from tests.deploy.cli_parse import parse
from tests.deploy.manifests import SECRET_MOUNT, CommandLine

# The identity each deployed command needs (the CLI's own choice: eventsource/cli/*.py).
NEEDED = {
    ("streams", "init"): "admin",
    ("projections", "run"): "projector",
    ("archive", "run"): "archiver",
    ("accounts", "open"): "funding",
    ("accounts", "list"): "audit",
}
SIGNING_KEYS_ENV = "NATSBANK_SIGNING_KEYS"


def signs_as_operator(line: CommandLine) -> bool:
    """Funding and dead-letter retries are signed with the operator's key."""
    path = parse(line.argv)
    funds = path == ("accounts", "open") and "--fund" in line.argv
    return funds or path in {("accounts", "fund"), ("dead-letters", "retry")}


def needed(line: CommandLine) -> str | None:
    """The identity `line` must run as; None: any (a probe runs as its container's)."""
    path = parse(line.argv)
    if path == ("serve",):
        return f"service.{line.argv[line.argv.index('serve') + 1]}"
    if path == ("submit",):  # the debtor's bank's client: the script names it
        return given(line.argv, "--identity")
    return NEEDED.get(path)


def given(argv: tuple[str, ...], option: str) -> str | None:
    return argv[argv.index(option) + 1] if option in argv else None


def seed_name(path: str) -> str:
    """`/run/secrets/natsbank/service.bank-a.nk` or `$NKEY_DIR/audit.nk` -> `service.bank-a`."""
    return Path(path).name.removesuffix(".nk")


def check_process(where: str, env: dict[str, str], seeds: set[str], lines: list[CommandLine]):
    """One container: its own command lines (with env's credential) or a script's (each with
    its own `--identity` and `--nkey`), against the seeds mounted in it and the signing keys
    its commands need."""
    used = set()
    for line in lines:
        identity = given(line.argv, "--identity") or env.get("NATSBANK_IDENTITY")
        nkey = given(line.argv, "--nkey") or env.get("NATSBANK_NKEY", "")
        assert identity is not None, f"{where}: {line.argv} names no identity"
        Identity.parse(identity)  # a real identity
        assert needed(line) in (None, identity), f"{where}: {line.argv} runs as {identity}"
        assert seed_name(nkey) == identity, f"{where}: {identity} with the seed {nkey}"
        if not given(line.argv, "--nkey"):
            assert nkey == f"{SECRET_MOUNT}/{identity}.nk", f"{where}: NATSBANK_NKEY {nkey}"
        used.add(identity)
        used |= check_signing(where, env, line, nkey)
    commands = {parse(line.argv) for line in lines}
    assert OPERATOR_KEY_ENV not in env or OPERATOR in used, (
        f"{where}: {OPERATOR_KEY_ENV} but no funding"
    )
    assert SIGNING_KEY_ENV not in env or ("serve",) in commands, (
        f"{where}: {SIGNING_KEY_ENV} but no serve"
    )
    assert seeds == used, f"{where}: holds the seeds {sorted(seeds)}, uses {sorted(used)}"


def check_signing(where: str, env: dict[str, str], line: CommandLine, nkey: str) -> set[str]:
    """A bank signs with its service seed, funding with the operator's, streams init registers
    a keys file; the seeds this line signs with besides its credential."""
    path = parse(line.argv)
    if path == ("serve",):
        signing = given(line.argv, "--signing-key") or env.get(SIGNING_KEY_ENV)
        assert signing == nkey, f"{where}: serves as {nkey} but signs with {signing}"
    if path == ("streams", "init"):
        keys = given(line.argv, "--signing-keys") or env.get(SIGNING_KEYS_ENV, "")
        assert Path(keys).name == SIGNING_KEYS_FILE, f"{where}: registers keys from {keys!r}"
    if signs_as_operator(line):
        key = env.get(OPERATOR_KEY_ENV)
        assert key == f"{SECRET_MOUNT}/{OPERATOR}.nk", f"{where}: {line.argv} signs with {key}"
        return {OPERATOR}
    return set()


def compose_processes(deployment: Path):
    compose = manifests.load_compose()
    files = {name: secret["file"] for name, secret in compose["secrets"].items()}
    lines = manifests.compose_commands(compose)
    for name, service in compose["services"].items():
        if not manifests.is_natsbank_image(service.get("image")):
            continue
        seeds = set()
        for secret in service.get("secrets", []):
            assert secret["target"] == f"{SECRET_MOUNT}/{secret['source']}.nk", secret
            assert files[secret["source"]] == f"./{manifests.SECRETS}/{secret['source']}.nk"
            seeds.add(secret["source"])
        where = f"compose.yaml service {name}"
        own = [line for line in lines if line.where.startswith(where + " ") or line.where == where]
        yield where, manifests.service_environment(service, deployment), seeds, own


def k8s_processes(k8s: list[dict], deployment: Path):
    secrets = {d["metadata"]["name"]: d["data"] for d in k8s if d["kind"] == "Secret"}
    lines = manifests.k8s_commands(k8s)
    for where, spec in manifests.pod_specs(k8s):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            if not manifests.is_natsbank_image(container.get("image")):
                continue
            at = f"{where} container {container['name']}"
            seeds = set()
            for mount in container.get("volumeMounts", []):
                if mount["mountPath"] != SECRET_MOUNT:
                    continue
                volume = volumes[mount["name"]]
                names = [volume["secret"]["secretName"]] if "secret" in volume else []
                names += [
                    s["secret"]["name"] for s in volume.get("projected", {}).get("sources", [])
                ]
                for name in names:
                    for key, value in secrets[name].items():
                        seed = (deployment / manifests.SECRETS / key).read_bytes()
                        assert base64.b64decode(value) == seed, f"{at}: {key} is not its seed"
                        seeds.add(seed_name(key))
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            own = [line for line in lines if line.where.startswith(at + " ") or line.where == at]
            yield at, env, seeds, own


def test_every_compose_process_holds_the_credential_of_its_identity(deployment: Path) -> None:
    processes = list(compose_processes(deployment))
    assert len(processes) >= 7
    holders, signers = set(), set()
    for where, env, seeds, lines in processes:
        check_process(where, env, seeds, lines)
        holders |= {where} if "admin" in seeds else set()
        signers |= {where} if OPERATOR in seeds else set()
    assert holders == {"compose.yaml service streams-init"}
    assert signers == {"compose.yaml service accounts"}


def test_every_k8s_process_holds_the_credential_of_its_identity(
    k8s: list[dict], deployment: Path
) -> None:
    processes = list(k8s_processes(k8s, deployment))
    assert len(processes) >= 8
    holders, signers = set(), set()
    for where, env, seeds, lines in processes:
        check_process(where, env, seeds, lines)
        holders |= {where} if "admin" in seeds else set()
        signers |= {where} if OPERATOR in seeds else set()
    assert holders == {"k8s Job streams-init container streams-init"}
    assert signers == {"k8s Job open-accounts container open-accounts"}


def test_a_process_given_another_identity_s_seed_is_reported(deployment: Path) -> None:
    where, env, seeds, lines = next(
        p for p in compose_processes(deployment) if p[0].endswith("service bank-a")
    )
    wrong = env | {"NATSBANK_NKEY": f"{SECRET_MOUNT}/service.bank-b.nk"}
    with pytest.raises(AssertionError, match=r"service\.bank-b"):
        check_process(where, wrong, seeds, lines)
    with pytest.raises(AssertionError, match="holds the seeds"):
        check_process(where, env, seeds | {"audit"}, lines)
    with pytest.raises(AssertionError, match="signs with"):
        check_process(where, env | {SIGNING_KEY_ENV: wrong["NATSBANK_NKEY"]}, seeds, lines)
    with pytest.raises(AssertionError, match=f"{OPERATOR_KEY_ENV} but no"):
        check_process(where, env | {OPERATOR_KEY_ENV: f"{SECRET_MOUNT}/operator.nk"}, seeds, lines)


def test_funding_without_the_operator_s_key_is_reported(deployment: Path) -> None:
    where, env, seeds, lines = next(
        p for p in compose_processes(deployment) if p[0].endswith("service accounts")
    )
    check_process(where, env, seeds, lines)
    with pytest.raises(AssertionError, match="signs with None"):
        check_process(where, {k: v for k, v in env.items() if k != OPERATOR_KEY_ENV}, seeds, lines)
    with pytest.raises(AssertionError, match="holds the seeds"):
        check_process(where, env, seeds - {OPERATOR}, lines)


def test_streams_init_registers_the_signing_keys_of_the_same_deployment(
    deployment: Path, k8s: list[dict]
) -> None:
    """The public keys file is mounted where NATSBANK_SIGNING_KEYS says, with the content
    `natsbank deploy keys` wrote: each bank's service key and the operator's."""
    written = (deployment / manifests.SECRETS / SIGNING_KEYS_FILE).read_text()
    keys = read_signing_keys(deployment / manifests.SECRETS / SIGNING_KEYS_FILE)
    for bank in ("bank-a", "bank-b"):
        seed = (deployment / manifests.SECRETS / f"service.{bank}.nk").read_bytes()
        assert keys.of(bank) == nkeys.from_seed(bytearray(seed)).public_key.decode()
    operator = (deployment / manifests.SECRETS / f"{OPERATOR}.nk").read_bytes()
    assert keys.operator == nkeys.from_seed(bytearray(operator)).public_key.decode()
    compose = manifests.load_compose()
    service = compose["services"]["streams-init"]
    mounted = {c["target"]: compose["configs"][c["source"]]["file"] for c in service["configs"]}
    target = service["environment"][SIGNING_KEYS_ENV]
    assert mounted == {target: f"./{manifests.SECRETS}/{SIGNING_KEYS_FILE}"}
    job = next(spec for where, spec in manifests.pod_specs(k8s) if where.endswith("streams-init"))
    container = job["containers"][0]
    target = next(e["value"] for e in container["env"] if e["name"] == SIGNING_KEYS_ENV)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(Path(target).parent))
    volume = next(v for v in job["volumes"] if v["name"] == mount["name"])
    config_map = next(
        d
        for d in k8s
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"]
    )
    assert config_map["data"][Path(target).name] == written


def rendered_accounts(deployment: Path) -> dict:
    text = (deployment / manifests.SECRETS / AUTH_CONFIG).read_text()
    return json.loads(text.removeprefix("accounts:").rsplit("system_account", 1)[0])


def test_each_seed_is_a_user_of_its_identity_s_account(deployment: Path) -> None:
    accounts = rendered_accounts(deployment)
    account_of = {
        user["nkey"]: account for account, a in accounts.items() for user in a.get("users", [])
    }
    seeds = sorted((deployment / manifests.SECRETS).glob("*.nk"))
    identities = [Identity.parse(seed.stem) for seed in seeds if seed.stem not in ("sys", OPERATOR)]
    assert {i.role for i in identities} == set(Role)
    for identity in identities:
        seed = (deployment / manifests.SECRETS / f"{identity.name}.nk").read_bytes()
        public = nkeys.from_seed(bytearray(seed)).public_key.decode()
        assert account_of[public] == identity.account, identity.name
    operator = (deployment / manifests.SECRETS / f"{OPERATOR}.nk").read_bytes()
    assert nkeys.from_seed(bytearray(operator)).public_key.decode() not in account_of  # signs only


def test_no_password_and_no_secret_in_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "compose.yaml", "k8s"],
        cwd=manifests.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "compose.yaml" in tracked and not [p for p in tracked if "secrets/" in p]
    assert not [p for p in tracked if p.endswith((".nk", ".creds", ".key", ".env"))]
    for path in tracked:
        text = (manifests.ROOT / path).read_text()
        assert "PASSWORD=" not in text and "PASSWORD:" not in text, path
        assert "change-me" not in text and "natsbank:natsbank@" not in text, path
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"{manifests.SECRETS}/admin.nk"], cwd=manifests.ROOT
    )
    assert ignored.returncode == 0, "k8s/secrets/ is not gitignored"


def test_compose_publishes_ports_on_the_host_s_loopback_only() -> None:
    for name, service in manifests.load_compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"
