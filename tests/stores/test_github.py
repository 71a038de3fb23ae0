"""GitHub contributors, organizations and contributes-to edges, for every store (ports of the API's
test_github_indexing.py store-only tests; its save/restore test is in test_snapshot.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from coherence_sql.errors import InvalidValueError
from tests.stores.conftest import Stores
from tests.stores.records import T0, github_contributor, github_organization


async def test_upsert_github_contributor_returns_it(store: Stores) -> None:
    gc = github_contributor("octocat", name="The Octocat", contributions_count=42)
    returned = await store.graph.upsert_github_contributor(gc)
    assert returned == gc


async def test_get_github_contributor_by_id_and_unknown_is_none(store: Stores) -> None:
    await store.graph.upsert_github_contributor(github_contributor("octocat"))
    found = await store.graph.get_github_contributor("github:octocat")
    assert found is not None
    assert found.login == "octocat"
    assert await store.graph.get_github_contributor("github:nobody") is None


async def test_github_contributor_id_is_case_sensitive(store: Stores) -> None:
    await store.graph.upsert_github_contributor(github_contributor("octocat"))
    assert await store.graph.get_github_contributor("github:OctoCat") is None


async def test_list_github_contributors_returns_all(store: Stores) -> None:
    await store.graph.upsert_github_contributor(github_contributor("a"))
    await store.graph.upsert_github_contributor(github_contributor("b"))
    assert len(await store.graph.list_github_contributors()) == 2


async def test_list_github_contributors_respects_limit(store: Stores) -> None:
    for i in range(10):
        await store.graph.upsert_github_contributor(github_contributor(f"user{i}"))
    assert len(await store.graph.list_github_contributors(limit=3)) == 3
    assert await store.graph.list_github_contributors(limit=0) == []
    assert await store.graph.list_github_contributors(limit=-3) == []


async def test_list_github_contributors_is_newest_first_with_ties_in_insertion_order(store: Stores) -> None:
    await store.graph.upsert_github_contributor(github_contributor("old", created_at=T0))
    await store.graph.upsert_github_contributor(github_contributor("tie1", created_at=T0 + timedelta(1)))
    await store.graph.upsert_github_contributor(github_contributor("new", created_at=T0 + timedelta(2)))
    await store.graph.upsert_github_contributor(github_contributor("tie2", created_at=T0 + timedelta(1)))
    assert [g.login for g in await store.graph.list_github_contributors()] == ["new", "tie1", "tie2", "old"]


async def test_organization_upsert_and_get(store: Stores) -> None:
    org = github_organization("coherence", name="Coherence Network")
    assert await store.graph.upsert_github_organization(org) == org
    found = await store.graph.get_github_organization("github:coherence")
    assert found is not None
    assert (found.login, found.type, found.name) == ("coherence", "Organization", "Coherence Network")
    assert await store.graph.get_github_organization("github:other") is None


async def test_organization_with_unknown_type_is_rejected(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="Organization or User"):
        await store.graph.upsert_github_organization(github_organization("x", type="Team"))
    assert await store.graph.get_github_organization("github:x") is None


async def test_contributes_to_edge_is_returned_for_the_project(store: Stores) -> None:
    await store.graph.upsert_github_contributor(github_contributor("octocat"))
    await store.graph.add_github_contributes_to("github:octocat", "npm", "react")
    found = await store.graph.get_project_github_contributors("npm", "react")
    assert [g.id for g in found] == ["github:octocat"]


async def test_two_contributors_of_one_project_come_in_edge_order(store: Stores) -> None:
    await store.graph.upsert_github_contributor(github_contributor("first", created_at=T0))
    await store.graph.upsert_github_contributor(github_contributor("second", created_at=T0 + timedelta(1)))
    await store.graph.add_github_contributes_to("github:second", "npm", "React")
    await store.graph.add_github_contributes_to("github:first", "NPM", "react")
    found = await store.graph.get_project_github_contributors("npm", "REACT")
    assert [g.login for g in found] == ["second", "first"]


async def test_project_without_edges_has_no_github_contributors(store: Stores) -> None:
    assert await store.graph.get_project_github_contributors("npm", "lonely") == []


async def test_edges_to_unknown_contributors_are_skipped(store: Stores) -> None:
    await store.graph.add_github_contributes_to("github:ghost", "npm", "react")
    await store.graph.upsert_github_contributor(github_contributor("real"))
    await store.graph.add_github_contributes_to("github:real", "npm", "react")
    assert [g.id for g in await store.graph.get_project_github_contributors("npm", "react")] == ["github:real"]


async def test_contributor_upserted_after_its_edge_is_found(store: Stores) -> None:
    await store.graph.add_github_contributes_to("github:late", "npm", "react")
    await store.graph.upsert_github_contributor(github_contributor("late"))
    assert [g.id for g in await store.graph.get_project_github_contributors("npm", "react")] == ["github:late"]


async def test_upsert_same_id_replaces_fields_and_keeps_position(store: Stores) -> None:
    await store.graph.upsert_github_contributor(github_contributor("a", name="Old", created_at=T0))
    await store.graph.upsert_github_contributor(github_contributor("b", created_at=T0))
    await store.graph.upsert_github_contributor(
        github_contributor("a", name="New", contributions_count=5, created_at=T0, updated_at=T0 + timedelta(1))
    )
    found = await store.graph.get_github_contributor("github:a")
    assert (found.name, found.contributions_count, found.updated_at) == ("New", 5, T0 + timedelta(1))
    assert [g.login for g in await store.graph.list_github_contributors()] == ["a", "b"]


async def test_same_contributes_to_edge_twice_gives_one_result(store: Stores) -> None:
    await store.graph.upsert_github_contributor(github_contributor("octocat"))
    await store.graph.add_github_contributes_to("github:octocat", "npm", "react")
    await store.graph.add_github_contributes_to("github:octocat", "NPM", "React")
    assert len(await store.graph.get_project_github_contributors("npm", "react")) == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"id": ""}, "must not be empty"), ({"contributions_count": -1}, "contributions_count")],
)
async def test_bad_github_contributor_is_rejected(store: Stores, fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        await store.graph.upsert_github_contributor(github_contributor("x", **fields))
    assert await store.graph.list_github_contributors() == []


async def test_contributes_to_with_empty_project_key_is_rejected(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="non-empty"):
        await store.graph.add_github_contributes_to("github:octocat", "npm", "")


async def test_returned_github_contributor_is_a_copy(store: Stores) -> None:
    await store.graph.upsert_github_contributor(github_contributor("octocat", name="Octo"))
    found = await store.graph.get_github_contributor("github:octocat")
    found.name = "mutated"
    assert (await store.graph.get_github_contributor("github:octocat")).name == "Octo"
