"""Deployment credentials: one small CA per deployment and one certificate per identity (mutual TLS).

Used by the control channel (docs/controlplane-protocol.md, "Authentication") and by P4Runtime.
`issue` makes a fresh CA (ECDSA P-256), signs one certificate per `Identity` and forgets the CA's
private key: nobody can issue another certificate for that deployment, and rotating means issuing a
new set (`fab deploy` does it at every deploy). An identity's certificate names it in the subject's
common name and its role (operator, frontend, slowpath, monitor, controlplane, switch) in the
organizational unit; servers' certificates carry their addresses as subject alternative names and
may also act as clients (the control plane is a P4Runtime client), clients' certificates may only be
clients (extended key usage).

On a host an identity is a directory (mode 0700) holding `ca.crt`, `identity.crt` and
`identity.key` (each 0600); daemons take its path (`--credentials DIR`). `Credentials.load` refuses
a key readable by group or others.

`TLSStream` wraps a connected `ssl.SSLSocket` for a reader thread and writer threads at once: every
SSL call is made under one lock, the waits for the socket outside it (concurrent SSL_read and
SSL_write on one SSL object are not safe, python/cpython#151508).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import select
import ssl
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CA_FILE, CERT_FILE, KEY_FILE = "ca.crt", "identity.crt", "identity.key"
ROLES = ("operator", "frontend", "slowpath", "monitor", "controlplane", "switch")
SERVER_ROLES = ("controlplane", "switch")
VALID_DAYS = 365
HANDSHAKE_TIMEOUT_S = 10.0


class CredentialError(ValueError):
    """Missing, unreadable or too widely readable credentials."""


@dataclass(frozen=True)
class Identity:
    name: str                              # the subject's common name, e.g. frontend-fe1
    role: str                              # one of ROLES (the subject's organizational unit)
    addresses: tuple[str, ...] = ()        # servers: IP addresses or DNS names clients connect to

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise CredentialError(f"identity {self.name}: unknown role {self.role!r} (known: {', '.join(ROLES)})")


def issue(identities: list[Identity], days: int = VALID_DAYS) -> dict[str, dict[str, bytes]]:
    """A fresh CA and one certificate per identity: name -> {file name: PEM bytes}. The CA's key
    is not returned (nor kept)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"miresga deployment CA {now:%Y%m%dT%H%M%S}")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    out: dict[str, dict[str, bytes]] = {}
    for ident in identities:
        if ident.name in out:
            raise CredentialError(f"identity {ident.name} given twice")
        key = ec.generate_private_key(ec.SECP256R1())
        usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if ident.role in SERVER_ROLES:
            usage.append(ExtendedKeyUsageOID.SERVER_AUTH)
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ident.name),
                                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ident.role)]))
             .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(start).not_valid_after(end)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage(usage), critical=False))
        if ident.addresses:
            names: list[x509.GeneralName] = []
            for a in ident.addresses:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(a)))
                except ValueError:
                    names.append(x509.DNSName(a))
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        out[ident.name] = {
            CA_FILE: ca_pem,
            CERT_FILE: cert.public_bytes(serialization.Encoding.PEM),
            KEY_FILE: key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
        }
    return out


def write(directory: Path, files: dict[str, bytes]) -> Path:
    """Writes one identity's files into `directory` (0700; files 0600, created with that mode)."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for name, data in files.items():
        path = directory / name
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return directory


@dataclass(frozen=True)
class Credentials:
    """One identity's files on this host (`load` checks them)."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / CA_FILE

    @property
    def cert(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def key(self) -> Path:
        return self.directory / KEY_FILE

    @classmethod
    def load(cls, directory: Path | str) -> Credentials:
        c = cls(Path(directory))
        for p in (c.ca, c.cert, c.key):
            if not p.is_file():
                raise CredentialError(f"credentials {c.directory}: {p.name} is missing")
        mode = stat.S_IMODE(c.key.stat().st_mode)
        if mode & 0o077:
            raise CredentialError(f"credentials {c.directory}: {KEY_FILE} has mode {mode:04o}; it must be 0600 "
                                  "(readable by its owner only)")
        try:
            c.server_context()
        except (ssl.SSLError, OSError) as e:
            raise CredentialError(f"credentials {c.directory}: {e}") from None
        return c

    # -- Python ssl (the control channel) --------------------------------------------------------

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(self.cert, self.key)
        ctx.load_verify_locations(cafile=str(self.ca))
        ctx.verify_mode = ssl.CERT_REQUIRED          # no certificate of this deployment's CA: no session
        ctx.num_tickets = 0                          # no session tickets: nothing written after the handshake
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)   # check_hostname, CERT_REQUIRED
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(self.cert, self.key)
        ctx.load_verify_locations(cafile=str(self.ca))
        return ctx

    # -- gRPC (P4Runtime) ----------------------------------------------------------------------

    def grpc_server_credentials(self) -> Any:
        import grpc
        return grpc.ssl_server_credentials([(self.key.read_bytes(), self.cert.read_bytes())],
                                           root_certificates=self.ca.read_bytes(), require_client_auth=True)

    def grpc_channel_credentials(self) -> Any:
        import grpc
        return grpc.ssl_channel_credentials(root_certificates=self.ca.read_bytes(),
                                            private_key=self.key.read_bytes(),
                                            certificate_chain=self.cert.read_bytes())

    def p4runtime_sh_options(self) -> Any:
        """p4runtime-shell's SSLOptions (its P4RuntimeClient opens a secure channel with them)."""
        from p4runtime_sh.p4runtime import SSLOptions
        return SSLOptions(False, str(self.ca), str(self.cert), str(self.key))


