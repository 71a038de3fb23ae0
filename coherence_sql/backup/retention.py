"""`prune_backups()`: the retention rule, `--keep-days N`.

Only complete backups this tool wrote are candidates (a directory whose manifest reads as ours);
anything else in the directory is left alone. The newest backup of each database stays whatever
its age, so a backup job that stopped running for a month still leaves one to restore. A
backup's age is its manifest's `finished_utc`. Its manifest is deleted first, so a backup half
deleted never looks complete; a file the manifest does not list keeps its directory.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from coherence_sql.backup.dump import PARTIAL_PREFIX
from coherence_sql.backup.manifest import MANIFEST_NAME, Manifest, read_manifest
from coherence_sql.errors import BackupError, ConfigurationError

__all__ = ["PruneResult", "list_backups", "prune_backups"]


@dataclass(slots=True)
class PruneResult:
    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    partial: list[Path] = field(default_factory=list)  # interrupted backups, left for the operator


def list_backups(directory: Path) -> list[tuple[Path, Manifest]]:
    """The complete backups in `directory`, oldest first."""
    if not directory.is_dir():
        raise BackupError(f"{directory}: no such backup directory")
    found: list[tuple[Path, Manifest]] = []
    for child in sorted(directory.iterdir()):
        if not child.is_dir() or child.name.startswith(".") or not (child / MANIFEST_NAME).is_file():
            continue
        with contextlib.suppress(BackupError):  # not ours, or damaged: never a candidate
            found.append((child, read_manifest(child)))
    return sorted(found, key=lambda item: item[1].finished_utc)


def _remove(path: Path, manifest: Manifest) -> None:
    (path / MANIFEST_NAME).unlink()
    for entry in manifest.files:
        (path / entry.name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # something we did not write is still in it: it stays
        path.rmdir()


def prune_backups(directory: Path, keep_days: int, *, now: datetime | None = None) -> PruneResult:
    """Remove the backups in `directory` that finished more than `keep_days` days before `now`,
    except the newest of each database."""
    if keep_days < 1:
        raise ConfigurationError(f"--keep-days must be at least 1, got {keep_days}")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    result = PruneResult(partial=sorted(p for p in directory.glob(f"{PARTIAL_PREFIX}*") if p.is_dir()))
    backups = list_backups(directory)
    newest = {manifest.database: path for path, manifest in backups}  # oldest first: the last one wins
    for path, manifest in backups:
        if manifest.finished_utc < cutoff and newest[manifest.database] != path:
            try:
                _remove(path, manifest)
            except OSError as exc:
                raise BackupError(f"cannot remove the old backup {path}: {exc}") from None
            result.removed.append(path)
        else:
            result.kept.append(path)
    return result
