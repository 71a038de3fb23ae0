"""Dirty snapshots: every problem in one pass, nothing valid lost, nothing invalid dropped silently;
hostile files stop at once with one clear line (exit 2, never a traceback)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coherence_sql.cli import main
from coherence_sql.commands.render import backfill_text
from coherence_sql.errors import SnapshotError
from coherence_sql.schema import migrate
from coherence_sql.transfer.backfill import DirtySnapshotError, backfill
from coherence_sql.transfer.rollback import export_snapshot
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import load_snapshot, parse_snapshot
from coherence_sql.transfer.verify import verify
from tests.transfer.test_backfill import TABLES, coherence_sql, content, database_state, small_snapshot

STRANGER = "00000000-0000-0000-0000-000000003039"


class Dirty:
    """A sample snapshot's JSON spoiled in many ways at once, with what the backfill must refuse
    (section, file index → kind) and, for the quarantine round trip, how to fix each refused record."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = small_snapshot(seed=5).to_json()
        self.original = copy.deepcopy(self.data)
        self.refused: dict[tuple[str, int], str] = {}
        self.fixes: dict[tuple[str, int], Any] = {}  # → the fixed record, or None: drop it
        d = self.data
        contributors, assets, contributions = d["contributors"], d["assets"], d["contributions"]

        # Parents refused: a bad e-mail (the model refuses it), an unknown asset type (likewise), a
        # NUL in a description (the stores' rules refuse it). Their contributions are refused too.
        self.spoil("contributors", 1, "invalid", email="not-an-email", fixed={"email": "fixed-1@example.org"})
        self.spoil("assets", 2, "invalid", type="SPACESHIP", fixed={"type": "DATA"})
        self.spoil("assets", 3, "invalid", description="bad\u0000text", fixed={"description": "fixed"})
        bad_parents = {contributors[1]["id"], assets[2]["id"], assets[3]["id"]}
        for i, c in enumerate(contributions):
            if c["contributor_id"] in bad_parents or c["asset_id"] in bad_parents:
                self.refused["contributions", i] = "parent refused"
                self.fixes["contributions", i] = copy.deepcopy(c)  # loads once its parent does
        clean = [i for i, c in enumerate(contributions) if ("contributions", i) not in self.refused]
        a, b, c, e, f, g, h, k = clean[:8]
        self.spoil("contributions", a, "invalid", cost_amount="12.345", fixed={"cost_amount": "12.35"})
        self.spoil("contributions", b, "invalid", cost_amount="-5.00", fixed={"cost_amount": "5.00"})
        self.spoil(
            "contributions", c, "orphan", contributor_id=STRANGER, fixed={"contributor_id": contributors[0]["id"]}
        )
        self.spoil(
            "contributions",
            e,
            "invalid",
            timestamp="9999-12-31T23:59:59-05:00",
            fixed={"timestamp": "2026-02-01T00:00:00"},
        )
        self.spoil("contributions", f, "invalid", coherence_score=float("nan"), fixed={"coherence_score": 0.5})
        self.spoil("contributions", g, "invalid", cost_amount="1e999999", fixed={"cost_amount": "1.00"})
        self.spoil("contributions", h, "invalid", metadata=[1, 2], fixed={"metadata": {}})
        twin = {**contributions[k], "cost_amount": "3.00"}
        self.append("contributions", twin, "duplicate id", fixed={**twin, "id": "00000000-0000-0000-0000-0000000000d1"})
        self.append("contributions", "garbage", "invalid", fixed=None)  # the operator drops it

        twin_email = {
            **contributors[4],
            "id": "00000000-0000-0000-0000-0000000000c1",
            "email": contributors[2]["email"],
        }
        self.append("contributors", twin_email, "duplicate email", fixed={**twin_email, "email": "twin@example.org"})
        twin_id = {**contributors[5], "email": "other@example.org"}
        self.append(
            "contributors", twin_id, "duplicate id", fixed={**twin_id, "id": "00000000-0000-0000-0000-0000000000c2"}
        )

        self.append(
            "edges",
            [["npm", "left-pad"], ["NPM", "Left-Pad"]],
            "self-edge",
            fixed=[["npm", "left-pad"], ["npm", "right-pad"]],
        )
        self.append("edges", "abcd", "malformed", fixed=None)
        first = d["edges"][0]
        d["edges"].append([[first[0][0].upper(), first[0][1].upper()], first[1]])  # a duplicate: merged, not refused

        self.spoil("agent_tasks", 3, "invalid", direction="   ", fixed={"direction": "fixed direction"})
        self.spoil("agent_tasks", 4, "invalid", task_type="dance", fixed={"task_type": "spec"})
        twin_task = {**d["agent_tasks"][6], "direction": "again"}
        self.append("agent_tasks", twin_task, "duplicate id", fixed={**twin_task, "id": "task_fixed_twin"})

        self.append(
            "projects",
            {"name": "x", "ecosystem": "npm", "version": 3, "description": "d"},
            "invalid",
            fixed={"name": "x", "ecosystem": "npm", "version": "3", "description": "d"},
        )

    def spoil(self, section: str, index: int, kind: str, *, fixed: dict[str, Any], **change: Any) -> None:
        record = self.data[section][index]
        self.fixes[section, index] = {**record, **fixed}
        record.update(change)
        self.refused[section, index] = kind

    def append(self, section: str, record: Any, kind: str, *, fixed: Any) -> None:
        self.data[section].append(record)
        index = len(self.data[section]) - 1
        self.refused[section, index] = kind
        self.fixes[section, index] = fixed

    def valid(self) -> dict[str, Any]:
        """The snapshot's records that must load, as a snapshot (the merged duplicate edge left out)."""
        out: dict[str, Any] = {}
        for section, records in self.data.items():
            out[section] = [r for i, r in enumerate(records) if (section, i) not in self.refused]
        out["edges"] = out["edges"][:-1]
        return out

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.data))  # NaN as the JSON token NaN, as Python writes it
        return path