def peer_identity(sock: ssl.SSLSocket) -> tuple[str, str]:
    """(name, role) from the verified peer certificate's subject (common name, organizational unit)."""
    cert = sock.getpeercert() or {}
    fields = {k: v for rdn in cert.get("subject", ()) for k, v in rdn}
    return str(fields.get("commonName", "")), str(fields.get("organizationalUnitName", ""))


class TLSStream:
    """A connected SSLSocket shared by one reader thread and writer threads (see the module doc).
    `recv`, `sendall`, `settimeout`, `shutdown`, `close` like a socket's; `timeout` None blocks."""

    def __init__(self, sock: ssl.SSLSocket, timeout: float | None = None) -> None:
        self.sock = sock
        self.timeout = timeout
        self._lock = threading.Lock()
        sock.setblocking(False)

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def _wait(self, want_write: bool, deadline: float | None) -> None:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError("timed out")
        fd = self.sock.fileno()
        if fd < 0:                                   # closed by another thread meanwhile
            raise OSError("TLS connection closed")
        r, w, _ = select.select([] if want_write else [fd], [fd] if want_write else [], [], left)
        if not r and not w:
            raise TimeoutError("timed out")

    def recv(self, n: int) -> bytes:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            with self._lock:
                try:
                    return self.sock.recv(n)
                except ssl.SSLWantReadError:
                    want_write = False
                except ssl.SSLWantWriteError:
                    want_write = True
            self._wait(want_write, deadline)

    def sendall(self, data: bytes) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        view = memoryview(data)
        while view:
            with self._lock:
                try:
                    view = view[self.sock.send(view):]
                    continue
                except ssl.SSLWantWriteError:
                    want_write = True
                except ssl.SSLWantReadError:
                    want_write = False
            self._wait(want_write, deadline)

    def getpeercert(self) -> Any:
        return self.sock.getpeercert()

    def shutdown(self, how: int) -> None:
        with self._lock:
            self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()


def client_stream(address: tuple[str, int], credentials: Credentials, timeout: float | None) -> TLSStream:
    """A TLS connection to a server of this deployment (its certificate must name `address[0]`)."""
    import socket
    raw = socket.create_connection(address, timeout=timeout if timeout is not None else HANDSHAKE_TIMEOUT_S)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        tls = credentials.client_context().wrap_socket(raw, server_hostname=address[0])
    except BaseException:
        raw.close()
        raise
    return TLSStream(tls, timeout)


def deploy_set(directory: Path, identities: list[Identity]) -> dict[str, Credentials]:
    """Issues `identities` (one CA) and writes each into directory/<name>: name -> Credentials."""
    return {name: Credentials.load(write(Path(directory) / name, files)) for name, files in issue(identities).items()}


def local_test_set(directory: Path) -> dict[str, Credentials]:
    """The identities of a deployment whose servers listen on 127.0.0.1 (tests): controlplane, p4rt
    (role switch), frontend, slowpath, operator, monitor."""
    return deploy_set(directory, [
        Identity("controlplane", "controlplane", ("127.0.0.1",)), Identity("p4rt", "switch", ("127.0.0.1",)),
        Identity("frontend", "frontend"), Identity("slowpath", "slowpath"), Identity("operator", "operator"),
        Identity("monitor", "monitor")])
