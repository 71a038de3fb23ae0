"""Rendering for the data commands (backfill, verify, rollback, bench backfill): rich progress bars
with rate and ETA and rich tables on a terminal, nothing but the result on a pipe, JSON for --json
(errors included). The library returns reports and takes a progress callback; this prints them."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from io import StringIO
from typing import Any, Final

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from coherence_sql.commands.output import as_json
from coherence_sql.transfer.backfill import BackfillReport, Normalisation
from coherence_sql.transfer.progress import Progress as ProgressCallback
from coherence_sql.transfer.snapshot import Problem
from coherence_sql.transfer.verify import (
    FIELD,
    INVARIANT,
    MISSING_IN_POSTGRES,
    Difference,
    EntityCounts,
    JournalBacklog,
    VerifyReport,
)
from coherence_sql.transfer.verify.report import AGGREGATE, DEAD_LETTERS_HELP, PROBLEMS

__all__ = [
    "backfill_notes",
    "backfill_summary",
    "backfill_table",
    "backfill_text",
    "difference_line",
    "interactive",
    "journal_line",
    "print_backfill",
    "print_json",
    "print_renderable",
    "print_verify",
    "problems_text",
    "section_progress",
    "step_progress",
    "text_of",
    "verdict_line",
    "verify_notes",
    "verify_summary",
    "verify_table",
    "verify_text",
]

TEXT_WIDTH: Final = 200  # a table printed to a pipe or a string: wide enough never to wrap a row


def interactive() -> bool:
    """Progress is drawn only when both streams are a terminal: on a pipe, the result alone."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def text_of(renderable: RenderableType) -> str:
    """A rich renderable as plain text (no colour, no wrapping), e.g. for a test or a log."""
    console = Console(file=StringIO(), width=TEXT_WIDTH, color_system=None, force_terminal=False)
    console.print(renderable)
    output = console.file
    assert isinstance(output, StringIO)
    return "\n".join(line.rstrip() for line in output.getvalue().rstrip("\n").split("\n"))


def print_renderable(renderable: RenderableType) -> None:
    """A table on stdout: rich's styling on a terminal, plain text on a pipe."""
    if sys.stdout.isatty():
        Console(highlight=False).print(renderable)
    else:
        print(text_of(renderable))


def print_json(data: Any) -> None:
    """A command's result as one JSON document (errors are cli.py's, through commands/output.py)."""
    print(as_json(data), flush=True)


# -- progress ------------------------------------------------------------------------------------


class _RateColumn(ProgressColumn):
    """Units per second (rich's own speed column counts bytes)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self._unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self._unit}/s", style="progress.data.speed")


@contextmanager
def _bar(unit: str, enabled: bool) -> Iterator[tuple[Progress, Any] | None]:
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        _RateColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=False,
    )
    with bar:
        yield bar, bar.add_task("", total=None)


@contextmanager
def section_progress(label: str, *, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A backfill's progress: called per section (`progress(section, done, total)`), drawn as one bar
    over the whole run, naming the sections under way. None when not `enabled`."""
    with _bar("rows", enabled) as drawn:
        if drawn is None:
            yield None
            return
        bar, task = drawn
        sections: dict[str, tuple[int, int]] = {}

        def progress(section: str, done: int, total: int) -> None:
            sections[section] = (done, total)
            active = ", ".join(name for name, (d, t) in sections.items() if 0 < d < t)
            bar.update(
                task,
                completed=sum(d for d, _ in sections.values()),
                total=sum(t for _, t in sections.values()),
                description=f"{label} {active}".rstrip(),
            )

        yield progress


@contextmanager
def step_progress(label: str, unit: str, *, enabled: bool) -> Iterator[ProgressCallback | None]:
    """Progress of a run in steps (`progress(step, done, total)`: tables read by verify or an export)."""
    with _bar(unit, enabled) as drawn:
        if drawn is None:
            yield None
            return
        bar, task = drawn

        def progress(step: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"{label}: {step}")

        yield progress


# -- backfill ------------------------------------------------------------------------------------


def backfill_summary(report: BackfillReport) -> str:
    return (
        f"{report.records:,} records: {report.inserted:,} inserted, {report.staged - report.inserted:,} already "
        f"present, {report.resumed:,} done by an earlier run, in {report.seconds:.2f} s"
    )


