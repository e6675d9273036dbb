"""Certificates the tests make: a CA, a server certificate it signs for 127.0.0.1 (an https
server, Dovecot), and a self-signed RSA certificate like SNS's signing certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass
class Issued:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        cert.write_bytes(self.cert_pem())
        key.write_bytes(self.key_pem())
        return cert, key


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _builder(
    subject: str, issuer: x509.Name, key: rsa.RSAPrivateKey, days: float = 2, ago: float = 0
) -> x509.CertificateBuilder:
    """Valid from an hour (plus ``ago`` days) back to ``days`` from now."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=ago, hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_ca() -> Issued:
    key = new_key()
    cert = (
        _builder("Herald Test CA", _name("Herald Test CA"), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def server_cert(ca: Issued, host: str = "127.0.0.1") -> Issued:
    key = new_key()
    cert = (
        _builder(host, ca.cert.subject, key)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key, cert)


def signing_cert(days: float = 2, expired: bool = False) -> Issued:
    """Like SNS's SigningCert: an RSA key whose certificate is fetched to check signatures."""
    key = new_key()
    days, ago = (-1, 3) if expired else (days, 0)
    builder = _builder("sns.us-east-1.amazonaws.com", _name("Herald Test SNS"), key, days, ago)
    return Issued(key, builder.sign(key, hashes.SHA256()))


def trust(ca: Issued, directory: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Have Herald trust ``ca`` the way an operator would: SSL_CERT_FILE names it."""
    path = directory / "ca.pem"
    path.write_bytes(ca.cert_pem())
    monkeypatch.setenv("SSL_CERT_FILE", str(path))
    return path