async def ids(dsn: str, table: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {str(r[0]) for r in await conn.fetch(f"SELECT id FROM {table}")}
    finally:
        await conn.close()


def expected_ids(data: dict[str, Any], section: str) -> set[str]:
    return {r["id"] for r in data[section]}


def with_totals(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with each asset's stated total_cost the sum of its contributions there."""
    sums: dict[str, Decimal] = {}
    for c in data["contributions"]:
        sums[c["asset_id"]] = sums.get(c["asset_id"], Decimal("0.00")) + Decimal(c["cost_amount"])
    assets = [{**a, "total_cost": str(sums.get(a["id"], Decimal("0.00")))} for a in data["assets"]]
    return {**data, "assets": assets}


# -- one pass --------------------------------------------------------------------------------------


async def test_one_run_lists_every_problem_and_writes_nothing(clean_dsn: str, tmp_path: Path) -> None:
    dirty = Dirty()
    path = dirty.write(tmp_path / "dirty.json")

    with pytest.raises(DirtySnapshotError) as caught:
        await backfill(clean_dsn, path)

    found = {(p.section, p.index): p.kind for p in caught.value.report.problems}
    assert found == dirty.refused
    message = str(caught.value)
    assert "has more than two decimal places" in message
    assert f"the contributor {STRANGER} is neither in the snapshot nor in PostgreSQL" in message
    assert "a project cannot depend on itself: npm/left-pad" in message
    assert "was refused (assets[2])" in message
    assert "out of range when converted to UTC" in message
    assert "duplicate email" in message
    normalised = {n.what: n for n in caught.value.report.normalised}
    merged = normalised["edges: duplicates merged (an edge counts once)"]
    assert merged.count == 1
    assert f"edges[{len(dirty.data['edges']) - 1}] repeats edges[0]" in merged.examples[0]
    assert normalised["assets: total_cost recomputed from the contributions"].count >= 1  # refused ones left out
    state = await database_state(clean_dsn)
    assert all(state[table][0] == 0 for table in TABLES)


async def test_the_cli_lists_every_problem_and_exits_2_without_a_quarantine(clean_dsn: str, tmp_path: Path) -> None:
    dirty = Dirty()
    path = dirty.write(tmp_path / "dirty.json")

    result = await coherence_sql("--database-url", clean_dsn, "backfill", str(path))

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for section, index in dirty.refused:
        assert f"{section}[{index}]" in result.stderr
    assert f"{len(dirty.refused)} record(s) refused, nothing was written" in result.stderr.splitlines()[-1]
    assert "edges: duplicates merged (an edge counts once): 1" in result.stderr
    state = await database_state(clean_dsn)
    assert all(state[table][0] == 0 for table in TABLES)


# -- the quarantine --------------------------------------------------------------------------------


async def test_quarantine_loads_every_valid_record_and_keeps_the_refused_ones_to_fix(
    clean_dsn: str, tmp_path: Path
) -> None:
    dirty = Dirty()
    path = dirty.write(tmp_path / "dirty.json")
    quarantine = tmp_path / "refused.json"

    result = await coherence_sql(
        "--database-url", clean_dsn, "backfill", str(path), "--quarantine", str(quarantine), "--json"
    )

    assert result.returncode == 1, result.stderr  # loaded, with records awaiting a fix
    report = json.loads(result.stdout)
    assert report["refused"] == len(dirty.refused)
    assert report["quarantine"] == str(quarantine)
    # Every valid record is in PostgreSQL, and no refused one.
    valid = dirty.valid()
    for table in ("contributors", "assets", "contributions", "agent_tasks"):
        assert await ids(clean_dsn, table) == expected_ids(valid, table), table
    checked = await verify(parse_snapshot(with_totals(valid)), clean_dsn, threshold_percent=0.0)
    assert checked.differences == []

    # The file holds exactly the refused records, as they were, each with its reason.
    held = json.loads(quarantine.read_text())
    listed = {(p["section"], p["source_index"]): p for p in held["problems"]}
    assert {key: p["kind"] for key, p in listed.items()} == dirty.refused
    for (section, source_index), problem in listed.items():
        assert problem["reason"]
        original = dirty.data[section][source_index]
        record = held[section][problem["index"]]
        if isinstance(original, float) or (isinstance(original, dict) and any(v != v for v in original.values())):
            continue  # NaN never equals itself
        assert record == original
    assert sum(len(held[s]) for s in held if s != "problems") == len(dirty.refused)

    # Fixed in place and backfilled, the quarantined records load; the other run's rows stay.
    fixed = copy.deepcopy(held)
    for section in [s for s in fixed if s != "problems"]:
        fixed[section] = []
    for problem in held["problems"]:
        repaired = dirty.fixes[problem["section"], problem["source_index"]]
        if repaired is not None:
            fixed[problem["section"]].append(repaired)
    quarantine.write_text(json.dumps(fixed))

    again = await coherence_sql(
        "--database-url", clean_dsn, "backfill", str(quarantine), "--quarantine", str(tmp_path / "none.json")
    )

    assert again.returncode == 0, again.stderr + again.stdout
    assert json.loads((tmp_path / "none.json").read_text())["problems"] == []
    everything = {s: valid[s] + fixed.get(s, []) for s in valid}
    for table in ("contributors", "assets", "contributions", "agent_tasks"):
        assert await ids(clean_dsn, table) == expected_ids(everything, table), table
    checked = await verify(parse_snapshot(with_totals(everything)), clean_dsn, threshold_percent=0.0)
    assert checked.differences == []


async def test_a_quarantined_run_is_idempotent_and_resumes_by_the_snapshot_digest(
    clean_dsn: str, tmp_path: Path
) -> None:
    dirty = Dirty()
    path = dirty.write(tmp_path / "dirty.json")

    first = await backfill(clean_dsn, path, quarantine=tmp_path / "q1.json")
    before = await database_state(clean_dsn)
    second = await backfill(clean_dsn, path, quarantine=tmp_path / "q2.json")

    assert first.inserted > 0
    assert second.inserted == 0
    assert second.resumed == first.records
    assert await database_state(clean_dsn) == before
    assert (tmp_path / "q1.json").read_bytes() == (tmp_path / "q2.json").read_bytes()


async def test_a_contribution_whose_asset_only_postgresql_has_is_not_an_orphan(clean_dsn: str, tmp_path: Path) -> None:
    snapshot = small_snapshot()
    data = snapshot.to_json()
    await backfill(clean_dsn, parse_snapshot({"contributors": data["contributors"], "assets": data["assets"]}))
    children = {
        "contributions": data["contributions"] + [{**data["contributions"][0], "id": STRANGER, "asset_id": STRANGER}]
    }
    (tmp_path / "children.json").write_text(json.dumps(children))

    report = await backfill(clean_dsn, tmp_path / "children.json", quarantine=tmp_path / "q.json")

    assert [(p.section, p.index, p.kind) for p in report.problems] == [("contributions", 300, "orphan")]
    assert report.section("contributions").inserted == 300


async def test_a_snapshot_object_quarantines_its_models(clean_dsn: str, tmp_path: Path) -> None:
    snapshot = small_snapshot()
    bad = snapshot.contributions[7].model_copy(update={"cost_amount": Decimal("1.234")})
    snapshot.contributions[7] = bad

    report = await backfill(clean_dsn, snapshot, quarantine=tmp_path / "q.json")

    assert [(p.section, p.index) for p in report.problems] == [("contributions", 7)]
    held = load_snapshot(tmp_path / "q.json")  # the reader ignores the reasons
    assert [c.id for c in held.contributions] == [bad.id]
    assert await ids(clean_dsn, "contributions") == {str(c.id) for c in snapshot.contributions if c.id != bad.id}


def test_the_quarantine_must_not_be_the_snapshot_or_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{}")
    for target in (path, tmp_path):
        with pytest.raises(SnapshotError, match="quarantine file"):
            asyncio.run(backfill("postgresql://nobody@127.0.0.1:9/none", path, quarantine=target))


# -- hostile files ---------------------------------------------------------------------------------

DEEP = 100_000
HOSTILE: dict[str, tuple[bytes, str]] = {
    "deep array": (b"[" * DEEP + b"]" * DEEP, "nested too deep: more than 500 levels at line 1 column 501"),
    "deep in a section": (b'{"projects": [' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"]}", "nested too deep"),
    "binary garbage": (bytes(range(256)) * 4, "not UTF-8 text: byte 0x80 at line 2 column 118"),
    "latin-1": ('{"projects": [{"name": "café"}]}'.encode("latin-1"), "not UTF-8 text: byte 0xe9 at line 1 column 28"),
    "truncated": (b'{"projects": [', "not valid JSON: Expecting value at line 1 column 15"),
    "empty": (b"", "not valid JSON: Expecting value at line 1 column 1"),
    "array": (b"[]", "the top level must be a JSON object, got list"),
    "string": (b'"hello"', "the top level must be a JSON object, got str"),
    "null": (b"null", "the top level must be a JSON object, got NoneType"),
    "section of the wrong type": (b'{"contributions": {"a": 1}}', "section 'contributions' must be a list, got dict"),
    "unknown section": (b'{"secrets": []}', "unknown sections ['secrets']"),
    "huge integer": (
        b'{"projects": [{"dependency_count": 1' + b"0" * 5000 + b"}]}",
        "a number with more than 4300 digits at line 1 column 36",
    ),
}


@pytest.mark.parametrize("command", ["backfill", "verify"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, name: str
) -> None:
    data, message = HOSTILE[name]
    path = tmp_path / "hostile.json"
    path.write_bytes(data)

    status = main(["--database-url", "postgresql://nobody@127.0.0.1:9/none", command, str(path)])

    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1, err[:2000]
    assert err.startswith(f"coherence-sql: SnapshotError: {path}: ")
    assert message in err
    with pytest.raises(SnapshotError, match="^" + str(path)):
        load_snapshot(path)


def test_an_unreadable_path_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for path in (tmp_path / "missing.json", tmp_path):
        status = main(["--database-url", "postgresql://nobody@127.0.0.1:9/none", "backfill", str(path)])
        err = capsys.readouterr().err
        assert status == 2
        assert err.count("\n") == 1
        assert "cannot read the snapshot" in err


async def test_a_deep_file_fails_cleanly_in_a_fresh_interpreter(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(b'{"edges": ' + b"[" * DEEP + b"]" * DEEP + b"}")

    result = await coherence_sql("--database-url", "postgresql://nobody@127.0.0.1:9/none", "backfill", str(path))

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "nested too deep" in result.stderr


async def test_hostile_values_in_records_are_each_that_records_problem(clean_dsn: str, tmp_path: Path) -> None:
    """Values that pass JSON but no store: each is collected with its record, none stops the run."""
    data = small_snapshot().to_json()
    spoils: list[tuple[str, int, dict[str, Any]]] = [
        ("contributions", 0, {"cost_amount": float("inf")}),
        ("contributions", 1, {"cost_amount": "NaN"}),
        ("contributions", 2, {"cost_amount": 10**400}),
        ("contributions", 3, {"coherence_score": 1e308}),
        ("contributions", 4, {"timestamp": "0001-01-01T00:00:00+05:00"}),
        ("contributors", 0, {"hourly_rate": "-Infinity"}),
        ("contributors", 2, {"created_at": [12]}),
        ("assets", 0, {"id": "not-a-uuid"}),
        ("github_contributors", 0, {"contributions_count": 10**30}),
        ("github_organizations", 0, {"login": None}),
        ("agent_tasks", 0, {"progress_pct": "lots"}),
        ("agent_tasks", 1, {"claimed_at": "9999-12-31T23:00:00-02:00"}),
        ("projects", 0, {"name": ["a"]}),
    ]
    for section, index, change in spoils:
        data[section][index].update(change)
    data["edges"].append([["npm", 1], ["npm", "b"]])
    path = tmp_path / "hostile-values.json"
    path.write_text(json.dumps(data))

    report = await backfill(clean_dsn, path, quarantine=tmp_path / "q.json")

    refused = {(p.section, p.index) for p in report.problems}
    assert {(s, i) for s, i, _ in spoils} | {("edges", len(data["edges"]) - 1)} <= refused
    assert all(p.reason for p in report.problems)
    held = json.loads((tmp_path / "q.json").read_text())
    assert len(held["problems"]) == len(report.problems)


async def test_the_library_raises_snapshot_error_for_hostile_files(clean_dsn: str, tmp_path: Path) -> None:
    for name, (data, message) in HOSTILE.items():
        path = tmp_path / f"{name}.json"
        path.write_bytes(data)
        with pytest.raises(SnapshotError) as caught:
            await backfill(clean_dsn, path)
        assert message in str(caught.value), name
        assert "\n" not in str(caught.value)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_a_deeply_nested_refused_record_is_quarantined_as_it_was(clean_dsn: str, tmp_path: Path) -> None:
    data = small_snapshot().to_json()
    data["contributions"][4].update(cost_amount="1.234", metadata=nested(850))
    path = tmp_path / "deep-record.json"
    path.write_text(json.dumps(data))

    report = await backfill(clean_dsn, path, quarantine=tmp_path / "q.json")

    assert [(p.section, p.index) for p in report.problems] == [("contributions", 4)]
    held = json.loads((tmp_path / "q.json").read_text())
    assert held["contributions"] == [data["contributions"][4]]


async def test_metadata_too_deep_to_encode_is_that_records_problem(clean_dsn: str, tmp_path: Path) -> None:
    snapshot = small_snapshot()
    deep = snapshot.contributions[9].model_copy(update={"metadata": nested(5000)})  # no JSON file could hold it
    snapshot.contributions[9] = deep

    with pytest.raises(SnapshotError, match="cannot be written as JSON to compute its digest"):
        await backfill(clean_dsn, snapshot)
    report = await backfill(clean_dsn, snapshot, quarantine=tmp_path / "q.json", snapshot_sha256="ab" * 32)

    assert [(p.section, p.index, p.reason) for p in report.problems] == [
        ("contributions", 9, "metadata is nested too deep to encode as JSON")
    ]
    held = json.loads((tmp_path / "q.json").read_text())
    assert held["contributions"][0]["key"] == f"id {deep.id}"
    assert "Maximum serialization depth" in held["contributions"][0]["unserialisable"]
    assert await ids(clean_dsn, "contributions") == {str(c.id) for c in snapshot.contributions if c.id != deep.id}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"timestamp": "9999-12-31T23:59:59-05:00"},
            "contributions[3].timestamp: 9999-12-31T23:59:59-05:00 is out of range",
        ),
        (
            {"cost_amount": "1e999999"},
            "contributions[3].cost_amount: out of range for DECIMAL(15,2) (input Decimal('1E+999999'))",
        ),
        ({"cost_amount": "Infinity"}, "contributions[3].cost_amount: Input should be a finite number"),
        ({"coherence_score": float("nan")}, "contributions[3].coherence_score: Input should be"),
    ],
)
def test_verify_reads_a_hostile_value_as_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], message: str
) -> None:
    data = small_snapshot().to_json()
    data["contributions"][3].update(change)
    path = tmp_path / "values.json"
    path.write_text(json.dumps(data))

    status = main(["--database-url", "postgresql://nobody@127.0.0.1:9/none", "verify", str(path)])

    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1, err
    assert f"coherence-sql: SnapshotError: {path}: {message}" in err


