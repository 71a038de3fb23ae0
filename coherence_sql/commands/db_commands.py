"""`coherence-sql db start|stop|status|url`: the embedded PostgreSQL server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from coherence_sql.commands.output import emit
from coherence_sql.embedded import EmbeddedPostgres, default_data_dir


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="manage the embedded PostgreSQL server")
    # --data-dir is accepted before or after the action: `db --data-dir D stop` and `db stop --data-dir D`.
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="data directory (default: $COHERENCE_SQL_DATA_DIR, else ~/.local/share/coherence-sql/pgdata)",
    )
    db.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, run, help_text in (
        ("start", _start, "initialise if needed and start; print the URL"),
        ("stop", _stop, "stop the server"),
        ("status", _status, "say whether it runs; exit 1 when it does not"),
        ("url", _start, "print the connection URL (starts the server if needed)"),
    ):
        actions.add_parser(name, help=help_text, parents=[data_dir]).set_defaults(run=run)


def _server(args: argparse.Namespace) -> EmbeddedPostgres:
    return EmbeddedPostgres(args.data_dir or default_data_dir())


def _start(args: argparse.Namespace) -> int:
    url = _server(args).start()
    emit(args, {"url": url}, [url])
    return 0


def _stop(args: argparse.Namespace) -> int:
    server = _server(args)
    was_running = server.stop()
    text = f"stopped {server.data_dir}" if was_running else f"not running: {server.data_dir}"
    emit(args, {"stopped": was_running, "data_dir": str(server.data_dir)}, [text])
    return 0


def _status(args: argparse.Namespace) -> int:
    state = _server(args).status()
    data = {
        "running": state.running,
        "initialized": state.initialized,
        "pid": state.pid,
        "data_dir": str(state.data_dir),
        "url": state.uri,
    }
    if state.running:
        emit(args, data, [f"running  pid {state.pid}  {state.data_dir}", f"{state.uri}"])
        return 0
    what = "stopped" if state.initialized else "not initialised"
    emit(args, data, [f"{what}  {state.data_dir}"])
    return 1
