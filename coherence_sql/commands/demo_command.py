"""`coherence-sql demo`: the main job on one database, start to finish.

Migrates the database, loads the example snapshot into the in-memory stores (the API's state),
backfills it into PostgreSQL, verifies PostgreSQL against memory field by field, then serves
shadow-compared reads in dual-write mode and prints the store status. It only reads after the
backfill, so running it again changes nothing and verifies clean again.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from coherence_sql import schema
from coherence_sql.commands.database import add_database_options, chosen_dsn
from coherence_sql.commands.output import as_json, wants_json
from coherence_sql.commands.render import backfill_summary, verify_summary, verify_text
from coherence_sql.cutover.service import open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.redaction import redact
from coherence_sql.resources import example_snapshot
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.snapshot import load_into
from coherence_sql.transfer.verify import verify_memory


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="migrate, backfill the example snapshot, verify, and print the dual-write store status",
    )
    demo.add_argument("--snapshot", type=Path, default=None, help="snapshot file (default: the shipped example)")
    add_database_options(demo)
    demo.set_defaults(run=_demo)


async def _demo(args: argparse.Namespace) -> int:
    dsn = chosen_dsn(args, "demo")
    snapshot_path = args.snapshot or example_snapshot()
    quiet = wants_json(args)  # JSON mode prints one document at the end
    outcome: dict[str, Any] = {"database": redact(dsn)}

    def _say(text: str) -> None:
        if not quiet:
            print(text, flush=True)

    _say(f"database: {redact(dsn)}")

    report = await schema.migrate(dsn)
    state = await schema.status(dsn)
    outcome["schema"] = {"applied_now": len(report.applied), "applied": len(state.applied), "current": state.current}
    _say(f"1. schema: applied {len(report.applied)} file(s) now; {len(state.applied)} applied in all, current")

    graph, tasks = MemoryGraphStore(), MemoryAgentTaskStore()
    snapshot = await load_into(snapshot_path, graph, tasks)
    _say(
        f"2. memory: loaded {snapshot_path.name}: {len(snapshot.projects)} projects, {len(snapshot.edges)} edges, "
        f"{len(snapshot.contributors)} contributors, {len(snapshot.assets)} assets, "
        f"{len(snapshot.contributions)} contributions, {len(snapshot.agent_tasks or [])} tasks"
    )

    outcome["memory"] = {
        "projects": len(snapshot.projects),
        "edges": len(snapshot.edges),
        "contributors": len(snapshot.contributors),
        "assets": len(snapshot.assets),
        "contributions": len(snapshot.contributions),
        "tasks": len(snapshot.agent_tasks or []),
    }

    loaded = await backfill(dsn, snapshot_path, progress=None)
    outcome["backfill"] = loaded.as_json()
    _say(f"3. backfill: {backfill_summary(loaded)}")

    checked = await verify_memory(dsn, graph, tasks)
    outcome["verify"] = checked.as_json()
    _say(f"4. verify: {verify_summary(checked)}")
    if not checked.ok:
        if quiet:
            print(as_json(outcome))
        else:
            print(verify_text(checked), file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="coherence-sql-demo-") as scratch:
        settings = CutoverSettings(
            dual_write=True,
            read_from_postgres_percent=10,
            shadow_compare_percent=100,
            journal_path=Path(scratch) / "journal.jsonl",
            database_url=dsn,
        )
        async with open_cutover_stores(
            settings, memory_graph=graph, memory_tasks=tasks, reconcile_interval_s=None
        ) as stores:
            for project in snapshot.projects[:50]:
                await stores.graph.get_project(project.ecosystem, project.name)
            for contributor in snapshot.contributors[:20]:
                await stores.graph.get_contributor(contributor.id)
            for task in (snapshot.agent_tasks or [])[:20]:
                await stores.tasks.get_task(task.id)
            await stores.graph.search("core", limit=10)
            await stores.tasks.list_tasks(limit=20)
            await stores.core.shadow.drain()
            status: dict[str, Any] = (await stores.store_status()).model_dump()
    _say("5. store status (dual-write, 10% of reads from PostgreSQL, every memory read shadow-compared):")
    _say(json.dumps(status, indent=2, default=str))
    if quiet:
        print(as_json({**outcome, "store_status": status}))
    return 0 if status["shadow"]["mismatched"] == 0 else 1
