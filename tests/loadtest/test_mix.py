"""The request mix and data-set sizes as the command line gives them."""

from __future__ import annotations

import pytest

from coherence_sql.errors import InvalidValueError
from coherence_sql.loadtest.dataset import DatasetSize
from coherence_sql.loadtest.operations import GROUPS, parse_mix
from coherence_sql.loadtest.targets import targets_from


def test_the_api_mix_splits_each_groups_weight_among_its_operations() -> None:
    mix = parse_mix("read=70,write=20,graph=10")
    assert sum(mix.values()) == pytest.approx(1.0)
    assert sum(mix[name] for name in GROUPS["read"]) == pytest.approx(0.7)
    assert sum(mix[name] for name in GROUPS["graph"]) == pytest.approx(0.1)
    assert mix["update_task"] == pytest.approx(0.2 * 35 / 100)


def test_a_mix_may_name_single_operations_and_zero_weights_drop_out() -> None:
    assert parse_mix("get_project=3,noop=1,search=0") == {"get_project": 0.75, "noop": 0.25}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reads=70", "NAME one of read, write, graph"),
        ("read", "expected NAME=WEIGHT"),
        ("read=many", "the weight of read must be a number"),
        ("read=-1", "must not be negative"),
        ("read=0", "must add up to more than 0"),
    ],
)
def test_a_bad_mix_says_what_was_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        parse_mix(text)


def test_dataset_sizes_default_what_is_not_named() -> None:
    size = DatasetSize.parse("projects=500, tasks=20")
    assert (size.projects, size.tasks, size.edges) == (500, 20, DatasetSize().edges)
    with pytest.raises(InvalidValueError, match="NAME one of assets"):
        DatasetSize.parse("packages=5")
    with pytest.raises(InvalidValueError, match="projects must be at least 1"):
        DatasetSize.parse("projects=0")


def test_each_cutover_phase_is_a_target_of_its_own() -> None:
    names = [t.name for t in targets_from("postgres,cutover,memory", "dual-write,postgres-primary", 50)]
    assert names == ["postgres", "cutover:dual-write:reads-50%", "cutover:postgres-primary", "memory"]
    with pytest.raises(InvalidValueError, match="phase must be one of"):
        targets_from("cutover", "phase-3", 0)
    with pytest.raises(InvalidValueError, match="stores must be one of"):
        targets_from("sqlite", "", 0)
