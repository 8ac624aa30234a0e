"""The cluster's certificate authority: one CA, a server certificate per etcd member and a
client certificate per etcd user.

etcd takes a client certificate's common name as the user name when client-certificate auth
is on, so a certificate *is* the identity that etcd's roles grant rights to. Keys are written
0600 in a 0700 directory: whoever can read a key is that user.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .registry.tlsfiles import CertFiles

__all__ = ["CertFiles", "ClusterCA"]

CA_DAYS = 3650
LEAF_DAYS = 825
CA_NAME = "ca"


class ClusterCA:
    """A CA kept in one directory: ca.crt, ca.key, and NAME.crt/NAME.key per issued certificate."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def ca_file(self) -> Path:
        return self.directory / f"{CA_NAME}.crt"

    def files(self, name: str) -> CertFiles:
        return CertFiles(self.ca_file, self.directory / f"{name}.crt", self.directory / f"{name}.key")

    def exists(self) -> bool:
        return self.ca_file.exists() and (self.directory / f"{CA_NAME}.key").exists()

    def create(self, common_name: str = "stackfleet cluster CA") -> None:
        """Make the CA once; an existing one is kept, so certificates issued before stay valid."""
        if self.exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        self._write(CA_NAME, key, cert)

    def issue(self, name: str, common_name: str, addresses: list[str] | None = None) -> CertFiles:
        """A certificate signed by the CA. With addresses it also serves (an etcd member, which
        is a client of its peers too); without, it is a client certificate only."""
        ca_key, ca_cert = self._load_ca()
        key = ec.generate_private_key(ec.SECP256R1())
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if addresses:
            usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if addresses:
            builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(addresses)), critical=False)
        self._write(name, key, builder.sign(ca_key, hashes.SHA256()))
        return self.files(name)

    def _load_ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = serialization.load_pem_private_key((self.directory / f"{CA_NAME}.key").read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self.directory}/{CA_NAME}.key: not the EC key this CA makes")
        return key, x509.load_pem_x509_certificate(self.ca_file.read_bytes())

    def _write(self, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        key_path = self.directory / f"{name}.key"
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(key_path, 0o600)  # an existing file keeps its old mode through O_CREAT
        (self.directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _alt_names(addresses: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for address in addresses:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    return names


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
