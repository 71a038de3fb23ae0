"""Rollback: the plan's way back from each phase (shared/seed/POSTGRESQL-MIGRATION.md, docs/runbook.md).

Phases 1 and 2 are configuration: the exact environment settings to apply (printed, or merged into
an env file), checked against `CutoverSettings` so the API will accept them, and optionally
against the live API's store status. Phase 3 also exports PostgreSQL, the source of truth by then,
to a snapshot file in the API's format that the in-memory stores load at start-up (the export
itself is `coherence_sql.transfer.export`; its names are re-exported here).

    snapshot = await export_snapshot(pool)                 # PostgreSQL → Snapshot, one moment
    await export_to_file(pool, "rollback.json")            # … written atomically
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from coherence_sql.cutover.settings import CutoverSettings, Phase
from coherence_sql.errors import ConfigurationError
from coherence_sql.redaction import redact, scrub
from coherence_sql.transfer.export import export_snapshot, export_to_file, snapshot_from_contents

__all__ = [
    "PHASE_SETTINGS",
    "LiveCheck",
    "SettingsCheck",
    "check_live",
    "check_settings",
    "export_snapshot",
    "export_to_file",
    "read_env_file",
    "rollback_settings",
    "snapshot_from_contents",
    "write_env_file",
]

# The plan's rollback per phase, as environment settings. Each set also keeps the configuration
# valid on its own (CutoverSettings refuses, e.g., reads from PostgreSQL without dual-write).
PHASE_SETTINGS: Final[dict[int, dict[str, str]]] = {
    # Phase 1 (dual-write): stop writing PostgreSQL; memory alone, as before the migration.
    1: {
        "DUAL_WRITE_MODE": "false",
        "READ_FROM_POSTGRES_PERCENT": "0",
        "SHADOW_COMPARE_PERCENT": "0",
        "POSTGRES_PRIMARY": "false",
    },
    # Phase 2 (reads moving): every read from memory again; dual-write goes on.
    2: {
        "READ_FROM_POSTGRES_PERCENT": "0",
    },
    # Phase 3 (PostgreSQL primary): memory is the source of truth again, restored from the export;
    # PostgreSQL keeps receiving every write, so the switch can be retried without a new backfill.
    3: {
        "POSTGRES_PRIMARY": "false",
        "READ_FROM_POSTGRES_PERCENT": "0",
        "DUAL_WRITE_MODE": "true",
        "MEMORY_WRITES": "true",
    },
}
# The variable the API's InMemoryGraphStore loads its file from at start-up (client-contract §2.1).
SNAPSHOT_PATH_VARIABLE: Final = "GRAPH_STORE_PATH"
# A dotenv value that needs no quotes, for python-dotenv and a shell alike.
_BARE_VALUE: Final = re.compile(r"[A-Za-z0-9_./:@%+,=-]*")
# store_status()["settings"] names for the plan's variables.
_STATUS_NAMES: Final[dict[str, tuple[str, Any]]] = {
    "DUAL_WRITE_MODE": ("dual_write_mode", lambda v: v == "true"),
    "READ_FROM_POSTGRES_PERCENT": ("read_from_postgres_percent", int),
    "SHADOW_COMPARE_PERCENT": ("shadow_compare_percent", int),
    "POSTGRES_PRIMARY": ("postgres_primary", lambda v: v == "true"),
    "MEMORY_WRITES": ("memory_writes", lambda v: v == "true"),
}


def rollback_settings(phase: int, *, snapshot_path: str | Path | None = None) -> dict[str, str]:
    """The environment settings that roll back `phase` (1, 2 or 3), in the order to apply them.

    For phase 3, `snapshot_path` (the export) is added as GRAPH_STORE_PATH, absolute.
    """
    if phase not in PHASE_SETTINGS:
        raise ConfigurationError(f"phase must be 1, 2 or 3, got {phase!r}")
    settings = dict(PHASE_SETTINGS[phase])
    if phase == 3 and snapshot_path is not None:
        settings[SNAPSHOT_PATH_VARIABLE] = str(Path(snapshot_path).resolve())
    return settings


# -- checking the settings -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettingsCheck:
    """The configuration before and after applying the settings, as the API would read it."""

    before: str | None  # the phase now, or None when the current settings are invalid
    after: str | None  # the phase after the rollback, or None when the result is invalid
    error: str | None = None  # why the result would be refused at start-up
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


def _phase_of(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    try:
        return CutoverSettings.from_env(env).phase.value, None
    except ConfigurationError as exc:
        return None, str(exc)


def check_settings(current: Mapping[str, str], settings: Mapping[str, str]) -> SettingsCheck:
    """Validate `settings` applied over `current` exactly as the API's start-up does."""
    before, _ = _phase_of(current)
    merged = {**current, **settings}
    notes: list[str] = []
    placeholder = not merged.get("DATABASE_URL", "").strip()
    if placeholder:  # only the API's own environment has it; the check needs one to judge the rest
        merged["DATABASE_URL"] = "postgresql://placeholder/for-the-check"
    after, error = _phase_of(merged)
    if placeholder and after != Phase.MEMORY.value:
        notes.append("DATABASE_URL is not set here; the API's environment must keep it for dual-write")
    return SettingsCheck(before, after, error, tuple(notes))


