"""A backup's manifest: what was backed up, when, by which tools, and each file's size and SHA-256.

A backup is a directory holding the dump and `manifest.json`. The manifest is written last and
the directory is renamed into place only then (see `coherence_sql.backup.dump`), so a directory
with a manifest is complete; `read_manifest` refuses anything truncated or foreign, and
`check_files` refuses a file whose size or digest differs before anything is restored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from coherence_sql.errors import BackupChecksumError, BackupError

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "BackupFile",
    "Manifest",
    "SchemaFileEntry",
    "check_files",
    "describe_file",
    "fsync_path",
    "read_manifest",
    "write_manifest",
]

FORMAT: Final = "coherence-sql-backup"
MANIFEST_NAME: Final = "manifest.json"
_CHUNK: Final = 1 << 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackupFile(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # a plain name inside the backup directory
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SchemaFileEntry(_Strict):
    version: int
    name: str
    checksum: str


class Manifest(_Strict):
    format: Literal["coherence-sql-backup"] = FORMAT
    format_version: Literal[1] = 1
    kind: Literal["pg_dump-custom"] = "pg_dump-custom"
    database: str
    server: str  # the server's URL, redacted
    server_version: str
    server_major: int
    started_utc: AwareDatetime
    finished_utc: AwareDatetime
    schema_files: list[SchemaFileEntry]
    row_counts: dict[str, int]  # schema.table -> rows, counted in the dumped snapshot
    files: list[BackupFile] = Field(min_length=1)
    tools: dict[str, str]

    @property
    def schema_version(self) -> int:
        """The newest applied schema file's version (0 for a database never migrated)."""
        return max((f.version for f in self.schema_files), default=0)

    @property
    def dump(self) -> BackupFile:
        return self.files[0]


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a rename is durable once its directory is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def describe_file(path: Path) -> BackupFile:
    """`path`'s name, size and SHA-256, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return BackupFile(name=path.name, bytes=size, sha256=digest.hexdigest())


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write `manifest.json` into `directory` through a temporary name, fsynced, then renamed."""
    target = directory / MANIFEST_NAME
    partial = directory / f".{MANIFEST_NAME}.partial"
    partial.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    fsync_path(partial)
    partial.replace(target)
    fsync_path(directory)
    return target


def read_manifest(backup: Path) -> Manifest:
    """The manifest of the backup directory `backup` (or of a `manifest.json` path itself)."""
    path = backup / MANIFEST_NAME if backup.is_dir() else backup
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackupError(f"{path}: no manifest: not a complete backup made by coherence-sql backup") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BackupError(f"{path}: the manifest cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BackupError(f"{path}: the manifest is not valid JSON (truncated?): {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupError(f'{path}: not a coherence-sql backup manifest (no "format": "{FORMAT}")')
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise BackupError(f"{path}: the manifest is incomplete or malformed: {problems}") from None


def check_files(directory: Path, manifest: Manifest) -> None:
    """Raise BackupChecksumError (or BackupError for a missing file) unless every file the
    manifest lists is in `directory` with its recorded size and SHA-256."""
    for entry in manifest.files:
        path = directory / entry.name
        if not path.is_file():
            raise BackupError(f"{path}: missing: the backup is incomplete and cannot be restored")
        try:
            actual = describe_file(path)
        except OSError as exc:
            raise BackupError(f"{path}: cannot be read: {exc}") from None
        if actual.bytes != entry.bytes:
            raise BackupChecksumError(
                f"{path}: {actual.bytes} bytes where the manifest records {entry.bytes}: the file is damaged; "
                f"nothing was restored"
            )
        if actual.sha256 != entry.sha256:
            raise BackupChecksumError(
                f"{path}: SHA-256 {actual.sha256[:16]}… where the manifest records {entry.sha256[:16]}…: "
                f"the file is damaged; nothing was restored"
            )