def backfill_text(report: BackfillReport) -> str:
    """The whole report as plain text (a pipe, a log, a test)."""
    return text_of(backfill_table(report)) + "\n" + backfill_notes(report)


def print_backfill(report: BackfillReport) -> None:
    print_renderable(backfill_table(report))
    print(backfill_notes(report))


def backfill_table(report: BackfillReport) -> Table:
    """One row per section, then the checks, the VACUUM/ANALYZE and the total."""
    table = Table(title=f"snapshot sha256 {report.snapshot_sha256}", title_justify="left")
    table.add_column("section")
    for name in ("records", "resumed", "inserted", "present", "seconds", "rows/s"):
        table.add_column(name, justify="right")
    for s in report.sections:
        table.add_row(
            s.section,
            f"{s.records:,}",
            f"{s.resumed:,}",
            f"{s.inserted:,}",
            f"{s.already_present:,}",
            f"{s.seconds:.2f}",
            f"{s.rows_per_second:,.0f}",
        )
    table.add_row("checks", "", "", "", "", f"{report.check_seconds:.2f}", "")
    if report.vacuum_seconds is not None:
        table.add_row("vacuum/analyze (alongside loading)", "", "", "", "", f"{report.vacuum_seconds:.2f}", "")
    rate = report.staged / report.seconds if report.seconds > 0 else 0.0
    table.add_section()
    table.add_row(
        "total",
        f"{report.records:,}",
        f"{report.resumed:,}",
        f"{report.inserted:,}",
        f"{report.staged - report.inserted:,}",
        f"{report.seconds:.2f}",
        f"{rate:,.0f}",
    )
    return table


def backfill_notes(report: BackfillReport) -> str:
    """Under the table: the foreign keys, what was refused and normalised, the quarantine file."""
    lines = [
        "foreign keys: "
        + ("checked per batch, per-row triggers skipped" if report.references_per_batch else "checked per row")
    ]
    if report.problems or report.normalised:
        lines.append(problems_text(report.problems, report.normalised))
    if report.quarantine is not None:
        lines.append(
            f"quarantine: {len(report.problems):,} refused record(s) written to {report.quarantine}"
            + (": fix them there, then backfill that file" if report.problems else "")
        )
    return "\n".join(lines)


def problems_text(problems: Sequence[Problem], normalised: Sequence[Normalisation]) -> str:
    """Every refused record by kind (where, key, reason), then what was normalised, with examples."""
    lines: list[str] = []
    if problems:
        lines.append(f"refused {len(problems):,} record(s):")
        by_kind: dict[str, list[Problem]] = {}
        for problem in problems:
            by_kind.setdefault(problem.kind, []).append(problem)
        for kind, listed in by_kind.items():
            lines.append(f"  {kind} ({len(listed):,}):")
            lines.extend(f"    {p.where()}: {p.reason}" for p in listed)
    if normalised:
        lines.append("normalised (loaded as the stores would have them):")
        for n in normalised:
            lines.append(f"  {n.what}: {n.count:,}" + (", e.g. " + "; ".join(n.examples) if n.examples else ""))
    return "\n".join(lines)


# -- verify --------------------------------------------------------------------------------------


def difference_line(d: Difference) -> str:
    where = f"{d.entity} {d.key}"
    if d.kind == FIELD:
        return f"{where}: {d.field} differs: source {d.source!r}, postgres {d.postgres!r}"
    if d.kind in (AGGREGATE, INVARIANT):
        return f"{where}: {d.field} on {d.side}: stored {d.stated!r}, its records give {d.computed!r}"
    if d.kind in PROBLEMS:
        return f"{where}: on {d.side}: {d.reason}"
    if d.kind == MISSING_IN_POSTGRES:
        return f"{where}: missing in PostgreSQL (source has {d.source!r})"
    return f"{where}: missing in the source (PostgreSQL has {d.postgres!r})"


