"""What PgBouncer in transaction mode costs a point read, alternated in one run on one server
(docs/benchmarks.md "Replicas", the PgBouncer figures; docs/scaling.md "PgBouncer").

    PYTHONPATH=. python benchmarks/bench_pgbouncer.py [--reads 3000] [--rounds 3]

A private server on tmpfs (tests/faults/server.py) with the application role's timeouts set as
role settings, and Debian's pgbouncer in front of it (tests/pgbouncer/bouncer.py). One caller reads
one project by key (`get_project`) through: the pool straight to PostgreSQL (statement cache on,
as without PgBouncer); the same with the cache off (what POSTGRES_PGBOUNCER=transaction does); and
through PgBouncer pooling by transaction. Prints microseconds per read and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from coherence_sql.db import PoolSettings
from coherence_sql.embedded import scratch_parent
from coherence_sql.models import Project
from coherence_sql.stores.postgres import connect
from tests.faults.server import PrivateServer
from tests.pgbouncer.bouncer import Bouncer
from tests.pgbouncer.conftest import new_bouncer, set_role_timeouts

CACHED = PoolSettings(min_size=1, max_size=2)
UNCACHED = PoolSettings(min_size=1, max_size=2, transaction_pooling=True)


async def per_read_us(dsn: str, settings: PoolSettings, reads: int) -> float:
    async with connect(dsn, settings=settings) as stores:
        await stores.graph.get_project("npm", "react")  # warm: codecs, the first statement
        started = time.perf_counter()
        for _ in range(reads):
            await stores.graph.get_project("npm", "react")
        return (time.perf_counter() - started) / reads * 1e6


def _scratch() -> Path:
    parent = Path(tempfile.mkdtemp(prefix="bench-pgbouncer-", dir=scratch_parent()))
    parent.chmod(0o755)  # the servers' user must reach its directories
    return parent


async def main(args: argparse.Namespace) -> tuple[dict[str, list[float]], str]:
    parent = await asyncio.to_thread(_scratch)
    server = PrivateServer(parent / "pg")
    bouncer: Bouncer | None = None
    try:
        await server.prepare()
        database = await server.new_database()
        await set_role_timeouts(server, on=True)
        bouncer = new_bouncer(server, database, parent / "bouncer")
        await asyncio.to_thread(bouncer.start)
        direct = server.app_dsn(database)
        async with connect(direct, settings=CACHED) as stores:
            await stores.graph.upsert_project(Project(ecosystem="npm", name="react", version="19", description=""))
        paths = {
            "direct, statement cache on": (direct, CACHED),
            "direct, statement cache off": (direct, UNCACHED),
            "through PgBouncer (transaction)": (bouncer.dsn(), UNCACHED),
        }
        figures: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for name, (dsn, settings) in paths.items():
                figures.setdefault(name, []).append(await per_read_us(dsn, settings, args.reads))
    finally:
        if bouncer is not None:
            await asyncio.to_thread(bouncer.stop)
        await asyncio.to_thread(server.destroy)
        shutil.rmtree(parent, ignore_errors=True)
    load = " ".join((await asyncio.to_thread(Path("/proc/loadavg").read_text)).split()[:3])
    return figures, load


def report(args: argparse.Namespace, figures: dict[str, list[float]], load: str) -> None:
    print(f"load average {load}; {args.reads} reads x {args.rounds} rounds, one caller")
    base = statistics.median(next(iter(figures.values())))
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"{name:34} {median:8.1f} us/read  {median / base:5.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    report(arguments, *asyncio.run(main(arguments)))