def read_env_file(path: str | Path) -> dict[str, str]:
    """The variables a dotenv file sets, parsed as python-dotenv does (`export`, quotes, comments)."""
    source = Path(path)
    if not source.exists():
        return {}
    try:
        values = dotenv_values(source, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the env file {path}: {exc}") from None
    return {key: value for key, value in values.items() if value is not None}


def _dotenv_value(value: str) -> str:
    """`value` as python-dotenv reads it back (single-quoted when it must be: a shell reads that alike)."""
    if _BARE_VALUE.fullmatch(value):
        return value
    if "'" not in value and "\\" not in value:
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _with_settings(text: str, settings: Mapping[str, str]) -> str:
    """`text` (a dotenv file) with each of `settings` set: every binding of the key replaced in
    place (keeping `export `), new keys appended; every other line kept byte for byte."""
    remaining = dict(settings)
    out: list[str] = []
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        if binding.key is None or binding.key not in settings:
            out.append(original)
            continue
        blank = re.match(r"\s*\n", original)  # the parser puts preceding blank lines in the binding
        lead = blank.group() if blank else ""
        export = "export " if original[len(lead) :].lstrip().startswith("export ") else ""
        out.append(f"{lead}{export}{binding.key}={_dotenv_value(settings[binding.key])}\n")
        remaining.pop(binding.key, None)
    body = "".join(out)
    if body and not body.endswith("\n"):
        body += "\n"
    return body + "".join(f"{key}={_dotenv_value(value)}\n" for key, value in remaining.items())


def write_env_file(path: str | Path, settings: Mapping[str, str]) -> None:
    """Set `settings` in a dotenv file: existing keys replaced in place, new ones appended, every
    other line kept. Written atomically (temp file beside it, fsync, rename) with the file's mode
    and owner kept; a new file is created 0600 (env files hold DATABASE_URL)."""
    target = Path(path).resolve()  # through a symlink: the file it names is the one rewritten
    if target.is_dir():
        raise ConfigurationError(f"the env file {path} is a directory")
    try:
        before = target.stat() if target.exists() else None
        text = target.read_text(encoding="utf-8") if before is not None else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the env file {path}: {exc}") from None
    _replace_keeping_owner(target, _with_settings(text, settings), before)
    written = read_env_file(target)
    wrong = [key for key, value in settings.items() if written.get(key) != value]
    if wrong:  # e.g. a value python-dotenv would interpolate
        raise ConfigurationError(f"the env file {path} does not read back as written for {', '.join(wrong)}")


def _replace_keeping_owner(target: Path, text: str, before: os.stat_result | None) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise ConfigurationError(f"cannot write the env file {target}: {exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if before is not None:
                os.fchmod(handle.fileno(), stat.S_IMODE(before.st_mode))
                if (before.st_uid, before.st_gid) != (os.geteuid(), os.getegid()):
                    os.fchown(handle.fileno(), before.st_uid, before.st_gid)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except PermissionError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ConfigurationError(
            f"cannot rewrite the env file {target} keeping its owner and mode (run as its owner or root): {exc}"
        ) from None
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ConfigurationError(f"cannot write the env file {target}: {exc}") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# -- the live API --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveCheck:
    """The running API's settings (its store-status payload) against the rollback's."""

    url: str  # redacted: a status URL may carry credentials
    phase: str | None
    mismatches: tuple[tuple[str, Any, Any], ...] = ()  # (variable, live value, wanted value)
    error: str | None = None
    status: Mapping[str, Any] = field(default_factory=dict)

    @property
    def applied(self) -> bool:
        return self.error is None and not self.mismatches


def check_live(url: str, settings: Mapping[str, str], *, timeout_s: float = 5.0) -> LiveCheck:
    """GET the API's store status (coherence_sql.cutover.service.CutoverStores.store_status)
    and say whether every setting of the rollback is in effect there."""
    shown = redact(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return LiveCheck(shown, None, error=f"cannot read the store status: {scrub(str(exc), url)}")
    if not isinstance(status, dict) or not isinstance(status.get("settings"), dict):
        return LiveCheck(shown, None, error="the response has no `settings` object (is this the store-status URL?)")
    live = status["settings"]
    mismatches = []
    for variable, wanted in settings.items():
        if variable not in _STATUS_NAMES:
            continue
        name, convert = _STATUS_NAMES[variable]
        if live.get(name) != convert(wanted):
            mismatches.append((variable, live.get(name), convert(wanted)))
    phase = status.get("phase")
    return LiveCheck(shown, phase if isinstance(phase, str) else None, tuple(mismatches), status=status)
