"""Contributors, assets, contributions and money, for every store (ports of the API's
test_contributors, test_assets, test_contributions and test_distributions at store level)."""

from __future__ import annotations

from datetime import timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from coherence_sql.errors import DuplicateError, InvalidValueError, UnknownReferenceError
from coherence_sql.models import Contribution, Payout
from tests.stores.conftest import Stores
from tests.stores.records import T0, asset, contribute, contributor

# -- contributors ---------------------------------------------------------------------------------


async def test_created_contributor_is_returned_and_found_by_id(store: Stores) -> None:
    created = await store.graph.create_contributor(contributor(1, hourly_rate=Decimal("85.5")))
    assert created.id == UUID(int=0xC1)
    found = await store.graph.get_contributor(created.id)
    assert found == created
    assert found.hourly_rate == Decimal("85.50")
    assert str(found.hourly_rate) == "85.50"
    assert found.created_at == T0 + timedelta(seconds=1)
    assert found.created_at.tzinfo is None


async def test_unknown_contributor_is_none(store: Stores) -> None:
    assert await store.graph.get_contributor(uuid4()) is None


async def test_contributor_id_reuse_is_a_duplicate(store: Stores) -> None:
    await store.graph.create_contributor(contributor(1))
    with pytest.raises(DuplicateError, match="a contributor with this id already exists"):
        await store.graph.create_contributor(contributor(1, email="other@coherence.network"))
    assert [c.email for c in await store.graph.list_contributors()] == ["person1@coherence.network"]


async def test_contributor_email_is_unique_case_insensitively(store: Stores) -> None:
    await store.graph.create_contributor(contributor(1, email="Alice@coherence.network"))
    with pytest.raises(DuplicateError, match="a contributor with this email already exists"):
        await store.graph.create_contributor(contributor(2, email="ALICE@Coherence.Network"))
    assert await store.graph.get_contributor(UUID(int=0xC2)) is None


async def test_find_contributor_by_email_ignores_case(store: Stores) -> None:
    await store.graph.create_contributor(contributor(1, email="Alice@coherence.network"))
    found = await store.graph.find_contributor_by_email("aLiCe@COHERENCE.network")
    assert found is not None
    assert (found.id, found.email) == (UUID(int=0xC1), "Alice@coherence.network")
    assert await store.graph.find_contributor_by_email("bob@coherence.network") is None


@pytest.mark.parametrize(
    ("first", "same", "different"),
    [
        # Python lower-cases "İ" to "i" + U+0307, PostgreSQL's lower() (C.UTF-8) to "i"; every store
        # uses Python's key, so the dotted spelling is the same email and the plain "i" is not.
        ("\u0130nci@coherence.network", "i\u0307nci@coherence.network", "inci@coherence.network"),
        # A final capital sigma lowers to the final small sigma (U+03C2) in Python, to U+03C3 in PostgreSQL.
        (
            "\u039f\u0394\u039f\u03a3@coherence.network",
            "\u03bf\u03b4\u03bf\u03c2@coherence.network",
            "\u03bf\u03b4\u03bf\u03c3@coherence.network",
        ),
    ],
)
async def test_emails_beyond_ascii_are_the_same_in_every_store(
    store: Stores, first: str, same: str, different: str
) -> None:
    await store.graph.create_contributor(contributor(1, email=first))

    with pytest.raises(DuplicateError, match="a contributor with this email already exists"):
        await store.graph.create_contributor(contributor(2, email=same))
    await store.graph.create_contributor(contributor(3, email=different))

    found = await store.graph.find_contributor_by_email(same)
    assert found is not None
    assert found.id == UUID(int=0xC1)
    other = await store.graph.find_contributor_by_email(different)
    assert other is not None
    assert other.id == UUID(int=0xC3)


async def test_zero_hourly_rate_stays_zero_not_null(store: Stores) -> None:
    await store.graph.create_contributor(contributor(1, hourly_rate=Decimal("0")))
    assert (await store.graph.get_contributor(UUID(int=0xC1))).hourly_rate == Decimal("0.00")


