"""Backups and restores: `coherence-sql backup` and `coherence-sql restore` as a library.

A backup is a directory `<database>-<UTC time>Z/` holding pg_dump's custom-format dump of one
consistent snapshot and `manifest.json` (server, schema files applied, tools, each file's size
and SHA-256). `restore_backup` checks every checksum before it touches a server and restores only
into an empty database.

    result = await backup_database(dsn, Path("/var/backups/coherence"))
    prune_backups(Path("/var/backups/coherence"), keep_days=30)
    await restore_backup(result.path, "postgresql://owner@db/coherence_restored")

- `tools`: the pg_dump/pg_restore of the server's major version.
- `conninfo`: a URL for a child program, its password moved into the child's environment.
- `manifest`: the manifest, written atomically and read strictly; file checksums.
- `dump`: `backup_database`. `restore`: `restore_backup`, `verify_backup`. `retention`: `prune_backups`.
"""

from __future__ import annotations

from coherence_sql.backup.dump import BackupResult, backup_database
from coherence_sql.backup.manifest import Manifest, read_manifest
from coherence_sql.backup.restore import RestoreResult, resolve_target, restore_backup, verify_backup
from coherence_sql.backup.retention import PruneResult, list_backups, prune_backups
from coherence_sql.backup.tools import ClientTool, find_tool

__all__ = [
    "BackupResult",
    "ClientTool",
    "Manifest",
    "PruneResult",
    "RestoreResult",
    "backup_database",
    "find_tool",
    "list_backups",
    "prune_backups",
    "read_manifest",
    "resolve_target",
    "restore_backup",
    "verify_backup",
]
