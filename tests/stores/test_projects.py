"""Projects, dependency edges and search, for every store (ports of the API's test_graph_store.py)."""

from __future__ import annotations

import re

import pytest

from coherence_sql.errors import InvalidValueError
from coherence_sql.models import Project, ProjectSummary
from coherence_sql.stores.protocol import DependencyEdge
from tests.stores.conftest import Stores
from tests.stores.records import project

# -- ports of test_graph_store.py -------------------------------------------------------------


async def test_upsert_then_get_returns_the_version(store: Stores) -> None:
    await store.graph.upsert_project(project("react", version="18.2.0"))
    found = await store.graph.get_project("npm", "react")
    assert found is not None
    assert found.version == "18.2.0"


async def test_get_missing_project_returns_none(store: Stores) -> None:
    assert await store.graph.get_project("npm", "nope") is None


async def test_search_matches_name_and_description(store: Stores) -> None:
    await store.graph.upsert_project(project("react", description="A UI library"))
    await store.graph.upsert_project(project("lodash", description="React utils"))
    names = [s.name for s in await store.graph.search("react")]
    assert names == ["react", "lodash"]


async def test_one_edge_gives_dependency_count_one(store: Stores) -> None:
    await store.graph.upsert_project(project("a"))
    await store.graph.upsert_project(project("b"))
    await store.graph.add_dependency("npm", "a", "npm", "b")
    a = await store.graph.get_project("npm", "a")
    b = await store.graph.get_project("npm", "b")
    assert (a.dependency_count, b.dependency_count) == (1, 0)


async def test_count_projects_goes_zero_one_two(store: Stores) -> None:
    assert await store.graph.count_projects() == 0
    await store.graph.upsert_project(project("a"))
    assert await store.graph.count_projects() == 1
    await store.graph.upsert_project(project("b"))
    assert await store.graph.count_projects() == 2


async def test_count_dependents_counts_incoming_edges(store: Stores) -> None:
    for name in ("app", "react", "lodash"):
        await store.graph.upsert_project(project(name))
    await store.graph.add_dependency("npm", "app", "npm", "react")
    await store.graph.add_dependency("npm", "app", "npm", "lodash")
    assert await store.graph.count_dependents("npm", "react") == 1
    assert await store.graph.count_dependents("npm", "lodash") == 1
    assert await store.graph.count_dependents("npm", "app") == 0


# -- keys and display case ----------------------------------------------------------------------


async def test_get_project_is_case_insensitive_and_keeps_display_case(store: Stores) -> None:
    await store.graph.upsert_project(project("React", ecosystem="NPM"))
    found = await store.graph.get_project("npm", "REACT")
    assert found is not None
    assert (found.ecosystem, found.name) == ("NPM", "React")


async def test_reupsert_in_another_case_replaces_display_case_without_adding(store: Stores) -> None:
    await store.graph.upsert_project(project("React", version="1"))
    await store.graph.upsert_project(project("REACT", ecosystem="Npm", version="2"))
    found = await store.graph.get_project("npm", "react")
    assert (found.ecosystem, found.name, found.version) == ("Npm", "REACT", "2")
    assert await store.graph.count_projects() == 1


async def test_reupserted_project_keeps_its_first_position(store: Stores) -> None:
    await store.graph.upsert_project(project("first-lib", description="x"))
    await store.graph.upsert_project(project("second-lib", description="x"))
    await store.graph.upsert_project(project("FIRST-lib", description="x"))
    assert [s.name for s in await store.graph.search("lib")] == ["FIRST-lib", "second-lib"]


async def test_callers_dependency_count_is_ignored(store: Stores) -> None:
    await store.graph.upsert_project(project("a", dependency_count=42))
    found = await store.graph.get_project("npm", "a")
    assert found.dependency_count == 0


async def test_reupsert_keeps_the_computed_dependency_count(store: Stores) -> None:
    await store.graph.add_dependency("npm", "a", "npm", "b")
    await store.graph.upsert_project(project("a"))
    await store.graph.upsert_project(project("A", dependency_count=0))
    assert (await store.graph.get_project("npm", "a")).dependency_count == 1


@pytest.mark.parametrize(("ecosystem", "name"), [("", "react"), ("npm", "")])
async def test_empty_project_key_is_rejected(store: Stores, ecosystem: str, name: str) -> None:
    with pytest.raises(InvalidValueError, match="must be a non-empty string"):
        await store.graph.upsert_project(project(name, ecosystem=ecosystem))
    assert await store.graph.count_projects() == 0


async def test_overlong_project_name_is_rejected(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="longer than 255"):
        await store.graph.upsert_project(project("x" * 256))
    assert await store.graph.count_projects() == 0