@pytest.mark.parametrize(
    ("rate", "message"),
    [("1.005", "more than two decimal places"), ("-1", "must not be negative"), ("1e14", "out of range")],
)
async def test_bad_hourly_rate_is_rejected(store: Stores, rate: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        await store.graph.create_contributor(contributor(1, hourly_rate=Decimal(rate)))
    assert await store.graph.list_contributors() == []


async def test_empty_contributor_name_is_rejected(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="must not be empty"):
        await store.graph.create_contributor(contributor(1, name=""))
    assert await store.graph.list_contributors() == []


async def test_list_contributors_is_newest_first_with_ties_in_insertion_order(store: Stores) -> None:
    same = T0 + timedelta(hours=1)
    await store.graph.create_contributor(contributor(1, created_at=T0))
    await store.graph.create_contributor(contributor(2, created_at=same))
    await store.graph.create_contributor(contributor(3, created_at=T0 + timedelta(hours=2)))
    await store.graph.create_contributor(contributor(4, created_at=same))
    ids = [c.id.int - 0xC0 for c in await store.graph.list_contributors()]
    assert ids == [3, 2, 4, 1]


@pytest.mark.parametrize(("limit", "expected"), [(0, 0), (-1, 0), (1, 1), (2, 2), (3, 3), (4, 3), ("2", 2)])
async def test_list_contributors_limit_edges(store: Stores, limit: Any, expected: int) -> None:
    for n in range(3):
        await store.graph.create_contributor(contributor(n))
    assert len(await store.graph.list_contributors(limit=limit)) == expected


async def test_list_contributors_rejects_a_non_integer_limit(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="limit must be an integer"):
        await store.graph.list_contributors(limit="ten")


async def test_aware_created_at_is_stored_as_naive_utc(store: Stores) -> None:
    plus_two = timezone(timedelta(hours=2))
    await store.graph.create_contributor(contributor(1, created_at=T0.replace(tzinfo=plus_two)))
    found = await store.graph.get_contributor(UUID(int=0xC1))
    assert found.created_at == T0 - timedelta(hours=2)
    assert found.created_at.tzinfo is None


async def test_returned_contributor_is_a_copy(store: Stores) -> None:
    created = await store.graph.create_contributor(contributor(1, metadata={"tags": ["a"]}))
    created.metadata["tags"].append("mutated")
    created.name = "mutated"
    found = await store.graph.get_contributor(UUID(int=0xC1))
    assert (found.name, found.metadata) == ("Contributor 1", {"tags": ["a"]})


# -- assets ---------------------------------------------------------------------------------------


async def test_created_asset_starts_at_zero_total_cost(store: Stores) -> None:
    created = await store.graph.create_asset(asset(1, total_cost=Decimal("500.00")))
    assert created.total_cost == Decimal("0.00")
    found = await store.graph.get_asset(UUID(int=0xA1))
    assert (found.type.value, found.description, str(found.total_cost)) == ("CODE", "Asset 1", "0.00")


async def test_unknown_asset_is_none(store: Stores) -> None:
    assert await store.graph.get_asset(uuid4()) is None


async def test_asset_id_reuse_is_a_duplicate(store: Stores) -> None:
    await store.graph.create_asset(asset(1))
    with pytest.raises(DuplicateError, match="an asset with this id already exists"):
        await store.graph.create_asset(asset(1, description="again"))
    assert [a.description for a in await store.graph.list_assets()] == ["Asset 1"]


async def test_list_assets_is_newest_first_with_ties_in_insertion_order(store: Stores) -> None:
    await store.graph.create_asset(asset(1, created_at=T0))
    await store.graph.create_asset(asset(2, created_at=T0))
    await store.graph.create_asset(asset(3, created_at=T0 + timedelta(seconds=1)))
    assert [a.id.int - 0xA0 for a in await store.graph.list_assets()] == [3, 1, 2]
    assert [a.id.int - 0xA0 for a in await store.graph.list_assets(limit=2)] == [3, 1]
    assert await store.graph.list_assets(limit=-5) == []


# -- contributions --------------------------------------------------------------------------------


async def people_and_asset(store: Stores) -> tuple[UUID, UUID, UUID]:
    alice = await store.graph.create_contributor(contributor(1, name="Alice"))
    bob = await store.graph.create_contributor(contributor(2, name="Bob"))
    code = await store.graph.create_asset(asset(1))
    return alice.id, bob.id, code.id


async def test_contribution_is_stored_and_adds_to_the_asset_total(store: Stores) -> None:
    alice, _, code = await people_and_asset(store)
    created = await contribute(store.graph, alice, code, "100.00", 0.9, metadata={"has_tests": True})
    assert created.cost_amount == Decimal("100.00")
    assert created.coherence_score == pytest.approx(0.9, abs=1e-9)
    assert created.metadata == {"has_tests": True}
    assert await store.graph.get_contribution(created.id) == created
    assert created in await store.graph.list_contributions(limit=10)
    assert (await store.graph.get_asset(code)).total_cost == Decimal("100.00")
    assert len(await store.graph.get_asset_contributions(code)) == 1
    assert len(await store.graph.get_contributor_contributions(alice)) == 1


async def test_contribution_uses_the_given_id_and_timestamp(store: Stores) -> None:
    alice, _, code = await people_and_asset(store)
    chosen = uuid4()
    created = await store.graph.create_contribution(
        alice, code, Decimal("1.00"), 0.5, {}, id=chosen, timestamp=T0 + timedelta(days=1)
    )
    assert (created.id, created.timestamp) == (chosen, T0 + timedelta(days=1))


async def test_contribution_id_reuse_is_a_duplicate_and_adds_nothing(store: Stores) -> None:
    alice, _, code = await people_and_asset(store)
    first = await contribute(store.graph, alice, code, "5.00")
    with pytest.raises(DuplicateError, match="a contribution with this id already exists"):
        await store.graph.create_contribution(alice, code, Decimal("7.00"), 0.5, {}, id=first.id, timestamp=T0)
    assert (await store.graph.get_asset(code)).total_cost == Decimal("5.00")


async def test_unknown_contributor_is_checked_before_the_asset_and_nothing_is_written(store: Stores) -> None:
    ghost, missing_asset = uuid4(), uuid4()
    with pytest.raises(UnknownReferenceError, match="contributor does not exist") as caught:
        await store.graph.create_contribution(ghost, missing_asset, Decimal("1.00"), 0.5, {}, id=uuid4())
    assert str(ghost) in str(caught.value)
    assert await store.graph.list_contributions() == []


async def test_unknown_asset_is_rejected_and_nothing_is_written(store: Stores) -> None:
    alice, _, _ = await people_and_asset(store)
    missing_asset = uuid4()
    with pytest.raises(UnknownReferenceError, match="asset does not exist") as caught:
        await store.graph.create_contribution(alice, missing_asset, Decimal("1.00"), 0.5, {}, id=uuid4())
    assert str(missing_asset) in str(caught.value)
    assert await store.graph.list_contributions() == []
    assert await store.graph.get_contributor_contributions(alice) == []


@pytest.mark.parametrize(
    ("cost", "message"),
    [
        (Decimal("1.005"), "more than two decimal places"),
        (Decimal("-1.00"), "must not be negative"),
        (Decimal("NaN"), "finite"),
        ("not-a-number", "must be a decimal amount"),
        (Decimal("10000000000000.00"), "out of range"),
    ],
)
async def test_bad_cost_amount_is_rejected_and_nothing_is_written(store: Stores, cost: Any, message: str) -> None:
    alice, _, code = await people_and_asset(store)
    with pytest.raises(InvalidValueError, match=message):
        await store.graph.create_contribution(alice, code, cost, 0.5, {}, id=uuid4(), timestamp=T0)
    assert await store.graph.get_asset_contributions(code) == []
    assert (await store.graph.get_asset(code)).total_cost == Decimal("0.00")


@pytest.mark.parametrize("score", [1.01, -0.01, float("nan"), "high"])
async def test_bad_coherence_score_is_rejected_and_nothing_is_written(store: Stores, score: Any) -> None:
    alice, _, code = await people_and_asset(store)
    with pytest.raises(InvalidValueError, match="coherence_score"):
        await store.graph.create_contribution(alice, code, Decimal("1.00"), score, {}, id=uuid4(), timestamp=T0)
    assert await store.graph.list_contributions() == []


@pytest.mark.parametrize(("given", "stored"), [(0.125, 0.12), (0.135, 0.14), (0.9, 0.9), (1, 1.0), (0.005, 0.0)])
async def test_coherence_score_is_rounded_half_even_to_two_places(store: Stores, given: float, stored: float) -> None:
    alice, _, code = await people_and_asset(store)
    created = await contribute(store.graph, alice, code, "1.00", given)
    assert created.coherence_score == stored
    assert isinstance(created.coherence_score, float)
    assert (await store.graph.get_contribution(created.id)).coherence_score == stored


async def test_contribution_metadata_must_be_a_json_object(store: Stores) -> None:
    alice, _, code = await people_and_asset(store)
    with pytest.raises(InvalidValueError, match="metadata must be a JSON object"):
        await store.graph.create_contribution(alice, code, Decimal("1.00"), 0.5, ["a"], id=uuid4(), timestamp=T0)
    with pytest.raises(InvalidValueError, match="metadata is not encodable as JSON"):
        await store.graph.create_contribution(
            alice, code, Decimal("1.00"), 0.5, {"x": float("inf")}, id=uuid4(), timestamp=T0
        )
    assert await store.graph.list_contributions() == []


async def test_none_metadata_is_stored_as_empty_object(store: Stores) -> None:
    alice, _, code = await people_and_asset(store)
    created = await store.graph.create_contribution(alice, code, Decimal("1.00"), 0.5, None, id=uuid4(), timestamp=T0)
    assert created.metadata == {}


async def test_total_cost_is_exact_decimal_arithmetic(store: Stores) -> None:
    alice, bob, code = await people_and_asset(store)
    for i, cost in enumerate(["0.10", "0.20", "0.10", "100.1", "9999999.99"]):
        await contribute(store.graph, alice if i % 2 else bob, code, cost, seconds=i)
    total = (await store.graph.get_asset(code)).total_cost
    assert total == Decimal("10000100.49")
    assert str(total) == "10000100.49"


async def test_total_cost_overflow_is_rejected_and_nothing_is_written(store: Stores) -> None:
    alice, _, code = await people_and_asset(store)
    await contribute(store.graph, alice, code, "9999999999999.99")
    with pytest.raises(InvalidValueError):
        await contribute(store.graph, alice, code, "0.01", seconds=1)
    assert len(await store.graph.get_asset_contributions(code)) == 1
    assert (await store.graph.get_asset(code)).total_cost == Decimal("9999999999999.99")


async def test_list_contributions_is_newest_first_with_ties_in_insertion_order(store: Stores) -> None:
    alice, _, code = await people_and_asset(store)
    first = await contribute(store.graph, alice, code, "1.00", seconds=0)
    tie_a = await contribute(store.graph, alice, code, "2.00", seconds=5)
    newest = await contribute(store.graph, alice, code, "3.00", seconds=9)
    tie_b = await contribute(store.graph, alice, code, "4.00", seconds=5)
    listed = [c.id for c in await store.graph.list_contributions()]
    assert listed == [newest.id, tie_a.id, tie_b.id, first.id]
    assert [c.id for c in await store.graph.list_contributions(limit=2)] == [newest.id, tie_a.id]
    assert await store.graph.list_contributions(limit=0) == []


async def test_asset_and_contributor_contributions_are_oldest_first_with_ties_in_insertion_order(
    store: Stores,
) -> None:
    alice, bob, code = await people_and_asset(store)
    other = (await store.graph.create_asset(asset(2))).id
    late = await contribute(store.graph, alice, code, "1.00", seconds=9)
    tie_a = await contribute(store.graph, bob, code, "2.00", seconds=5)
    await contribute(store.graph, alice, other, "3.00", seconds=1)
    tie_b = await contribute(store.graph, alice, code, "4.00", seconds=5)
    assert [c.id for c in await store.graph.get_asset_contributions(code)] == [tie_a.id, tie_b.id, late.id]
    assert [c.cost_amount for c in await store.graph.get_contributor_contributions(alice)] == [
        Decimal("3.00"),
        Decimal("4.00"),
        Decimal("1.00"),
    ]
    assert await store.graph.get_asset_contributions(uuid4()) == []
    assert await store.graph.get_contributor_contributions(uuid4()) == []


async def test_returned_contribution_is_a_copy(store: Stores) -> None:
    alice, _, code = await people_and_asset(store)
    metadata = {"files": ["a.py"]}
    created = await contribute(store.graph, alice, code, metadata=metadata)
    metadata["files"].append("caller-mutated.py")
    created.metadata["files"].append("result-mutated.py")
    found = await store.graph.get_contribution(created.id)
    assert found.metadata == {"files": ["a.py"]}


async def test_returned_asset_is_a_copy(store: Stores) -> None:
    _, _, code = await people_and_asset(store)
    found = await store.graph.get_asset(code)
    found.total_cost = Decimal("999.00")
    assert (await store.graph.get_asset(code)).total_cost == Decimal("0.00")


# -- distributions (client-contract §1.7), computed from get_asset_contributions -------------------


def distribute(contributions: list[Contribution], value_amount: Decimal) -> list[Payout]:
    """The API's DistributionEngine.distribute over a store's contribution list."""
    weights: dict[UUID, Decimal] = {}
    for c in contributions:
        weight = c.cost_amount * (Decimal("0.5") + Decimal(str(c.coherence_score)))
        weights[c.contributor_id] = weights.get(c.contributor_id, Decimal(0)) + weight
    total = sum(weights.values(), Decimal(0))
    if not contributions or total == 0:
        return []
    return [
        Payout(
            contributor_id=cid,
            amount=((w / total) * value_amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP),
        )
        for cid, w in weights.items()
    ]


async def test_distribution_weights_cost_by_coherence(store: Stores) -> None:
    alice, bob, code = await people_and_asset(store)
    await contribute(store.graph, alice, code, "100.00", 0.9, seconds=0)
    await contribute(store.graph, bob, code, "100.00", 0.5, seconds=1)
    payouts = distribute(await store.graph.get_asset_contributions(code), Decimal("1000"))
    assert [(p.contributor_id, p.amount) for p in payouts] == [
        (alice, Decimal("583.33")),
        (bob, Decimal("416.67")),
    ]


async def test_distribution_without_contributions_pays_nothing(store: Stores) -> None:
    _, _, code = await people_and_asset(store)
    assert distribute(await store.graph.get_asset_contributions(code), Decimal("1000")) == []


async def test_negative_zero_money_and_metadata_come_back_as_zero(store: Stores) -> None:
    ada = await store.graph.create_contributor(contributor(hourly_rate=Decimal("-0.00")))
    code = await store.graph.create_asset(asset())
    made = await store.graph.create_contribution(ada.id, code.id, Decimal("-0.00"), 0.5, {"f": -0.0})
    assert str(made.cost_amount) == "0.00"
    assert str(ada.hourly_rate) == "0.00"
    assert str(made.metadata["f"]) == "0.0"
    again = await store.graph.get_contribution(made.id)
    assert again is not None
    assert (str(again.cost_amount), str(again.metadata["f"])) == ("0.00", "0.0")


async def test_an_infinite_limit_is_a_typed_error(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="limit must be an integer, got inf"):
        await store.graph.list_contributors(limit=float("inf"))
