"""A private certificate authority for TLS between natsbank's servers and clients, made with
`cryptography`: a CA, a server certificate (for the client port and the routes) and a client
certificate (mutual TLS). For `natsbank dev up --tls` and for trying TLS out; a production
deployment takes its certificates from its own PKI (README, "TLS")."""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TLS_DIR = "tls"
CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
CLIENT_CERT, CLIENT_KEY = "client.pem", "client.key"
CERT_DAYS = 365
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class ServerTls:
    """The files a nats-server's `tls {}` blocks name."""

    cert_file: str
    key_file: str
    ca_file: str


def ensure_pki(directory: Path, hosts: Sequence[str] = LOOPBACK_HOSTS) -> ServerTls:
    """A CA and certificates in `directory` (0700, keys 0600), kept if they all exist; the
    server certificate is valid for `hosts` (IP addresses or DNS names)."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    files = [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY]
    if not all((directory / name).is_file() for name in files):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "natsbank CA")])
        ca = _certificate(ca_name, ca_key, ca_name, ca_key.public_key(), ca=True)
        _write(directory, CA_CERT, CA_KEY, ca, ca_key)
        for cert_name, key_name, usage, names in (
            (SERVER_CERT, SERVER_KEY, ExtendedKeyUsageOID.SERVER_AUTH, hosts),
            (CLIENT_CERT, CLIENT_KEY, ExtendedKeyUsageOID.CLIENT_AUTH, ()),
        ):
            key = ec.generate_private_key(ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"natsbank {cert_name}")])
            # Routes are mutual TLS: a server's certificate also serves as a client's.
            usages = [usage, ExtendedKeyUsageOID.CLIENT_AUTH] if names else [usage]
            cert = _certificate(subject, ca_key, ca_name, key.public_key(), usages, names)
            _write(directory, cert_name, key_name, cert, key)
    return ServerTls(
        str(directory / SERVER_CERT), str(directory / SERVER_KEY), str(directory / CA_CERT)
    )


def _certificate(
    subject: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    usages: Sequence[x509.ObjectIdentifier] = (),
    hosts: Sequence[str] = (),
    *,
    ca: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        key_usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(key_usage, critical=True)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _write(
    directory: Path,
    cert_name: str,
    key_name: str,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    (directory / cert_name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = directory / key_name
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
