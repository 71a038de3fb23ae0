"""One row class per distinct row shape, the way sqlc shares its table models.

Queries whose rows have the same columns (names, Python types, nullability, in order) share one
class, named by a `row: NameRow` docstring line on any of them (required when several share it and
none names it); a row only one query returns is `<CamelQueryName>Row` unless named. The class is
defined in the module of the first query returning it (modules by name, queries in file order), and
later modules import it, so the generated modules import each other in one direction only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from coherence_sql.codegen.introspect import Accessor, Column, is_record_row
from coherence_sql.codegen.loader import GenerateError, Operation

_ROW_OPERATIONS = (Operation.SELECT, Operation.SELECT_ONE, Operation.INSERT_RETURNING)


def camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def snake(name: str) -> str:
    """`GithubContributorRow` → `github_contributor_row`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True, slots=True)
class RowClass:
    """A row class and where it lives."""

    name: str
    module: str  # the generated module that defines it
    columns: tuple[Column, ...]
    queries: tuple[str, ...]  # qualified names of the queries returning it, in generation order

    @property
    def converter(self) -> str:
        """The function turning a driver record into this row (NamedTuple rows only)."""
        return f"_{snake(self.name)}"

    @property
    def record(self) -> bool:
        """Whether the class is an asyncpg Record subclass (no column needs converting)."""
        return is_record_row(self.columns)

    def returned_by(self, module: str) -> list[str]:
        """The queries returning it, named as seen from `module` (bare when they live there)."""
        return [q.partition(".")[2] if q.partition(".")[0] == module else q for q in self.queries]


def _shape(columns: tuple[Column, ...]) -> tuple[tuple[str, str, bool, str | None, bool], ...]:
    return tuple((c.name, c.type.row_annotation(), c.nullable, c.type.enum, c.type.array) for c in columns)


def plan_rows(accessors: Sequence[Accessor]) -> dict[str, RowClass]:
    """Qualified query name → its row class, for every row-returning query of `accessors`.

    `accessors` come in generation order: modules by name, each in file order.
    """
    groups: dict[tuple[tuple[str, str, bool, str | None, bool], ...], list[Accessor]] = {}
    for accessor in accessors:
        if accessor.spec.operation in _ROW_OPERATIONS:
            groups.setdefault(_shape(accessor.columns), []).append(accessor)
        elif accessor.spec.row_name or accessor.spec.row_aliases:
            raise GenerateError(
                f"{accessor.spec.qualified_name}: 'row:' and 'alias:' name a row class, but "
                f"operator '{accessor.spec.operation.value}' returns no rows"
            )
    plan: dict[str, RowClass] = {}
    named: dict[str, str] = {}  # declared class name → the query that declared it
    for group in groups.values():
        queries = tuple(a.spec.qualified_name for a in group)
        declared = sorted({a.spec.row_name for a in group if a.spec.row_name})
        if len(declared) > 1:
            raise GenerateError(
                f"{', '.join(queries)} return rows of one shape but name its class {' and '.join(declared)}; "
                "keep one 'row:' name"
            )
        if declared:
            name = declared[0]
        elif len(group) == 1:
            name = f"{camel(group[0].spec.name)}Row"
        else:
            raise GenerateError(
                f"{', '.join(queries)} return rows of one shape: name their shared class with a "
                "'row: <Name>Row' docstring line on one of them"
            )
        if declared:
            first = next(a.spec.qualified_name for a in group if a.spec.row_name == name)
            if name in named:
                raise GenerateError(f"{first} and {named[name]} name rows of different shapes {name!r}")
            named[name] = first
        row = RowClass(name, group[0].spec.module, group[0].columns, queries)
        for accessor in group:
            plan[accessor.spec.qualified_name] = row
    return plan
