"""A throwaway single-member etcd on loopback, for tests and benchmarks.

It is a child process of the caller, which waits on it when stopping (PID 1 here
does not reap orphans).
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from ..pki import CertFiles


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ETCD_TUNING: tuple[str, ...] = (
    "--pre-vote=true",  # a member that was cut off does not disrupt the cluster when it returns
    "--heartbeat-interval=20",
    "--election-timeout=200",  # measured: a new leader serves writes within 0.5 s
    "--max-txn-ops=1024",
)


def client_tls_flags(server: CertFiles) -> list[str]:
    """etcd serves clients over TLS only, and only to clients with a certificate of the CA."""
    return [f"--cert-file={server.cert_file}", f"--key-file={server.key_file}",
            f"--trusted-ca-file={server.ca_file}", "--client-cert-auth"]


def peer_tls_flags(server: CertFiles) -> list[str]:
    return [f"--peer-cert-file={server.cert_file}", f"--peer-key-file={server.key_file}",
            f"--peer-trusted-ca-file={server.ca_file}", "--peer-client-cert-auth"]


class LocalEtcd:
    """One member; several with the same `peers` form a cluster."""

    def __init__(self, data_dir: Path | None = None, name: str = "local", peers: dict[str, int] | None = None,
                 tls: CertFiles | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="stackfleet-etcd-"))
        self.name = name
        self.client_port = free_port()
        self.peer_port = peers[name] if peers else free_port()
        self.peers = peers or {name: self.peer_port}
        self.tls = tls
        self.endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{self.client_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> LocalEtcd:
        peer = f"http://127.0.0.1:{self.peer_port}"
        cluster = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in sorted(self.peers.items()))
        existing = (self.data_dir / "data").exists()
        log = open(self.data_dir / "etcd.log", "ab")
        self.proc = subprocess.Popen(
            [
                "etcd", "--name", self.name, "--data-dir", str(self.data_dir / "data"),
                "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", cluster, "--initial-cluster-state", "existing" if existing else "new",
                "--quota-backend-bytes=4294967296", *ETCD_TUNING,
                *(client_tls_flags(self.tls) if self.tls else ()),
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}; see {self.data_dir / 'etcd.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.client_port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("etcd did not start listening in time")

    def kill(self) -> None:
        """SIGKILL, keeping the data dir: the member can start again and rejoin."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalEtcd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalEtcdCluster:
    """Several members on loopback, for failover tests."""

    def __init__(self, size: int = 3) -> None:
        names = [f"m{i}" for i in range(size)]
        peers = {n: free_port() for n in names}
        self.members = [LocalEtcd(name=n, peers=peers) for n in names]

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def __enter__(self) -> LocalEtcdCluster:
        procs = []
        for m in self.members:  # members wait for each other, so launch all before waiting
            threading_start = threading.Thread(target=m.start)
            threading_start.start()
            procs.append(threading_start)
        for t in procs:
            t.join()
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.members:
            m.stop()
