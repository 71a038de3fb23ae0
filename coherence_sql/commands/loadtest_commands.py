"""`coherence-sql loadtest mixed|bulk-index|agent-runners`: the plan's load tests, open-loop.

Each scenario runs on every store named (`--stores postgres,memory,cutover`, the cut-over stores
in each `--phase`), under each event loop named (`--loop asyncio,uvloop`), one after another in
one run, so the figures sit side by side. Exit 0 when no request failed, 1 when any failed or was
dropped, or a write was lost or claimed twice; never on a time figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from coherence_sql.commands import render
from coherence_sql.commands.database import add_database_options, chosen_dsn
from coherence_sql.commands.output import emit
from coherence_sql.errors import ConfigurationError, InvalidValueError
from coherence_sql.loadtest.bulk_index import DEFAULT_BATCH, DEFAULT_PROJECTS, DEFAULT_WRITERS
from coherence_sql.loadtest.dataset import DatasetSize
from coherence_sql.loadtest.operations import DEFAULT_MIX
from coherence_sql.loadtest.report import GROWTH_WINDOW_S, service_growth
from coherence_sql.loadtest.run import Leg, LoadTestPlan, run_loadtest
from coherence_sql.loadtest.runners import DEFAULT_RUNNERS, DEFAULT_TASKS, DEFAULT_UPDATES
from coherence_sql.loadtest.scheduler import DEFAULT_DRAIN_TIMEOUT_S, DEFAULT_MAX_QUEUE, LiveStatus, OpenLoopSettings
from coherence_sql.loadtest.targets import PHASES, targets_from

LOOPS = ("asyncio", "uvloop")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "loadtest",
        help="the plan's load tests: an open-loop API mix, bulk indexing, agent runners",
        description="Open-loop load at a fixed arrival rate (latency measured from each request's scheduled "
        "start: a stall shows), percentiles from an HDR histogram per operation and overall, against the "
        "PostgreSQL, in-memory and cut-over stores side by side. It writes test data: give it a scratch "
        "database (migrated). Exit 1 on any failed, dropped or unfinished request, lost update or double "
        "claim; never on a time figure.",
    )
    parser.add_argument("scenario", choices=("mixed", "bulk-index", "agent-runners"), help="what to run")
    parser.add_argument(
        "--stores", default="postgres", help="postgres, memory, cutover, comma-separated (default postgres)"
    )
    parser.add_argument(
        "--phase",
        default="dual-write",
        help=f"the cut-over stores' phases, comma-separated: {', '.join(PHASES)} (default dual-write)",
    )
    parser.add_argument(
        "--read-percent", type=int, default=100, help="dual-write: READ_FROM_POSTGRES_PERCENT (default 100)"
    )
    parser.add_argument("--loop", default="asyncio", help="asyncio, uvloop, or both comma-separated (default asyncio)")
    parser.add_argument("--seed", type=int, default=1, help="the request mix's seed (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress line (there is none on a pipe either)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    mixed = parser.add_argument_group("mixed (open loop)")
    mixed.add_argument(
        "--rate", default="1000", help="requests per second, or several comma-separated for a sweep (default 1000)"
    )
    mixed.add_argument("--duration", type=float, default=60.0, help="seconds of scheduled requests (default 60)")
    mixed.add_argument("--concurrency", type=int, default=64, help="requests at once; past it they queue (default 64)")
    mixed.add_argument(
        "--mix", default=DEFAULT_MIX, help=f"NAME=WEIGHT,... over groups or operations (default {DEFAULT_MIX})"
    )
    mixed.add_argument(
        "--dataset",
        default="",
        help="NAME=COUNT,... of projects, edges, contributors, assets, contributions, tasks "
        f"(default {','.join(f'{k}={v}' for k, v in DatasetSize().as_dict().items())})",
    )
    mixed.add_argument(
        "--max-queue",
        type=int,
        default=DEFAULT_MAX_QUEUE,
        help=f"waiting requests before new ones drop (default {DEFAULT_MAX_QUEUE:,})",
    )
    mixed.add_argument(
        "--drain-timeout",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT_S,
        help=f"seconds to wait for the last requests after the schedule (default {DEFAULT_DRAIN_TIMEOUT_S:g})",
    )
    runners = parser.add_argument_group("agent-runners")
    runners.add_argument(
        "--runners", type=int, default=DEFAULT_RUNNERS, help=f"concurrent runners (default {DEFAULT_RUNNERS})"
    )
    runners.add_argument(
        "--tasks", type=int, default=DEFAULT_TASKS, help=f"tasks they create (default {DEFAULT_TASKS:,})"
    )
    runners.add_argument(
        "--updates-per-task",
        type=int,
        default=DEFAULT_UPDATES,
        help=f"progress updates before completing (default {DEFAULT_UPDATES})",
    )
    bulk = parser.add_argument_group("bulk-index")
    bulk.add_argument(
        "--projects", type=int, default=DEFAULT_PROJECTS, help=f"projects to index (default {DEFAULT_PROJECTS:,})"
    )
    bulk.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH, help=f"projects per call (default {DEFAULT_BATCH})"
    )
    bulk.add_argument(
        "--writers", type=int, default=DEFAULT_WRITERS, help=f"concurrent callers (default {DEFAULT_WRITERS})"
    )
    add_database_options(parser)
    parser.set_defaults(run=_loadtest)


def _rates(text: str) -> list[float]:
    """`--rate 1000`, or a sweep: `--rate 250,500,1000` runs each rate in turn."""
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidValueError(f"rate must be requests per second, or several comma-separated; got {text!r}") from None
    if not rates:
        raise InvalidValueError("name a rate: requests per second")
    return rates


def _loops(text: str) -> list[str]:
    loops = [name.strip() for name in text.split(",") if name.strip()]
    for name in loops:
        if name not in LOOPS:
            raise InvalidValueError(f"loop must be one of {', '.join(LOOPS)}, got {name!r}")
    if not loops:
        raise InvalidValueError("name an event loop: asyncio or uvloop")
    return loops


def _runner(loop: str) -> Callable[[Coroutine[Any, Any, list[Leg]]], list[Leg]]:
    if loop == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        raise ConfigurationError("--loop uvloop needs uvloop: pip install 'coherence-sql[fast]'") from None
    return uvloop.run


def _loadtest(args: argparse.Namespace) -> int:
    targets = targets_from(args.stores, args.phase, args.read_percent)
    loops = _loops(args.loop)
    rates = _rates(args.rate)
    needs_postgres = any(t.uses_postgres for t in targets)
    dsn = (
        chosen_dsn(args, "loadtest", needs="a scratch database it may fill with test data") if needs_postgres else None
    )
    show = render.interactive() and not args.json and not args.quiet
    console = Console(file=sys.stderr, highlight=False)
    load_before = _loadavg()
    legs: list[Leg] = []
    with tempfile.TemporaryDirectory(prefix="coherence-sql-loadtest-") as workdir:
        plans = [
            LoadTestPlan(
                scenario=args.scenario,
                targets=targets,
                dsn=dsn,
                workdir=Path(workdir),
                open_loop=OpenLoopSettings(
                    rate=rate,
                    duration_s=args.duration,
                    concurrency=args.concurrency,
                    max_queue=args.max_queue,
                    drain_timeout_s=args.drain_timeout,
                ),
                mix=args.mix,
                dataset=DatasetSize.parse(args.dataset),
                runners=args.runners,
                tasks=args.tasks,
                updates_per_task=args.updates_per_task,
                projects=args.projects,
                batch_size=args.batch_size,
                writers=args.writers,
                seed=args.seed,
            )
            for rate in (rates if args.scenario == "mixed" else rates[:1])
        ]
        notice = None if args.json or args.quiet else (lambda text: console.print(f"[dim]{text}[/dim]"))
        for loop in loops:
            for plan in plans:
                with _live(console, show) as progress:
                    legs += _runner(loop)(run_loadtest(plan, loop_name=loop, progress=progress, notice=notice))
    failed = any(leg.failed for leg in legs)
    data = {
        "scenario": args.scenario,
        "ok": not failed,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": _loadavg()},
        "legs": [leg.data for leg in legs],
    }
    if args.json:
        emit(args, data, [])
    else:
        render.print_renderable(_table(args.scenario, legs))
        if args.scenario == "mixed":
            for leg in legs:
                if "result" in leg.data:
                    render.print_renderable(_service_table(leg))
        for leg in legs:
            for line in _notes(leg):
                print(f"{leg.target} ({leg.data['loop']}): {line}")
        print(f"load average before {load_before}, after {data['machine']['loadavg_after']}")
    return 1 if failed else 0


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


@contextmanager
def _live(console: Console, show: bool) -> Iterator[Callable[[str, LiveStatus], None] | None]:
    if not show:
        yield None
        return
    with Live(Text(""), console=console, transient=True, refresh_per_second=4) as live:

        def progress(target: str, status: LiveStatus) -> None:
            live.update(Text(_status_line(target, status)))

        yield progress


def _status_line(target: str, s: LiveStatus) -> str:
    rate = s.completed / s.elapsed_s if s.elapsed_s else 0.0
    return (
        f"{target}: {s.elapsed_s:6.1f} s  {s.completed:,}/{s.planned:,} done  {rate:,.0f} req/s  "
        f"p99 {s.p99_ms:.1f} ms  in flight {s.in_flight}  queued {s.queued}  errors {s.errors}  "
        f"dropped {s.dropped}  lag {s.dispatch_lag_ms:.1f} ms"
        + (f"  costliest (last 10 s) {s.costliest} {s.costliest_ms:.1f} ms" if s.costliest else "")
    )


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _table(scenario: str, legs: list[Leg]) -> Table:
    table = Table(title=f"loadtest {scenario}", title_justify="left")
    if scenario == "mixed":
        headers = ["stores", "loop", "target/s", "achieved/s", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms"]
        headers += ["errors", "delayed", "dropped"]
    elif scenario == "bulk-index":
        headers = ["stores", "loop", "projects", "insert s", "insert/s", "upsert s", "upsert/s", "batch p99 ms"]
        headers += ["all indexed", "errors"]
    else:
        headers = ["stores", "loop", "runners", "tasks", "claims", "updates/s", "claims/s", "update p99 ms"]
        headers += ["lost", "double claims", "never claimed", "errors"]
    for header in headers:
        table.add_column(header, justify="left" if header in ("stores", "loop") else "right")
    for leg in legs:
        if "result" not in leg.data:  # the target failed before it had figures: _notes says why
            table.add_row(leg.target, leg.data["loop"], *(["-"] * (len(headers) - 3)), "failed")
            continue
        r = leg.data["result"]
        errors = f"{sum(r['errors'].values()):,}"
        if scenario == "mixed":
            lat = r["latency_ms"]
            row = [f"{r['target_rate']:,.0f}", f"{r['achieved_rate']:,.0f}"]
            row += [_ms(lat[p]) for p in ("p50", "p95", "p99", "p99.9", "max")]
            row += [errors, f"{r['delayed']:,}", f"{r['dropped'] + r['unfinished']:,}"]
        elif scenario == "bulk-index":
            insert, upsert = r["passes"]["insert"], r["passes"]["upsert"]
            batch_p99 = max((v["p99"] for v in r.get("latency_ms", {}).values()), default=0.0)
            row = [f"{r['projects']:,}", f"{insert['seconds']:.2f}", f"{insert['projects_per_s']:,.0f}"]
            row += [f"{upsert['seconds']:.2f}", f"{upsert['projects_per_s']:,.0f}", _ms(batch_p99)]
            row += ["yes" if r["all_indexed"] else "NO", errors]
        else:
            update_p99 = r["latency_ms"].get("update_task", {}).get("p99", 0.0)
            row = [str(r["runners"]), f"{r['tasks_created']:,}", f"{r['claims']:,}", f"{r['updates_per_s']:,.0f}"]
            row += [f"{r['claims_per_s']:,.0f}", _ms(update_p99)]
            row += [str(r["lost_updates"]), str(r["double_claims"]), str(r["never_claimed"]), errors]
        table.add_row(leg.target, leg.data["loop"], *row)
    return table


def _service_table(leg: Leg) -> Table:
    """Each operation's own cost (began -> finished), and how its mean moved from the run's first
    minute to its last: under a backlog the latency table shows queueing in every operation, this
    one shows which operation's cost grew."""
    result = leg.data["result"]
    title = (
        f"service time per operation, ms ({leg.target}, {leg.data['loop']}); start and end: the first and "
        f"last {GROWTH_WINDOW_S:g} s (halves of a shorter run)"
    )
    table = Table(title=title, title_justify="left")
    headers = ["operation", "count", "p50", "p99", "mean", "mean at start", "mean at end", "end/start"]
    for header in headers:
        table.add_column(header, justify="left" if header == "operation" else "right")
    service = result["service_ms_by_operation"]
    for growth in service_growth(result):
        figures = service[growth.operation]
        table.add_row(
            growth.operation,
            f"{growth.count:,}",
            _ms(figures["p50"]),
            _ms(figures["p99"]),
            _ms(figures["mean"]),
            _ms(growth.first_mean_ms),
            _ms(growth.last_mean_ms),
            f"{growth.ratio:.2f}×" if growth.ratio else "-",
        )
    return table


def _notes(leg: Leg) -> list[str]:
    r = leg.data.get("result", {})
    error = leg.data.get("error")
    lines = [] if error is None else [f"{error['type']}: {error['message']}"]
    lines += r.get("warnings", [])
    lines += [f"{kind}: {message}" for kind, message in r.get("error_examples", {}).items()]
    lines += r.get("problems", [])[:5]
    journaled = leg.data.get("cutover", {}).get("journaled", 0)
    if journaled:
        lines.append(f"{journaled:,} writes journaled (PostgreSQL past its budget): it is behind until replayed")
    return lines
