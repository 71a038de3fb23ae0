"""The API's calls as named load-test operations, and the mix that chooses among them.

A mix names groups or single operations with weights: `read=70,write=20,graph=10` is the plan's
API mix; `get_project=50,update_task=50` or `noop=100` (nothing at all: the generator's own
ceiling) work too. Within a group the operations share its weight as `GROUPS` says. Writes touch
keys of their own run (`run_tag`) or existing rows of the data set, never another run's.
"""

from __future__ import annotations

import itertools
import random
from bisect import bisect_right
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Final

from coherence_sql.errors import InvalidValueError
from coherence_sql.loadtest.dataset import DatasetKeys
from coherence_sql.loadtest.scheduler import Request
from coherence_sql.models import AgentTaskRecord, Project, TaskStatus, TaskType

# Within each group, an operation's share of the group's weight.
GROUPS: Final[dict[str, dict[str, int]]] = {
    "read": {
        "get_project": 30,
        "get_task": 20,
        "get_contributor": 15,
        "list_tasks": 10,
        "search": 10,
        "get_asset": 10,
        "list_contributors": 5,
    },
    "write": {"update_task": 35, "upsert_project": 30, "create_contribution": 20, "create_task": 15},
    "graph": {"count_dependents": 40, "add_dependency": 40, "get_project_github_contributors": 20},
}
DEFAULT_MIX: Final = "read=70,write=20,graph=10"
OPERATIONS: Final = frozenset({"noop", *itertools.chain.from_iterable(GROUPS.values())})


def parse_mix(text: str) -> dict[str, float]:
    """The mix as operation -> share (the shares sum to 1)."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or (name not in GROUPS and name not in OPERATIONS):
            choices = ", ".join([*GROUPS, *sorted(OPERATIONS)])
            raise InvalidValueError(f"mix: expected NAME=WEIGHT with NAME one of {choices}; got {part!r}")
        try:
            weight = float(value)
        except ValueError:
            raise InvalidValueError(f"mix: the weight of {name} must be a number, got {value.strip()!r}") from None
        if weight < 0:
            raise InvalidValueError(f"mix: the weight of {name} must not be negative, got {weight:g}")
        members = GROUPS.get(name, {name: 1})
        total = sum(members.values())
        for operation, share in members.items():
            weights[operation] = weights.get(operation, 0.0) + weight * share / total
    whole = sum(weights.values())
    if not whole > 0:
        raise InvalidValueError(f"mix: the weights must add up to more than 0, got {text!r}")
    return {name: w / whole for name, w in weights.items() if w > 0}


async def _noop() -> None:
    return None


class Operations:
    """Builds request number i of a run: an operation drawn from the mix, with its arguments."""

    def __init__(
        self, graph: Any, tasks: Any, keys: DatasetKeys, mix: dict[str, float], run_tag: str, seed: int
    ) -> None:
        self.graph = graph
        self.tasks = tasks
        self.keys = keys
        self.run_tag = run_tag
        self.random = random.Random(seed)
        self.names = list(mix)
        self.cumulative = list(itertools.accumulate(mix[n] for n in self.names))
        self._makers: dict[str, Callable[[int], Callable[[], Awaitable[object]]]] = {
            name: getattr(self, f"_{name}") for name in self.names
        }

    def pick(self, index: int) -> Request:
        point = self.random.random() * self.cumulative[-1]
        name = self.names[min(bisect_right(self.cumulative, point), len(self.names) - 1)]
        return name, self._makers[name](index)

    # -- the operations: each returns the call to make, its arguments drawn now -------------------

    def _noop(self, index: int) -> Callable[[], Awaitable[object]]:
        return _noop

    def _project_key(self) -> tuple[str, str]:
        return self.random.choice(self.keys.projects)

    def _get_project(self, index: int) -> Callable[[], Awaitable[object]]:
        eco, name = self._project_key()
        return lambda: self.graph.get_project(eco, name)

    def _get_task(self, index: int) -> Callable[[], Awaitable[object]]:
        task_id = self.random.choice(self.keys.tasks)
        return lambda: self.tasks.get_task(task_id)

    def _get_contributor(self, index: int) -> Callable[[], Awaitable[object]]:
        contributor = self.random.choice(self.keys.contributors)
        return lambda: self.graph.get_contributor(contributor)

    def _get_asset(self, index: int) -> Callable[[], Awaitable[object]]:
        asset = self.random.choice(self.keys.assets)
        return lambda: self.graph.get_asset(asset)

    def _list_tasks(self, index: int) -> Callable[[], Awaitable[object]]:
        status = self.random.choice([None, TaskStatus.PENDING, TaskStatus.RUNNING])
        return lambda: self.tasks.list_tasks(status=status, limit=20)

    def _search(self, index: int) -> Callable[[], Awaitable[object]]:
        word = self.random.choice(self.keys.words)
        return lambda: self.graph.search(word, 20)

    def _list_contributors(self, index: int) -> Callable[[], Awaitable[object]]:
        return lambda: self.graph.list_contributors(20)

    def _update_task(self, index: int) -> Callable[[], Awaitable[object]]:
        task_id = self.random.choice(self.keys.tasks)
        progress = self.random.randrange(101)
        return lambda: self.tasks.update_task(
            task_id, status=TaskStatus.RUNNING, progress_pct=progress, current_step=f"step {index}"
        )

    def _upsert_project(self, index: int) -> Callable[[], Awaitable[object]]:
        if self.random.random() < 0.5:  # half re-index a known project, half index a new one
            eco, name = self._project_key()
        else:
            eco, name = "npm", f"load-{self.run_tag}-{index}"
        project = Project(ecosystem=eco, name=name, version=f"2.{index}.0", description=f"indexed by load test {index}")
        return lambda: self.graph.upsert_project(project)

    def _create_contribution(self, index: int) -> Callable[[], Awaitable[object]]:
        contributor = self.random.choice(self.keys.contributors)
        asset = self.random.choice(self.keys.assets)
        cost = Decimal(self.random.randrange(0, 100_000)) / 100
        score = self.random.choice([0.5, 0.75, 1.0])
        return lambda: self.graph.create_contribution(contributor, asset, cost, score, {"load": index})

    def _create_task(self, index: int) -> Callable[[], Awaitable[object]]:
        task = AgentTaskRecord(
            id=f"task_load_{self.run_tag}_{index}",
            direction=f"load test task {index}",
            task_type=TaskType.IMPL,
            model="openrouter/free",
            command=f'aider "load {index}"',
            tier="openrouter",
        )
        return lambda: self.tasks.create_task(task)

    def _count_dependents(self, index: int) -> Callable[[], Awaitable[object]]:
        eco, name = self._project_key()
        return lambda: self.graph.count_dependents(eco, name)

    def _add_dependency(self, index: int) -> Callable[[], Awaitable[object]]:
        (from_eco, from_name), (to_eco, to_name) = self._project_key(), self._project_key()
        if (from_eco, from_name) == (to_eco, to_name):
            to_eco, to_name = "npm", f"load-dep-{self.run_tag}-{index}"
        return lambda: self.graph.add_dependency(from_eco, from_name, to_eco, to_name)

    def _get_project_github_contributors(self, index: int) -> Callable[[], Awaitable[object]]:
        eco, name = self._project_key()
        return lambda: self.graph.get_project_github_contributors(eco, name)
