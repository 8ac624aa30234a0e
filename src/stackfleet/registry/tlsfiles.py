"""Which certificate files a TLS client uses: standard library only.

The CLI resolves these before it knows whether a command needs gRPC at all; turning them into
gRPC credentials is tls.py's job, into an ssl context the JSON gateway's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class TLSConfigError(ValueError):
    """The certificate files cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class TLSFiles:
    """fleetctl's --ca-file, --cert-file and --key-file (etcdctl v3: --cacert, --cert, --key)."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    def check_pair(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise TLSConfigError("--cert-file and --key-file go together: give both or neither")

    def read(self) -> tuple[bytes, bytes | None, bytes | None]:
        """The CA, certificate and key, as bytes; a file that cannot be read is named."""
        self.check_pair()
        ca = read_file(self.ca_file, "--ca-file")
        cert = read_file(self.cert_file, "--cert-file") if self.cert_file else None
        key = read_file(self.key_file, "--key-file") if self.key_file else None
        return ca, cert, key


@dataclass(frozen=True)
class CertFiles:
    """A certificate with its key and the CA that signed it, all three present (what pki.py issues)."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def tls(self) -> TLSFiles:
        return TLSFiles(self.ca_file, self.cert_file, self.key_file)


def read_file(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise TLSConfigError(f"{path}: cannot read the file given by {flag}: {err.strerror}") from None
