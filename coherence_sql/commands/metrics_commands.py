"""`coherence-sql metrics serve|show`: the operator's exporter of the PostgreSQL server's metrics.

`serve` answers Prometheus on /metrics (prometheus_client's HTTP server) with the server collector
(database size, the data directory's volume when local, replication lag, replay delay), querying
the server at each scrape. `show` prints the same exposition once.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from coherence_sql.commands.arguments import positive_seconds
from coherence_sql.commands.database import add_database_options, chosen_dsn
from coherence_sql.errors import ConfigurationError
from coherence_sql.metrics import exposition
from coherence_sql.metrics.server import DEFAULT_TIMEOUT_S, ServerCollector

_DATA_DIRECTORY = {"auto": None, "local": True, "remote": False}
DEFAULT_PORT = 9187  # the port postgres_exporter made customary for PostgreSQL


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {port}")
    return port


def register(subparsers: Any) -> None:
    metrics = subparsers.add_parser("metrics", help="export the PostgreSQL server's metrics for Prometheus")
    actions = metrics.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-directory",
        choices=sorted(_DATA_DIRECTORY),
        default="auto",
        help="whether the server's data directory is on this host, for the volume gauges (auto: a unix "
        "socket or loopback address whose data directory exists here; remote: never, node_exporter on "
        "the server's host measures its disk)",
    )
    common.add_argument(
        "--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT_S, help="seconds a scrape waits for the server"
    )
    add_database_options(common)
    serve = actions.add_parser(
        "serve", parents=[common], help="answer Prometheus on http://HOST:PORT/metrics until stopped"
    )
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.set_defaults(run=_serve)
    show = actions.add_parser("show", parents=[common], help="print the metrics once, as a scrape would get them")
    show.set_defaults(run=_show)


def _registry(args: argparse.Namespace, command: str) -> CollectorRegistry:
    dsn = chosen_dsn(args, command, needs="the PostgreSQL to watch")
    registry = CollectorRegistry()
    registry.register(
        ServerCollector(dsn, data_directory_local=_DATA_DIRECTORY[args.data_directory], timeout_s=args.timeout)
    )
    return registry


def _show(args: argparse.Namespace) -> int:
    print(exposition(_registry(args, "metrics show")).decode("utf-8"), end="", flush=True)
    return 0


def _serve(args: argparse.Namespace) -> int:
    registry = _registry(args, "metrics serve")
    try:
        server, thread = start_http_server(args.port, addr=args.host, registry=registry)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    host, port = server.server_address[:2]
    print(f"serving metrics on http://{host!s}:{port}/metrics", flush=True)
    stop = threading.Event()
    # SIGTERM (systemd, docker stop) ends it as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):  # a timed wait: signal handlers run between the waits
            pass
    except KeyboardInterrupt:
        pass
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    return 0