async def test_a_cancelled_quarantined_run_resumes_to_the_end_state_of_an_uninterrupted_one(
    clean_dsn: str, database_factory: Any, tmp_path: Path
) -> None:
    dirty = Dirty()  # records refused while parsing: later rows keep their file positions as ords
    path = dirty.write(tmp_path / "dirty.json")
    reference = await database_factory()
    await migrate(reference)
    await backfill(reference, path, batch_size=20, jobs=1, quarantine=tmp_path / "reference.json")
    seen = 0
    three_batches = asyncio.Event()

    def progress(section: str, done: int, total: int) -> None:
        nonlocal seen
        if section == "contributions" and done > 0:
            seen += 1
            if seen == 3:
                three_batches.set()

    task = asyncio.ensure_future(
        backfill(clean_dsn, path, batch_size=20, jobs=2, progress=progress, quarantine=tmp_path / "q.json")
    )
    await asyncio.wait_for(three_batches.wait(), timeout=60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    partial = await database_state(clean_dsn)
    assert partial["contributions"][0] > 0

    resumed = await backfill(clean_dsn, path, batch_size=20, jobs=2, quarantine=tmp_path / "q.json")

    assert resumed.resumed == sum(partial[t][0] for t in TABLES) > 0
    assert content(await export_snapshot(clean_dsn)) == content(await export_snapshot(reference))
    assert (tmp_path / "q.json").read_bytes() == (tmp_path / "reference.json").read_bytes()


async def test_the_report_lists_what_it_normalised_with_counts_and_examples(clean_dsn: str) -> None:
    data = small_snapshot().to_json()
    project = data["projects"][0]
    data["projects"].append({**project, "name": project["name"].upper(), "version": "9.9.9"})  # an upsert
    data["projects"][1]["dependency_count"] = 999
    data["assets"][0]["total_cost"] = "0.01"
    data["edges"] += [data["edges"][3], data["edges"][3]]
    data["edges"].append([["npm", "nowhere-a"], ["npm", "nowhere-b"]])
    data["github_contributes_to"].append(data["github_contributes_to"][0])

    report = await backfill(clean_dsn, parse_snapshot(data))

    found = {n.what: n for n in report.normalised}
    assert found["projects: a key repeated (the last record wins, as repeated upserts)"].count == 1
    upsert = found["projects: a key repeated (the last record wins, as repeated upserts)"].examples[0]
    assert upsert.startswith(f"projects[{len(data['projects']) - 1}] replaces projects[0]")
    merged = found["edges: duplicates merged (an edge counts once)"]
    assert merged.count == 2
    assert len(merged.examples) == 2
    assert found["github_contributes_to: duplicates merged"].count == 1
    recount = found["projects: dependency_count recomputed from the edges"].examples
    assert any(e.startswith("projects[1] ") and "999 stated" in e for e in recount)
    totals = found["assets: total_cost recomputed from the contributions"]
    assert totals.count == 1
    assert "0.01 stated" in totals.examples[0]
    parked = found["edges: parked as pending until their project arrives (unless PostgreSQL has it)"]
    assert parked.count >= 1
    assert len(parked.examples) <= 3
    assert report.problems == []
    assert "normalised (loaded as the stores would have them):" in backfill_text(report)


# -- nothing lost, nothing dropped silently (property) ---------------------------------------------

HOSTILE_VALUES = [
    None,
    "",
    "NaN",
    float("inf"),
    -1,
    "-0.001",
    "12.345",
    10**30,
    True,
    [1],
    {},
    "x" * 300,
    "a\u0000b",
    "\ud800",
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+01:00",
    "not-an-email",
    "00000000-0000-0000-0000-00000000beef",
]
FIELDS = {
    "projects": ["name", "ecosystem", "version", "description", "homepage_url", "dependency_count"],
    "contributors": ["id", "type", "name", "email", "hourly_rate", "created_at", "metadata"],
    "assets": ["id", "type", "description", "name", "total_cost", "created_at", "metadata"],
    "contributions": ["id", "contributor_id", "asset_id", "cost_amount", "coherence_score", "timestamp", "metadata"],
    "github_contributors": ["id", "login", "contributions_count", "created_at", "updated_at"],
    "github_organizations": ["id", "login", "type", "created_at"],
    "agent_tasks": ["id", "direction", "task_type", "status", "progress_pct", "context", "claimed_at"],
}
# Sections whose repeated keys are merged (reported as normalisations, not refused).
MERGED = {
    "projects": "projects: a key repeated (the last record wins, as repeated upserts)",
    "github_contributors": "github_contributors: a key repeated (the last record wins, as repeated upserts)",
    "github_organizations": "github_organizations: a key repeated (the last record wins, as repeated upserts)",
    "edges": "edges: duplicates merged (an edge counts once)",
    "github_contributes_to": "github_contributes_to: duplicates merged",
}
ROW_COUNTS = {
    "projects": "SELECT count(*) FROM projects",
    "edges": "SELECT (SELECT count(*) FROM project_dependencies) + (SELECT count(*) FROM pending_dependencies)",
    "contributors": "SELECT count(*) FROM contributors",
    "assets": "SELECT count(*) FROM assets",
    "contributions": "SELECT count(*) FROM contributions",
    "github_contributors": "SELECT count(*) FROM github_contributors",
    "github_organizations": "SELECT count(*) FROM github_organizations",
    "github_contributes_to": "SELECT count(*) FROM github_contributes_to",
    "agent_tasks": "SELECT count(*) FROM agent_tasks",
}
TINY = sample_snapshot(projects=8, edges=12, contributors=5, assets=4, contributions=20, tasks=5, seed=11).to_json()


@st.composite
def spoiled(draw: st.DrawFn) -> dict[str, Any]:
    """The tiny snapshot with a few fields set to hostile values and a few records repeated."""
    data = copy.deepcopy(TINY)
    for _ in range(draw(st.integers(1, 6))):
        section = draw(st.sampled_from(sorted(FIELDS)))
        if not data[section]:
            continue
        record = data[section][draw(st.integers(0, len(data[section]) - 1))]
        record[draw(st.sampled_from(FIELDS[section]))] = draw(st.sampled_from(HOSTILE_VALUES))
    for _ in range(draw(st.integers(0, 3))):
        section = draw(st.sampled_from(sorted(ROW_COUNTS)))
        if data[section]:
            data[section].append(copy.deepcopy(draw(st.sampled_from(data[section]))))
    if draw(st.booleans()):
        data["edges"].append(draw(st.sampled_from([[["npm", "a"], ["NPM", "A"]], "abcd", [["npm", 1], ["npm", "b"]]])))
    return data


# DIRTY_EXAMPLES=400 for a deeper search (400 passed, 94 s); each example is a backfill.
@settings(
    max_examples=int(os.environ.get("DIRTY_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=spoiled())
def test_every_record_is_loaded_refused_or_reported_merged(
    migrated_dsn: str,
    _truncate_sql: str,  # noqa: PT019 - its value is the TRUNCATE each example runs first
    tmp_path: Path,
    data: dict[str, Any],
) -> None:
    path = tmp_path / "spoiled.json"
    path.write_text(json.dumps(data))
    quarantine = tmp_path / "q.json"

    async def run() -> tuple[Any, dict[str, int]]:
        conn = await asyncpg.connect(migrated_dsn)
        try:
            await conn.execute(_truncate_sql)
            report = await backfill(migrated_dsn, path, quarantine=quarantine, jobs=1)
            rows = {section: await conn.fetchval(sql) for section, sql in ROW_COUNTS.items()}
        finally:
            await conn.close()
        return report, rows

    report, rows = asyncio.run(run())

    held = json.loads(quarantine.read_text())
    merged = {n.what: n.count for n in report.normalised}
    for section, records in data.items():
        refused = sum(1 for p in report.problems if p.section == section)
        loaded = report.section(section).records
        assert len(records) == loaded + refused + merged.get(MERGED.get(section, ""), 0), section
        assert rows[section] == loaded, section  # a clean database: every loaded record is a row
        assert len(held.get(section, [])) == refused, section
    assert len(held["problems"]) == len(report.problems)
