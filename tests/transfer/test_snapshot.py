"""JSON snapshots of the in-memory stores: the API's file format, atomic saves, loud all-or-nothing loads."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from coherence_sql.errors import SnapshotError
from coherence_sql.models import TaskStatus
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.transfer import snapshot as snapshot_module
from coherence_sql.transfer.snapshot import (
    GRAPH_SECTIONS,
    ContributesTo,
    load_into,
    load_snapshot,
    restore_snapshot,
    save_snapshot,
)
from tests.stores.records import (
    T0,
    asset,
    contribute,
    contributor,
    github_contributor,
    github_organization,
    project,
    task,
)


async def populated() -> tuple[MemoryGraphStore, MemoryAgentTaskStore]:
    graph, tasks = MemoryGraphStore(), MemoryAgentTaskStore()
    await graph.upsert_project(project("React", ecosystem="NPM", description="UI"))
    await graph.upsert_project(project("lodash"))
    await graph.add_dependency("NPM", "React", "npm", "Lodash")
    await graph.add_dependency("npm", "react", "pypi", "not-yet")
    alice = await graph.create_contributor(contributor(1, hourly_rate=Decimal("10")))
    code = await graph.create_asset(asset(1))
    await contribute(graph, alice.id, code.id, "100.1", 0.9, metadata={"has_tests": True})
    await contribute(graph, alice.id, code.id, "0.20", 0.5, seconds=1)
    await graph.upsert_github_contributor(github_contributor("octocat"))
    await graph.upsert_github_organization(github_organization("coherence"))
    await graph.add_github_contributes_to("github:octocat", "NPM", "React")
    await tasks.create_task(task(1, context={"source": "test"}))
    await tasks.create_task(task(2, status=TaskStatus.FAILED, output="boom"))
    return graph, tasks


def state(graph: MemoryGraphStore, tasks: MemoryAgentTaskStore | None = None) -> dict[str, Any]:
    return {
        "projects": graph.all_projects(),
        "edges": graph.all_edges(),
        "contributors": graph.all_contributors(),
        "assets": graph.all_assets(),
        "contributions": graph.all_contributions(),
        "github_contributors": graph.all_github_contributors(),
        "github_organizations": graph.all_github_organizations(),
        "github_contributes_to": graph.all_github_contributes_to(),
        "tasks": None if tasks is None else tasks.all_tasks(),
    }


async def test_save_then_load_restores_everything(tmp_path: Path) -> None:
    graph, tasks = await populated()
    path = tmp_path / "graph_store.json"
    save_snapshot(path, graph, tasks)
    new_graph, new_tasks = MemoryGraphStore(), MemoryAgentTaskStore()
    await load_into(path, new_graph, new_tasks)
    assert state(new_graph, new_tasks) == state(graph, tasks)
    react = await new_graph.get_project("npm", "react")
    assert (react.name, react.dependency_count) == ("React", 2)
    assert (await new_graph.get_asset(UUID(int=0xA1))).total_cost == Decimal("100.30")


async def test_saved_file_has_the_apis_keys_in_order_then_agent_tasks(tmp_path: Path) -> None:
    graph, tasks = await populated()
    path = tmp_path / "s.json"
    save_snapshot(path, graph, tasks)
    data = json.loads(path.read_text())
    assert list(data) == [*GRAPH_SECTIONS, "agent_tasks"]
    assert data["edges"] == [[["npm", "react"], ["npm", "lodash"]], [["npm", "react"], ["pypi", "not-yet"]]]
    assert data["github_contributes_to"] == [["github:octocat", ["npm", "react"]]]
    assert (data["projects"][0]["name"], data["projects"][0]["dependency_count"]) == ("React", 2)
    assert data["assets"][0]["total_cost"] == "100.30"
    assert data["contributions"][0]["cost_amount"] == "100.10"
    assert data["contributors"][0]["created_at"] == (T0 + timedelta(seconds=1)).isoformat()  # naive, no Z
    assert [t["id"] for t in data["agent_tasks"]] == [task(1).id, task(2).id]
    assert path.read_text().startswith('{\n"projects": [\n{\n')  # the API's json.dump(..., indent=0)


async def test_graph_only_save_is_exactly_the_apis_format(tmp_path: Path) -> None:
    graph, _ = await populated()
    path = tmp_path / "s.json"
    save_snapshot(path, graph, None)
    assert list(json.loads(path.read_text())) == list(GRAPH_SECTIONS)


async def test_github_save_and_new_store_restore_contributors_orgs_and_edges(tmp_path: Path) -> None:
    """Port of test_github_indexing: save() then a new store on the same path restores them."""
    graph = MemoryGraphStore()
    await graph.upsert_github_contributor(github_contributor("a"))
    await graph.upsert_github_contributor(github_contributor("b"))
    await graph.upsert_github_organization(github_organization("org"))
    await graph.add_github_contributes_to("github:a", "npm", "react")
    path = tmp_path / "graph_store.json"
    save_snapshot(path, graph, None)
    restored = MemoryGraphStore()
    await load_into(path, restored)
    assert len(await restored.list_github_contributors()) == 2
    assert (await restored.get_github_organization("github:org")).login == "org"
    assert [g.id for g in await restored.get_project_github_contributors("npm", "react")] == ["github:a"]


API_FILE: dict[str, Any] = {
    "projects": [
        {"name": "React", "ecosystem": "npm", "version": "18", "description": "UI", "dependency_count": 7},
        {"name": "lodash", "ecosystem": "npm", "version": "4", "description": "utils", "dependency_count": 0},
    ],
    "edges": [[["npm", "react"], ["npm", "lodash"]], [["npm", "react"], ["npm", "lodash"]]],
    "contributors": [
        {
            "id": "00000000-0000-0000-0000-0000000000c1",
            "type": "HUMAN",
            "name": "Alice",
            "email": "alice@coherence.network",
            "wallet_address": None,
            "hourly_rate": None,
            "created_at": "2026-02-15T10:30:00.123456",
        }
    ],
    "assets": [
        {
            "id": "00000000-0000-0000-0000-0000000000a1",
            "type": "CODE",
            "description": "GitHub repository: x/y",
            "total_cost": "100.1",
            "created_at": "2026-02-15T10:30:01",
        }
    ],
    "contributions": [
        {
            "id": "00000000-0000-0000-0000-00000000c0c0",
            "contributor_id": "00000000-0000-0000-0000-0000000000c1",
            "asset_id": "00000000-0000-0000-0000-0000000000a1",
            "cost_amount": "100.1",
            "metadata": {"has_tests": True},
            "coherence_score": 0.9,
            "timestamp": "2026-02-15T10:31:00",
        }
    ],
    "github_contributors": [
        {
            "id": "github:octocat",
            "source": "github",
            "login": "octocat",
            "name": None,
            "avatar_url": None,
            "contributions_count": 3,
            "created_at": "2026-02-15T10:30:00",
            "updated_at": None,
        }
    ],
    "github_organizations": [],
    "github_contributes_to": [["github:octocat", ["npm", "react"]]],
}


async def test_the_apis_own_file_loads_with_counts_and_totals_recomputed(tmp_path: Path) -> None:
    path = tmp_path / "graph_store.json"
    path.write_text(json.dumps(API_FILE, indent=0))
    graph = MemoryGraphStore()
    snapshot = await load_into(path, graph)
    assert snapshot.agent_tasks is None
    assert snapshot.edges == [DependencyEdge("npm", "react", "npm", "lodash")] * 2
    react = await graph.get_project("NPM", "REACT")
    assert (react.name, react.dependency_count) == ("React", 1)  # not the file's 7; duplicate edge once
    code = await graph.get_asset(UUID(int=0xA1))
    assert (code.total_cost, code.name) == (Decimal("100.10"), "GitHub repository: x/y")
    assert (await graph.list_contributions())[0].cost_amount == Decimal("100.10")
    assert [g.login for g in await graph.get_project_github_contributors("npm", "react")] == ["octocat"]


async def test_a_file_without_agent_tasks_leaves_the_task_store_alone(tmp_path: Path) -> None:
    path = tmp_path / "graph_store.json"
    path.write_text(json.dumps(API_FILE))
    graph, tasks = MemoryGraphStore(), MemoryAgentTaskStore()
    await tasks.create_task(task(1))
    await load_into(path, graph, tasks)
    assert [t.id for t in tasks.all_tasks()] == [task(1).id]


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("section", "index", "record", "where"),
    [
        ("contributors", 0, {"email": "not-an-email"}, "contributors[0].email"),
        ("assets", 0, {"type": "SPACESHIP"}, "assets[0].type"),
        ("contributions", 0, {"coherence_score": 1.5}, "contributions[0].coherence_score"),
        ("projects", 1, {"version": None}, "projects[1].version"),
    ],
)
def test_a_record_that_does_not_validate_names_section_index_and_field(
    tmp_path: Path, section: str, index: int, record: dict[str, Any], where: str
) -> None:
    data = json.loads(json.dumps(API_FILE))
    data[section][index].update(record)
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(write(tmp_path, data))
    assert f"bad.json: {where}: " in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["edges"].append([["npm", "a"]]), r"edges\[2\]: expected \[\[from_ecosystem"),
        (lambda d: d["github_contributes_to"].append(["x", "npm/react"]), r"github_contributes_to\[1\]: expected"),
        (lambda d: d.update(projects={"a": 1}), "section 'projects' must be a list"),
        (lambda d: d.update(extra=[]), r"unknown sections \['extra'\]"),
    ],
)
def test_a_malformed_section_fails_the_load(tmp_path: Path, change: Any, message: str) -> None:
    data = json.loads(json.dumps(API_FILE))
    change(data)
    with pytest.raises(SnapshotError, match=message):
        load_snapshot(write(tmp_path, data))


def test_unreadable_files_fail_the_load(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"projects": [')
    with pytest.raises(SnapshotError, match="not valid JSON"):
        load_snapshot(tmp_path / "broken.json")
    with pytest.raises(SnapshotError, match="cannot read"):
        load_snapshot(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(SnapshotError, match="top level must be a JSON object"):
        load_snapshot(tmp_path / "list.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["contributions"][0].update(cost_amount="100.123"), r"contributions\[0\]: InvalidValueError"),
        (
            lambda d: d["contributions"][0].update(asset_id="00000000-0000-0000-0000-0000000000ff"),
            r"contributions\[0\]: UnknownReferenceError: the asset does not exist",
        ),
        (lambda d: d["edges"].append([["npm", "a"], ["NPM", "A"]]), r"edges\[2\]: .*cannot depend on itself"),
        (
            lambda d: d["contributors"].append({**d["contributors"][0], "id": "00000000-0000-0000-0000-0000000000c2"}),
            r"contributors\[1\]: DuplicateError: a contributor with this email",
        ),
    ],
)
async def test_a_record_the_store_refuses_fails_the_load_and_leaves_stores_untouched(
    tmp_path: Path, change: Any, message: str
) -> None:
    data = json.loads(json.dumps(API_FILE))
    data["agent_tasks"] = [task(9).model_dump(mode="json")]
    change(data)
    graph, tasks = await populated()
    before = state(graph, tasks)
    with pytest.raises(SnapshotError, match=message):
        await load_into(write(tmp_path, data), graph, tasks)
    assert state(graph, tasks) == before


async def test_restore_replaces_the_previous_contents(tmp_path: Path) -> None:
    graph, tasks = await populated()
    path = tmp_path / "api.json"
    path.write_text(json.dumps(API_FILE))
    snap = load_snapshot(path)
    await restore_snapshot(snap, graph, tasks)
    assert [p.name for p in graph.all_projects()] == ["React", "lodash"]
    assert len(graph.all_contributions()) == 1
    assert snap.github_contributes_to == [ContributesTo("github:octocat", "npm", "react")]


async def test_save_replaces_an_existing_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    graph, _ = await populated()
    path = tmp_path / "s.json"
    path.write_text("old contents")
    save_snapshot(path, graph, None)
    assert json.loads(path.read_text())["projects"][0]["name"] == "React"
    assert files_in(tmp_path) == ["s.json"]


async def test_failed_save_keeps_the_old_file_and_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph, _ = await populated()
    path = tmp_path / "s.json"
    path.write_text("old contents")

    def half_written(data: Any, out: Any, **kwargs: Any) -> None:
        out.write('{"projects": [')
        raise OSError("disk full")

    monkeypatch.setattr(snapshot_module.json, "dump", half_written)
    with pytest.raises(OSError, match="disk full"):
        save_snapshot(path, graph, None)
    assert path.read_text() == "old contents"
    assert files_in(tmp_path) == ["s.json"]


async def test_save_creates_missing_directories(tmp_path: Path) -> None:
    graph, tasks = await populated()
    path = tmp_path / "logs" / "nested" / "graph_store.json"
    save_snapshot(path, graph, tasks)
    assert load_snapshot(path).agent_tasks is not None
