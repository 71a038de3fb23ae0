"""The in-memory stores hand out copies (`memory.copied`): equal to a deep copy, and no change to a
copy's JSON (however deeply nested) reaches the stored record."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from coherence_sql.models import AgentTaskRecord, Contributor, ContributorType, TaskType
from coherence_sql.stores.memory import copied

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)
OBJECTS = st.dictionaries(st.text(max_size=5), JSON, max_size=4)


def _mutate_everything(value: Any) -> None:
    if isinstance(value, dict):
        for item in list(value.values()):
            _mutate_everything(item)
        value["mutated"] = True
    elif isinstance(value, list):
        for item in value:
            _mutate_everything(item)
        value.append("mutated")


@given(context=st.none() | OBJECTS)
def test_a_task_copy_is_a_deep_copy(context: dict[str, Any] | None) -> None:
    task = AgentTaskRecord(id="task_1", direction="d", task_type=TaskType.IMPL, model="m", command="c", context=context)
    before = task.model_copy(deep=True)
    clone = copied(task)
    assert clone == before
    assert clone.model_fields_set == before.model_fields_set
    assert list(clone.__dict__) == list(before.__dict__)
    _mutate_everything(clone.context)
    assert task == before


@given(metadata=OBJECTS)
def test_a_contributor_copy_is_a_deep_copy(metadata: dict[str, Any]) -> None:
    contributor = Contributor(type=ContributorType.HUMAN, name="n", email="a@example.org", metadata=metadata)
    before = contributor.model_copy(deep=True)
    clone = copied(contributor)
    assert clone == before
    _mutate_everything(clone.metadata)
    assert contributor == before
    assert clone.metadata != before.metadata
