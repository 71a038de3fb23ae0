"""Read routing: the share holds within statistical bounds and a key always routes one way."""

from __future__ import annotations

import math
import random

import pytest

from coherence_sql.cutover.routing import ReadRouter, bucket, entity_key

KEYS = [entity_key("contributor", f"{i:08x}-{random.Random(i).getrandbits(64):016x}") for i in range(10_000)]


@pytest.mark.parametrize("percent", [0, 1, 10, 50, 90, 100])
def test_keyed_share_is_within_four_standard_deviations(percent: int) -> None:
    router = ReadRouter(percent)
    share = sum(router.keyed(k) for k in KEYS)
    expected = len(KEYS) * percent / 100
    sigma = math.sqrt(len(KEYS) * (percent / 100) * (1 - percent / 100))
    assert abs(share - expected) <= 4 * sigma + 1e-9, (share, expected, sigma)


def test_the_same_key_always_routes_the_same_way() -> None:
    router = ReadRouter(37)
    first = [router.keyed(k) for k in KEYS]
    again = [ReadRouter(37).keyed(k) for k in KEYS]
    assert first == again


def test_raising_the_percentage_only_moves_keys_towards_postgres() -> None:
    at_10 = {k for k in KEYS if ReadRouter(10).keyed(k)}
    at_50 = {k for k in KEYS if ReadRouter(50).keyed(k)}
    assert at_10 <= at_50
    assert len(at_50) > len(at_10)


def test_buckets_are_stable_across_processes() -> None:
    # crc32, not hash(): this value must never change between releases or processes.
    assert bucket("project:npm/react") == 49


def test_entity_keys_fold_case_like_the_stores() -> None:
    assert entity_key("project", "NPM", "React") == entity_key("project", "npm", "react")


@pytest.mark.parametrize("percent", [10, 50, 90])
def test_unkeyed_reads_follow_the_share(percent: int) -> None:
    router = ReadRouter(percent, draw=random.Random(7).random)
    share = sum(router.unkeyed() for _ in range(10_000))
    sigma = math.sqrt(10_000 * (percent / 100) * (1 - percent / 100))
    assert abs(share - 100 * percent) <= 4 * sigma


def test_unkeyed_reads_at_the_ends_never_draw() -> None:
    def fail() -> float:
        raise AssertionError("0% and 100% must not draw")

    assert not ReadRouter(0, draw=fail).unkeyed()
    assert ReadRouter(100, draw=fail).unkeyed()
