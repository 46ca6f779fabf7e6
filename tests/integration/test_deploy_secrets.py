"""The files `natsbank deploy keys` and `natsbank dev up --tls` write: kept across runs,
private where they must be, and accepted by a real nats-server."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography import x509

from eventsource.adapters import nats_binary
from eventsource.adapters.deploy_secrets import (
    AUTH_CONFIG,
    POSTGRES_ENV,
    SEED_MODE,
    write_deployment_secrets,
)
from eventsource.adapters.pki import CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, ensure_pki


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_deployment_secrets_are_kept_and_a_new_participant_gets_its_own(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    first = write_deployment_secrets(out, ["bank-a"], 1)
    seed = (out / "service.bank-a.nk").read_bytes()
    password = (out / POSTGRES_ENV).read_text()
    again = write_deployment_secrets(out, ["bank-a", "bank-c"], 1)
    assert (out / "service.bank-a.nk").read_bytes() == seed
    assert (out / POSTGRES_ENV).read_text() == password
    assert "client.bank-c" in again.identities and "client.bank-c" not in first.identities
    assert '"BANK_bank-c"' in (out / AUTH_CONFIG).read_text()
    assert mode(out) == 0o700  # the directory keeps the seeds private on the host
    assert mode(out / "admin.nk") == SEED_MODE  # readable by the containers' own user
    assert mode(out / AUTH_CONFIG) == mode(out / POSTGRES_ENV) == 0o600
    assert password.startswith("POSTGRES_PASSWORD=") and "NATSBANK_PG_DSN=postgresql://" in password


def test_the_pki_signs_a_server_certificate_for_its_hosts(tmp_path: Path) -> None:
    files = ensure_pki(tmp_path / "tls", ["127.0.0.1", "nats-0.nats"])
    ca = x509.load_pem_x509_certificate((tmp_path / "tls" / CA_CERT).read_bytes())
    server = x509.load_pem_x509_certificate(Path(files.cert_file).read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["nats-0.nats"]
    assert mode(tmp_path / "tls" / CA_KEY) == mode(tmp_path / "tls" / SERVER_KEY) == 0o600
    before = (tmp_path / "tls" / SERVER_CERT).read_bytes()
    ensure_pki(tmp_path / "tls")
    assert (tmp_path / "tls" / SERVER_CERT).read_bytes() == before  # kept


def test_nats_server_accepts_the_tls_and_authorization_it_is_given(tmp_path: Path) -> None:
    out = write_deployment_secrets(tmp_path / "secrets", ["bank-a", "bank-b"], 2)
    config = nats_binary.render_node_config(
        server_name="n1",
        client_port=4222,
        monitor_port=8222,
        store_dir=str(tmp_path / "js"),
        cluster_name="natsbank",
        cluster_port=6222,
        routes=["nats-route://127.0.0.1:6222"],
        authorization=out.auth_config.read_text(),
        tls=ensure_pki(tmp_path / "tls"),
    )
    path = tmp_path / "nats.conf"
    path.write_text(config)
    checked = subprocess.run(
        [str(nats_binary.find_nats_server()), "-t", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr + checked.stdout
