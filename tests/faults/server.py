"""A private PostgreSQL server the fault tests may break: stop, kill -9, freeze, restart, make
read-only, close to connections, rotate the application's password, revoke its grants, rename its
database; and undo each.

It is an `EmbeddedPostgres` of its own on tmpfs (never the session's shared server, never the
127.0.0.1:5432 service). The application connects as its own role with a password, checked by
scram-sha-256: the server listens on its unix socket only (EmbeddedPostgres passes `-h ''`), so
the pg_hba rule is a `local` line; a TCP proxy in front of the socket reaches the same rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Final

import asyncpg

from coherence_sql.embedded import EmbeddedPostgres
from coherence_sql.schema import migrate

APP_ROLE: Final = "coherence_app"
APP_PASSWORD: Final = "app-password-1"
ROTATED_PASSWORD: Final = "app-password-2"
TEMPLATE_DB: Final = "coherence_template"
_HBA_MARK: Final = "# coherence_sql fault tests: the application role needs its password"
_ADMIN_SETTINGS: Final = {"default_transaction_read_only": "off", "application_name": "fault-admin"}
_GRANTS: Final = (
    f"GRANT USAGE ON SCHEMA public TO {APP_ROLE};"
    f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {APP_ROLE};"
    f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}"
)
_SETTLE_S: Final = 10.0  # the longest a reload or a backend's exit may take to show


def _children(pid: int) -> list[int]:
    """Every descendant of `pid` (a postmaster's backends and workers), from /proc."""
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        by_parent.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # a backend that exited meanwhile
            os.kill(pid, sig)


class PrivateServer:
    """One throwaway cluster and the faults that can be done to it (see the module docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self.embedded = EmbeddedPostgres(data_dir, durable=False)
        self.password = APP_PASSWORD
        self._frozen: list[int] = []
        self._databases: list[str] = []
        self._revoked: set[str] = set()
        self._renamed: dict[str, str] = {}  # the database's real name -> the name it was moved to

    # -- addresses -------------------------------------------------------------------------------
    @property
    def socket_path(self) -> Path:
        return self.embedded.socket_dir / ".s.PGSQL.5432"

    def admin_dsn(self, database: str = "postgres") -> str:
        return self.embedded.uri(database)

    def app_dsn(self, database: str, password: str = APP_PASSWORD) -> str:
        """The application's DSN (its role, the password it was configured with)."""
        return f"postgresql://{APP_ROLE}:{password}@/{database}?host={self.embedded.socket_dir}"

    @property
    def pid(self) -> int | None:
        return self.embedded.status().pid

    @property
    def frozen(self) -> bool:
        return bool(self._frozen)

    # -- process faults (blocking: call them with asyncio.to_thread mid-traffic) ------------------
    def start(self) -> None:
        self.embedded.start()

    def stop(self) -> None:
        self.thaw()
        self.embedded.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill9(self) -> None:
        """SIGKILL the postmaster (its backends are left to notice and exit); `start()` recovers."""
        pid = self.pid
        if pid is None:
            raise AssertionError("kill -9 of a server that is not running")
        self.thaw()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + _SETTLE_S
        while self.pid is not None:  # a zombie counts as gone (EmbeddedPostgres checks the state)
            if time.monotonic() > deadline:
                raise AssertionError(f"postmaster {pid} survived SIGKILL for {_SETTLE_S}s")
            time.sleep(0.02)

    def freeze(self) -> None:
        """SIGSTOP the postmaster first (so it forks nothing new), then every process under it."""
        pid = self.pid
        if pid is None:
            raise AssertionError("freeze of a server that is not running")
        if self._frozen:
            return
        os.kill(pid, signal.SIGSTOP)
        self._frozen = [pid, *_children(pid)]
        _signal_all(self._frozen[1:], signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT everything `freeze` stopped (safe to call at any time, and twice)."""
        frozen, self._frozen = self._frozen, []
        _signal_all(list(reversed(frozen)), signal.SIGCONT)

    # -- SQL faults ------------------------------------------------------------------------------
    async def _admin(self, database: str = "postgres") -> asyncpg.Connection:
        return await asyncpg.connect(self.admin_dsn(database), server_settings=_ADMIN_SETTINGS, timeout=10)

    async def _terminate(self, where: str, *args: object) -> None:
        conn = await self._admin()
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' AND {where}",
                *args,
            )
        finally:
            await conn.close()

    async def set_read_only(self, on: bool) -> None:
        """What a failover to a read-only node looks like: every new transaction is read-only."""
        conn = await self._admin()
        try:
            if on:
                await conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            else:
                await conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()
        await self._wait_for_setting("default_transaction_read_only", "on" if on else "off")
        if on:
            await self._terminate("true")  # a failover ends every session too

    async def _wait_for_setting(self, name: str, value: str) -> None:
        """A reload is asynchronous: wait until a new session sees the value."""
        deadline = time.monotonic() + _SETTLE_S
        while True:
            conn = await asyncpg.connect(self.admin_dsn(), timeout=10)
            try:
                if await conn.fetchval(f"SHOW {name}") == value:
                    return
            finally:
                await conn.close()
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not become {value} within {_SETTLE_S}s")
            await asyncio.sleep(0.05)

    async def set_allow_connections(self, database: str, on: bool) -> None:
        """ALTER DATABASE ... ALLOW_CONNECTIONS; closing also ends every session on it."""
        conn = await self._admin()
        try:
            await conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if on else "false"}')
        finally:
            await conn.close()
        if not on:
            await self._terminate("datname = $1", database)

    async def rotate_password(self) -> None:
        """The operator rotates the application's password (and ends its sessions); the
        application still has the old one."""
        await self._set_password(ROTATED_PASSWORD)
        await self._terminate("usename = $1", APP_ROLE)

    async def restore_password(self) -> None:
        await self._set_password(APP_PASSWORD)

    async def _set_password(self, password: str) -> None:
        conn = await self._admin()
        try:
            # A literal, not a parameter: ALTER ROLE takes none. The passwords are fixed test values.
            await conn.execute(f"ALTER ROLE {APP_ROLE} PASSWORD '{password}'")
        finally:
            await conn.close()
        self.password = password

    async def revoke_grants(self, database: str) -> None:
        """The application's role loses its table privileges (a grant revoked by mistake)."""
        self._revoked.add(database)
        await self._run_in(database, f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")

    async def restore_grants(self, database: str) -> None:
        await self._run_in(database, _GRANTS)
        self._revoked.discard(database)

    async def _run_in(self, database: str, sql: str) -> None:
        conn = await self._admin(database)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def rename_database(self, database: str) -> None:
        """The application's database is renamed away (its DSN now names nothing)."""
        moved = f"{database}_moved"
        await self.set_allow_connections(database, False)  # ends its sessions, admits no new ones
        conn = await self._admin()
        try:
            await conn.execute(f'ALTER DATABASE "{database}" RENAME TO "{moved}"')
            await conn.execute(f'ALTER DATABASE "{moved}" ALLOW_CONNECTIONS true')
        finally:
            await conn.close()
        self._renamed[database] = moved

    async def restore_database_name(self, database: str) -> None:
        moved = self._renamed.pop(database, None)
        if moved is None:
            return
        conn = await self._admin()
        try:
            # Nobody connects to the moved name, so the rename back meets no session.
            await conn.execute(f'ALTER DATABASE "{moved}" RENAME TO "{database}"')
        finally:
            await conn.close()

    # -- set-up ----------------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Start; create the application role, require its password, migrate a template database."""
        await asyncio.to_thread(self.start)
        conn = await self._admin()
        try:
            await conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}'")
            # The throwaway server runs with synchronous_commit=off, which loses acknowledged commits
            # to a kill -9; production keeps it on, and so do the application's sessions here.
            await conn.execute(f"ALTER ROLE {APP_ROLE} SET synchronous_commit = on")
            await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        finally:
            await conn.close()
        self._require_app_password()
        await migrate(self.admin_dsn(TEMPLATE_DB))
        conn = await self._admin(TEMPLATE_DB)
        try:
            await conn.execute(_GRANTS + "; SELECT pg_reload_conf()")
        finally:
            await conn.close()

    def _require_app_password(self) -> None:
        """pg_hba lines are matched in order: ours go first, before initdb's `trust` lines."""
        hba = self.embedded.data_dir / "pg_hba.conf"
        text = hba.read_text()
        if _HBA_MARK in text:
            return
        ours = (
            f"{_HBA_MARK}\n"
            f"local all {APP_ROLE} scram-sha-256\n"
            f"host all {APP_ROLE} 127.0.0.1/32 scram-sha-256\n"
            f"host all {APP_ROLE} ::1/128 scram-sha-256\n"
        )
        hba.write_text(ours + text)  # writing in place keeps the file's owner (the server's user)

    async def new_database(self) -> str:
        """A fresh migrated database (a copy of the template) for one test."""
        name = f"faults_{len(self._databases) + 1}_{os.getpid()}"
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
        finally:
            await conn.close()
        self._databases.append(name)
        return name

    async def heal(self) -> None:
        """Undo every fault, whatever state a test left: thawed, running, writable, named and
        granted as before, open, the application's password back."""
        self.thaw()
        await asyncio.to_thread(self.start)
        await self.set_read_only(False)
        for name in list(self._renamed):
            await self.restore_database_name(name)
        for name in list(self._revoked):
            await self.restore_grants(name)
        for name in self._databases:
            await self.set_allow_connections(name, True)
        if self.password != APP_PASSWORD:
            await self.restore_password()

    def destroy(self) -> None:
        self.thaw()
        self.embedded.destroy()
