"""TLS through DATABASE_URL, the CLI and libpq's PG* variables, against a TLS-only PostgreSQL 15.

One private server for the module (tests/operations/tls_server.py): certificates made here with
`cryptography`, pg_hba admitting TCP only over TLS. Every refusal is a typed error saying what was
wrong, and no message quotes the password.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from coherence_sql import schema
from coherence_sql.cli import main
from coherence_sql.db import connect
from coherence_sql.embedded import scratch_parent
from coherence_sql.errors import DatabaseUnavailableError, TLSError
from coherence_sql.models import Contributor, ContributorType
from coherence_sql.stores import postgres
from coherence_sql.testing.server import PgServer
from tests.operations.tls_server import CERT_USER, KEY_PASSWORD, OTHER_HOST, Pg15Server, Pki, pg15_available

pytestmark = pytest.mark.skipif(not pg15_available(), reason="PostgreSQL 15 binaries not in /usr/lib/postgresql/15/bin")

APP = "tls_app"
PASSWORD = "tls-Secret-pw-9"
DATABASE = "tls_db"


@dataclass(frozen=True)
class TLSCluster:
    server: Pg15Server
    pki: Pki

    def app_dsn(self, **params: str | Path) -> str:
        return self.server.tcp_dsn(APP, DATABASE, password=PASSWORD, **params)

    def verified_dsn(self) -> str:
        return self.app_dsn(sslmode="verify-full", sslrootcert=self.pki.ca)


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[TLSCluster]:
    parent = Path(tempfile.mkdtemp(prefix="coherence-sql-tls-", dir=scratch_parent()))
    pki = Pki.create(parent / "pki")
    server = Pg15Server(parent / "pg", pki=pki)
    try:
        server.start()
        admin = await asyncpg.connect(server.admin_dsn())
        try:
            # Literals: CREATE ROLE takes no parameters; the password is this test's own.
            await admin.execute(f"CREATE ROLE {APP} LOGIN PASSWORD '{PASSWORD}'")
            await admin.execute(f"CREATE ROLE {CERT_USER} LOGIN")
            await admin.execute(f"CREATE DATABASE {DATABASE} OWNER {APP}")
        finally:
            await admin.close()
        yield TLSCluster(server, pki)
    finally:
        server.destroy()
        shutil.rmtree(parent, ignore_errors=True)


async def _encrypted(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))


async def test_verify_full_with_the_right_ca_migrates_and_serves_the_stores(cluster: TLSCluster) -> None:
    dsn = cluster.verified_dsn()
    await schema.migrate(dsn)
    async with postgres.connect(dsn) as stores:
        made = await stores.graph.create_contributor(
            Contributor(type=ContributorType.HUMAN, name="Ada", email="ada@example.org")
        )
        assert await stores.graph.get_contributor(made.id) == made
        async with stores.pool.acquire() as conn:
            assert await _encrypted(conn)  # type: ignore[arg-type]
    assert (await schema.status(dsn)).current


async def test_a_wrong_ca_is_refused_as_certificate_verify_failed(cluster: TLSCluster) -> None:
    with pytest.raises(
        TLSError, match="TLS certificate verify failed: the server's certificate is not signed by the CA"
    ) as caught:
        await connect(cluster.app_dsn(sslmode="verify-full", sslrootcert=cluster.pki.wrong_ca))
    assert PASSWORD not in str(caught.value)
    assert "tls_app:***@localhost" in str(caught.value)


async def test_a_host_the_certificate_does_not_name_is_refused_as_hostname_mismatch(cluster: TLSCluster) -> None:
    dsn = cluster.app_dsn(host=OTHER_HOST, sslmode="verify-full", sslrootcert=cluster.pki.ca)
    with pytest.raises(TLSError, match="TLS hostname mismatch") as caught:
        await connect(dsn)
    assert "127.0.0.2" in str(caught.value)
    assert PASSWORD not in str(caught.value)


async def test_verify_ca_accepts_that_host_since_it_checks_only_the_ca(cluster: TLSCluster) -> None:
    conn = await connect(cluster.app_dsn(host=OTHER_HOST, sslmode="verify-ca", sslrootcert=cluster.pki.ca))
    try:
        assert await _encrypted(conn)
    finally:
        await conn.close()


async def test_sslmode_disable_is_refused_by_the_tls_only_server(cluster: TLSCluster) -> None:
    with pytest.raises(TLSError, match="refused a connection without TLS") as caught:
        await connect(cluster.app_dsn(sslmode="disable"))
    assert "no encryption" in str(caught.value)  # the server's own reason, quoted
    assert PASSWORD not in str(caught.value)


async def test_sslmode_disable_with_a_role_that_may_not_log_in_is_not_blamed_on_tls(pg_server: PgServer) -> None:
    # The same SQLSTATE (28000) as pg_hba.conf's refusal, on a server that never asked for TLS.
    role = f"cs_nologin_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_server.admin_dsn)
    try:
        await admin.execute(f"CREATE ROLE {role} NOLOGIN")
        parts = urlsplit(pg_server.admin_dsn)
        query = "&".join(filter(None, [parts.query, "sslmode=disable"]))
        dsn = urlunsplit((parts.scheme, f"{role}@{parts.netloc.rpartition('@')[2]}", parts.path, query, ""))
        with pytest.raises(DatabaseUnavailableError) as caught:
            await connect(dsn)
        assert not isinstance(caught.value, TLSError), caught.value
        assert "is not permitted to log in" in str(caught.value)
    finally:
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


@pytest.mark.parametrize("mode", ["allow", "prefer", "require"])
async def test_the_modes_that_allow_tls_reach_the_tls_only_server_encrypted(cluster: TLSCluster, mode: str) -> None:
    # libpq's semantics: allow tries without TLS, then with; prefer the other way round; both
    # reach a server that refuses plain TCP, and the session is encrypted.
    conn = await connect(cluster.app_dsn(sslmode=mode))
    try:
        assert await _encrypted(conn)
    finally:
        await conn.close()


async def test_a_pool_refuses_a_wrong_ca_with_the_same_typed_error(cluster: TLSCluster) -> None:
    with pytest.raises(TLSError, match="certificate verify failed"):
        async with postgres.connect(cluster.app_dsn(sslmode="verify-full", sslrootcert=cluster.pki.wrong_ca)):
            pass


async def test_a_client_certificate_logs_in_by_cert_auth(cluster: TLSCluster) -> None:
    pki = cluster.pki
    dsn = cluster.server.tcp_dsn(
        CERT_USER, DATABASE, sslmode="verify-full", sslrootcert=pki.ca, sslcert=pki.client_cert, sslkey=pki.client_key
    )
    conn = await connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_user") == CERT_USER
        assert (
            await conn.fetchval("SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == f"/CN={CERT_USER}"
        )
    finally:
        await conn.close()


async def test_cert_auth_without_the_client_certificate_is_refused(cluster: TLSCluster) -> None:
    dsn = cluster.server.tcp_dsn(CERT_USER, DATABASE, sslmode="verify-full", sslrootcert=cluster.pki.ca)
    with pytest.raises(DatabaseUnavailableError, match="connection requires a valid client certificate"):
        await connect(dsn)


async def test_an_encrypted_client_key_opens_with_sslpassword_which_is_never_shown(
    cluster: TLSCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = cluster.pki

    def dsn(password: str) -> str:
        return cluster.server.tcp_dsn(
            CERT_USER, DATABASE, sslmode="verify-full", sslrootcert=pki.ca, sslcert=pki.client_cert,
            sslkey=pki.client_key_encrypted, sslpassword=password,
        )  # fmt: skip

    conn = await connect(dsn(KEY_PASSWORD))
    try:
        assert await conn.fetchval("SELECT current_user") == CERT_USER
    finally:
        await conn.close()
    wrong = "not-the-Key-pw"
    with pytest.raises(TLSError, match="TLS setup failed") as caught:
        await connect(dsn(wrong))
    assert wrong not in str(caught.value)
    assert "sslpassword=***" in str(caught.value)
    assert await _cli(["status", "--database-url", dsn(wrong)]) == 2
    captured = capsys.readouterr()
    assert "TLSError" in captured.err
    assert wrong not in captured.out + captured.err


async def test_a_missing_root_certificate_file_is_named(cluster: TLSCluster) -> None:
    missing = cluster.pki.directory / "nowhere.crt"
    with pytest.raises(TLSError, match=f"the TLS file {missing} cannot be read") as caught:
        await connect(cluster.app_dsn(sslmode="verify-full", sslrootcert=missing))
    assert PASSWORD not in str(caught.value)


async def test_libpq_environment_variables_choose_the_mode_and_the_ca(
    cluster: TLSCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = cluster.app_dsn()  # no ssl parameters: asyncpg reads PGSSLMODE and PGSSLROOTCERT
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    monkeypatch.setenv("PGSSLROOTCERT", str(cluster.pki.wrong_ca))
    with pytest.raises(TLSError, match="certificate verify failed"):
        await connect(bare)
    monkeypatch.setenv("PGSSLROOTCERT", str(cluster.pki.ca))
    conn = await connect(bare)
    try:
        assert await _encrypted(conn)
    finally:
        await conn.close()
    monkeypatch.setenv("PGSSLMODE", "disable")
    with pytest.raises(TLSError, match="refused a connection without TLS"):
        await connect(bare)


async def test_the_cli_connects_with_verify_full_from_database_url(
    cluster: TLSCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await schema.migrate(cluster.verified_dsn())
    monkeypatch.setenv("DATABASE_URL", cluster.verified_dsn())
    assert await _cli(["status"]) == 0
    out = capsys.readouterr().out
    assert "schema is current" in out
    assert PASSWORD not in out


async def test_the_cli_reports_a_wrong_ca_as_one_json_error_without_the_password(
    cluster: TLSCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = cluster.app_dsn(sslmode="verify-full", sslrootcert=cluster.pki.wrong_ca)
    assert await _cli(["--json", "status", "--database-url", dsn]) == 2
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert error["type"] == "TLSError"
    assert "certificate verify failed" in error["message"]
    assert PASSWORD not in captured.out + captured.err


async def _cli(argv: list[str]) -> int:
    """`main` runs its own event loop: off this test's loop, in a thread."""
    return await asyncio.to_thread(main, argv)
