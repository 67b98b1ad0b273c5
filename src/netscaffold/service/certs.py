"""A local certificate authority for the service: ``ca.pem`` signs ``server.pem`` (SAN: localhost,
127.0.0.1, ::1 and any extra names) and ``client.pem`` (for mutual TLS). EC P-256 keys, written 0600."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from netscaffold.errors import ConfigError

FILES = ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")
_DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "netscaffold local CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    *,
    common_name: str,
    usage: x509.ObjectIdentifier,
    names: Sequence[str],
    days: int,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(_name(common_name), ca_name, key, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(_san(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def init_certs(
    directory: Path, *, names: Sequence[str] = (), days: int = 825, force: bool = False
) -> list[Path]:
    """Write the CA, server and client certificates and keys into ``directory``; refuses to overwrite."""
    directory.mkdir(parents=True, exist_ok=True)
    existing = [f for f in FILES if (directory / f).exists()]
    if existing and not force:
        raise ConfigError(
            f"already holds {', '.join(existing)} (use --force to replace)", file=str(directory)
        )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("netscaffold CA")
    ca = (
        _builder(ca_name, ca_name, ca_key, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    server, server_key = _leaf(
        ca_key,
        ca_name,
        common_name="netscaffold server",
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        names=[*_DEFAULT_NAMES, *names],
        days=days,
    )
    client, client_key = _leaf(
        ca_key,
        ca_name,
        common_name="netscaffold client",
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        names=[],
        days=days,
    )
    for stem, cert, key in (
        ("ca", ca, ca_key),
        ("server", server, server_key),
        ("client", client, client_key),
    ):
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(directory / f"{stem}.key", key)
    return [directory / f for f in FILES]