async def test_project_with_nul_in_description_is_rejected(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="NUL"):
        await store.graph.upsert_project(project("a", description="bad\x00text"))
    assert await store.graph.count_projects() == 0


# -- edges ----------------------------------------------------------------------------------------


async def test_edges_recorded_before_their_projects_count_when_projects_appear(store: Stores) -> None:
    await store.graph.add_dependency("npm", "App", "npm", "react")
    await store.graph.add_dependency("npm", "app", "npm", "lodash")
    assert await store.graph.count_dependents("npm", "react") == 1  # neither project exists yet
    await store.graph.upsert_project(project("app"))
    assert (await store.graph.get_project("npm", "app")).dependency_count == 2
    await store.graph.upsert_project(project("react"))
    assert (await store.graph.get_project("npm", "app")).dependency_count == 2
    assert await store.graph.count_dependents("npm", "REACT") == 1


async def test_dependency_count_includes_edges_to_missing_projects(store: Stores) -> None:
    await store.graph.upsert_project(project("app"))
    await store.graph.add_dependency("npm", "app", "pypi", "never-indexed")
    assert (await store.graph.get_project("npm", "app")).dependency_count == 1


async def test_duplicate_edge_in_any_case_is_a_no_op(store: Stores) -> None:
    await store.graph.upsert_project(project("a"))
    await store.graph.add_dependency("npm", "a", "npm", "b")
    await store.graph.add_dependency("NPM", "A", "Npm", "B")
    assert (await store.graph.get_project("npm", "a")).dependency_count == 1
    assert await store.graph.count_dependents("npm", "b") == 1


async def test_self_dependency_is_rejected_in_any_case(store: Stores) -> None:
    await store.graph.upsert_project(project("a"))
    with pytest.raises(InvalidValueError, match="a project cannot depend on itself"):
        await store.graph.add_dependency("npm", "a", "NPM", "A")
    assert (await store.graph.get_project("npm", "a")).dependency_count == 0


async def test_edge_with_empty_key_is_rejected(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="non-empty"):
        await store.graph.add_dependency("npm", "a", "npm", "")
    assert await store.graph.count_dependents("npm", "a") == 0


async def test_same_name_in_two_ecosystems_are_different_projects(store: Stores) -> None:
    await store.graph.upsert_project(project("requests", ecosystem="pypi"))
    await store.graph.upsert_project(project("requests", ecosystem="npm"))
    await store.graph.add_dependency("pypi", "requests", "npm", "requests")
    assert await store.graph.count_projects() == 2
    assert (await store.graph.get_project("pypi", "requests")).dependency_count == 1
    assert (await store.graph.get_project("npm", "requests")).dependency_count == 0


async def test_bulk_upsert_and_bulk_edges_match_single_calls(store: Stores) -> None:
    await store.graph.upsert_projects([project("a"), project("b"), project("c")])
    await store.graph.add_dependencies(
        [
            DependencyEdge("npm", "a", "npm", "b"),
            DependencyEdge("npm", "a", "npm", "c"),
            DependencyEdge("NPM", "A", "npm", "b"),  # duplicate in another case
            DependencyEdge("npm", "b", "npm", "pending"),
        ]
    )
    assert await store.graph.count_projects() == 3
    assert (await store.graph.get_project("npm", "a")).dependency_count == 2
    assert (await store.graph.get_project("npm", "b")).dependency_count == 1
    assert await store.graph.count_dependents("npm", "b") == 1


async def test_bulk_upsert_with_one_bad_project_writes_nothing(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="non-empty"):
        await store.graph.upsert_projects([project("a"), project("")])
    assert await store.graph.count_projects() == 0


async def test_bulk_edges_with_a_self_edge_write_nothing(store: Stores) -> None:
    await store.graph.upsert_project(project("a"))
    with pytest.raises(InvalidValueError, match="cannot depend on itself"):
        await store.graph.add_dependencies(
            [DependencyEdge("npm", "a", "npm", "b"), DependencyEdge("npm", "c", "npm", "C")]
        )
    assert (await store.graph.get_project("npm", "a")).dependency_count == 0
    assert await store.graph.count_dependents("npm", "b") == 0


# -- search ---------------------------------------------------------------------------------------


async def test_search_ranks_exact_then_prefix_then_contains_then_description(store: Stores) -> None:
    await store.graph.upsert_project(project("mentions", description="uses react inside"))
    await store.graph.upsert_project(project("preact", description="small"))
    await store.graph.upsert_project(project("react-dom", description="dom"))
    await store.graph.upsert_project(project("React", description="ui"))
    names = [s.name for s in await store.graph.search("react")]
    assert names == ["React", "react-dom", "preact", "mentions"]


