"""`coherence-sql reconcile` and `coherence-sql store-status`: the dual-write journal and the
migration's live state, for operators."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic_core import to_jsonable_python

from coherence_sql.commands.database import add_database_options, chosen_dsn
from coherence_sql.commands.output import as_json, emit, wants_json
from coherence_sql.cutover.journal import WriteJournal
from coherence_sql.cutover.service import default_journal_path, open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.db import redact


def register(subparsers: Any) -> None:
    reconcile = subparsers.add_parser(
        "reconcile",
        help="replay dual-writes that did not reach PostgreSQL (the write journal), in order",
    )
    reconcile.add_argument(
        "--journal",
        type=Path,
        default=None,
        help="the journal (default: $COHERENCE_SQL_JOURNAL, else ~/.local/share/coherence-sql/write-journal.jsonl)",
    )
    shown = reconcile.add_mutually_exclusive_group()
    shown.add_argument(
        "--dead-letters",
        action="store_true",
        help="list the dead letters (writes PostgreSQL refused on their data) and replay nothing",
    )
    shown.add_argument(
        "--replay-dead-letters",
        nargs="*",
        metavar="ID",
        default=None,
        help="after the journal, replay dead letters (all, or these ids) once their cause is fixed; "
        "those that land leave the file, those still refused stay",
    )
    shown.add_argument(
        "--clear-diverged",
        action="store_true",
        help="clear the diverged mark once a new snapshot was backfilled and verified (docs/runbook.md)",
    )
    add_database_options(reconcile)
    reconcile.set_defaults(run=_reconcile)


def _journal_of(args: argparse.Namespace) -> WriteJournal:
    return WriteJournal(args.journal or default_journal_path())


async def _reconcile(args: argparse.Namespace) -> int:
    journal = _journal_of(args)
    if args.dead_letters:
        return _list_dead_letters(args, journal)
    if args.clear_diverged:
        marker = journal.path.with_name(journal.path.name + ".diverged")
        if not marker.exists():
            emit(args, {"diverged": None, "cleared": False}, [f"not diverged ({marker} does not exist)"])
            return 0
        reason = marker.read_text(encoding="utf-8").strip()
        marker.unlink()
        emit(
            args,
            {"diverged": reason, "cleared": True},
            [f"was diverged: {reason}", "cleared: the API picks this up within its reconcile interval"],
        )
        return 0
    # The journal belongs to a real server; replaying it into a guessed one would empty it there.
    dsn = chosen_dsn(args, "reconcile", needs="the PostgreSQL the API dual-writes to")
    settings = CutoverSettings(dual_write=True, journal_path=journal.path, database_url=dsn)
    if not wants_json(args):
        print(f"database: {redact(dsn)}")
    async with open_cutover_stores(settings, reconcile_interval_s=None, drain_on_start=False) as stores:
        before = journal.pending()
        report = await stores.reconcile()
        dead_replay = None
        if args.replay_dead_letters is not None and report.complete:
            dead_replay = await stores.replay_dead_letters(args.replay_dead_letters or None)
        dead_lettered = list(stores.core.stats.recent_dead_letters)
    result: dict[str, Any] = {
        "applied": report.applied,
        "already_applied": report.already_applied,
        "set_aside": report.set_aside,
        "dead_lettered": dead_lettered,
        "remaining": report.remaining,
        "error": report.error,
        "dead_letters": journal.dead_letters.count(),
    }
    if dead_replay is not None:
        result["dead_letter_replay"] = {
            "applied": dead_replay.applied,
            "already_applied": dead_replay.already_applied,
            "still_refused": dead_replay.refused,
            "remaining": dead_replay.remaining,
            "error": dead_replay.error,
        }
    if wants_json(args):
        print(as_json({"database": redact(dsn), "journal": str(journal.path), "pending_before": before, **result}))
    else:
        print(f"journal:  {journal.path} ({before} pending)")
        print(json.dumps(result, indent=2, ensure_ascii=False))
    if result["dead_letters"] and not wants_json(args):
        print(
            f"{result['dead_letters']} dead letter(s): `coherence-sql reconcile --dead-letters` lists them; "
            "docs/runbook.md says what to do with one"
        )
    if dead_replay is not None and (dead_replay.refused or dead_replay.error):
        return 1
    return 0 if report.complete else 1


def _list_dead_letters(args: argparse.Namespace, journal: WriteJournal) -> int:
    letters = journal.dead_letters.read()
    lines = [f"dead letters: {journal.dead_letters.path} ({len(letters)})"]
    shown: list[dict[str, Any]] = []
    for letter in letters:
        arguments = to_jsonable_python(letter.kwargs, fallback=repr)
        lines.append(f"{letter.id}  {letter.recorded_at}  {letter.store}.{letter.op}  {letter.error}")
        lines.append(f"    arguments: {json.dumps(arguments, ensure_ascii=False)}")
        shown.append(
            {
                "id": letter.id,
                "recorded_at": letter.recorded_at,
                "store": letter.store,
                "op": letter.op,
                "error": letter.error,
                "arguments": arguments,
            }
        )
    emit(args, {"path": str(journal.dead_letters.path), "dead_letters": shown}, lines)
    return 0