def journal_line(journal: JournalBacklog) -> str:
    if not journal.exists:
        return f"journal {journal.path}: none there (nothing pending, no dead letters)"
    state = f"journal {journal.path}: {journal.pending:,} pending, {journal.dead_letters:,} dead letters"
    if journal.clean:
        return state
    return (
        f"{state} - FAILED: PostgreSQL is behind or missing writes. Run `coherence-sql reconcile "
        f"--journal {journal.path}` (replays what is pending, lists the dead letters); for each dead "
        f"letter see {DEAD_LETTERS_HELP}; then verify again"
    )


def verify_summary(report: VerifyReport) -> str:
    verdict = "ok" if report.within_threshold else "above the threshold"
    journal = ""
    if report.journal is not None:
        journal = f"; journal: {report.journal.pending:,} pending, {report.journal.dead_letters:,} dead letters" + (
            "" if report.journal.clean else " (fails)"
        )
    return (
        f"{report.mismatch_count:,} of {report.compared_count:,} records mismatched ({report.mismatch_percent:.4f}%, "
        f"threshold {report.threshold_percent:g}%: {verdict}){journal} in {report.seconds:.2f} s"
    )


def verify_text(report: VerifyReport, limit: int | None = 200) -> str:
    """The whole report as plain text (a pipe, a log, a test)."""
    return text_of(verify_table(report)) + "\n" + verify_notes(report, limit)


def print_verify(report: VerifyReport, limit: int | None = 200) -> None:
    print_renderable(verify_table(report))
    print(verify_notes(report, limit))


def verify_table(report: VerifyReport) -> Table:
    """The counts per entity and their total."""
    sample = "" if report.sample_percent >= 100 else f", sample {report.sample_percent:g}%"
    table = Table(title=f"verify {report.source} against {report.target}{sample}", title_justify="left")
    table.add_column("entity")
    for name in ("compared", "missing in pg", "missing in src", "differing", "aggregates", "problems"):
        table.add_column(name, justify="right")

    def row(name: str, c: EntityCounts) -> None:
        table.add_row(
            name,
            *(
                f"{n:,}"
                for n in (c.compared, c.missing_in_postgres, c.missing_in_source, c.differing, c.aggregates, c.problems)
            ),
        )

    for name, counts in report.entities.items():
        row(name, counts)
    for name in report.not_compared:
        table.add_row(name, "(not in the source)")
    totals = EntityCounts()
    for c in report.entities.values():
        totals.compared += c.compared
        totals.missing_in_postgres += c.missing_in_postgres
        totals.missing_in_source += c.missing_in_source
        totals.differing += c.differing
        totals.aggregates += c.aggregates
        totals.problems += c.problems
    table.add_section()
    row("total", totals)
    return table


def verify_notes(report: VerifyReport, limit: int | None = 200) -> str:
    """Under the table: the rate and verdict, the journal, every difference (up to `limit`), the verdict."""
    verdict = "OK" if report.within_threshold else "ABOVE THE THRESHOLD"
    lines = [
        f"mismatch rate {report.mismatch_percent:.4f}% ({report.mismatch_count:,} of {report.compared_count:,} "
        f"records) - {verdict} (threshold {report.threshold_percent:g}%) in {report.seconds:.2f} s"
    ]
    if report.journal is not None:
        lines.append(journal_line(report.journal))
    if report.differences:
        shown = report.differences if limit is None or limit <= 0 else report.differences[:limit]
        lines.append(f"differences ({len(report.differences):,}):")
        lines.extend(f"  {difference_line(d)}" for d in shown)
        if len(shown) < len(report.differences):
            lines.append(f"  … {len(report.differences) - len(shown):,} more (--limit 0 or --json lists all)")
    lines.append(verdict_line(report))
    return "\n".join(lines)


def verdict_line(report: VerifyReport) -> str:
    """The last line: PASSED, or FAILED and every reason."""
    if report.passed:
        return "verify: PASSED"
    reasons = []
    if not report.within_threshold:
        reasons.append(
            f"{report.mismatch_count:,} mismatched records ({report.mismatch_percent:.4f}%) above the "
            f"{report.threshold_percent:g}% threshold"
        )
    if report.journal is not None and not report.journal.clean:
        reasons.append(
            f"the journal holds {report.journal.pending:,} pending writes and {report.journal.dead_letters:,} "
            "dead letters"
        )
    return "verify: FAILED: " + "; ".join(reasons)