async def test_search_ties_keep_insertion_order(store: Stores) -> None:
    for name in ("lib-c", "lib-a", "lib-b"):
        await store.graph.upsert_project(project(name))
    assert [s.name for s in await store.graph.search("lib")] == ["lib-c", "lib-a", "lib-b"]


async def test_search_is_case_insensitive_and_strips_the_query(store: Stores) -> None:
    await store.graph.upsert_project(project("Lodash", ecosystem="NPM", description="Utility Belt"))
    assert await store.graph.search("  LODASH  ") == [
        ProjectSummary(name="Lodash", ecosystem="NPM", description="Utility Belt")
    ]
    assert [s.name for s in await store.graph.search("belt")] == ["Lodash"]


async def test_search_does_not_match_the_ecosystem(store: Stores) -> None:
    await store.graph.upsert_project(project("left-pad", ecosystem="npm", description="pads"))
    assert await store.graph.search("npm") == []


@pytest.mark.parametrize("query", ["%", "_", "\\", "a%b", "a_b"])
async def test_search_takes_like_wildcards_literally(store: Stores, query: str) -> None:
    await store.graph.upsert_project(project("plain", description="nothing special"))
    await store.graph.upsert_project(project("axb", description="axxb"))
    assert await store.graph.search(query) == []
    await store.graph.upsert_project(project(f"has{query}in", description="d"))
    assert [s.name for s in await store.graph.search(query)] == [f"has{query}in"]


@pytest.mark.parametrize("query", ["", "   ", None])
async def test_empty_search_returns_nothing(store: Stores, query: str | None) -> None:
    await store.graph.upsert_project(project("react"))
    assert await store.graph.search(query) == []


@pytest.mark.parametrize("limit", [0, -1, -100])
async def test_search_with_limit_zero_or_negative_returns_nothing(store: Stores, limit: int) -> None:
    await store.graph.upsert_project(project("react"))
    assert await store.graph.search("react", limit=limit) == []


async def test_search_limit_caps_results_at_its_edges(store: Stores) -> None:
    for i in range(5):
        await store.graph.upsert_project(project(f"lib{i}"))
    assert [s.name for s in await store.graph.search("lib", limit=1)] == ["lib0"]
    assert len(await store.graph.search("lib", limit=4)) == 4
    assert len(await store.graph.search("lib", limit=5)) == 5
    assert len(await store.graph.search("lib", limit=6)) == 5
    assert len(await store.graph.search("lib")) == 5


async def test_search_with_non_integer_limit_is_rejected(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="limit must be an integer"):
        await store.graph.search("react", limit="many")


async def test_search_returns_empty_description_as_empty_string(store: Stores) -> None:
    await store.graph.upsert_project(project("bare", description=""))
    assert await store.graph.search("bare") == [ProjectSummary(name="bare", ecosystem="npm", description="")]


# -- copies, not live references ------------------------------------------------------------------


async def test_returned_project_is_a_copy(store: Stores) -> None:
    await store.graph.upsert_project(project("react", version="1"))
    found = await store.graph.get_project("npm", "react")
    found.version = "mutated"
    found.dependency_count = 99
    again = await store.graph.get_project("npm", "react")
    assert (again.version, again.dependency_count) == ("1", 0)


async def test_callers_project_is_neither_kept_nor_mutated(store: Stores) -> None:
    mine = project("react", version="1", dependency_count=7)
    await store.graph.upsert_project(mine)
    await store.graph.add_dependency("npm", "react", "npm", "x")
    mine.version = "mutated"
    assert mine.dependency_count == 7
    found = await store.graph.get_project("npm", "react")
    assert (found.version, found.dependency_count) == ("1", 1)
    assert isinstance(found, Project)


# -- text both stores can hold (found in review: these diverged) ---------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad\ud800name", "project name is not valid Unicode text (a lone surrogate)"),
        ("İ" * 200, "project name is longer than 255 characters"),  # lower() makes it 400 characters
    ],
)
async def test_a_name_postgresql_cannot_hold_is_rejected_by_every_store(store: Stores, name: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=re.escape(message)):
        await store.graph.upsert_project(project(name))
    assert await store.graph.count_projects() == 0


@pytest.mark.parametrize("name", ["ΟΔΟΣ", "İstanbul"])
async def test_non_ascii_names_whose_sql_lower_differs_are_kept_by_every_store(store: Stores, name: str) -> None:
    await store.graph.upsert_project(project(name, ecosystem="pypi"))
    found = await store.graph.get_project("pypi", name.lower())
    assert found is not None
    assert found.name == name


async def test_a_search_query_with_a_lone_surrogate_is_rejected(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="search query is not valid Unicode text"):
        await store.graph.search("\ud800")
