"""Describe each query on a live PostgreSQL: parameter and column types, column nullability.

The statement is prepared with asyncpg (types of every `$n` and result column); nullability comes
from its generic plan (`nullability.py`) joined with `pg_attribute.attnotnull`, then the column
alias overrides `"x!"` (never NULL) and `"x?"` (may be NULL) are applied.
"""

from __future__ import annotations

import json
import keyword
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from coherence_sql.codegen.loader import GenerateError, Operation, QuerySpec
from coherence_sql.codegen.nullability import ColumnSource, NeverNull, Origin, output_origins
from coherence_sql.codegen.pgtypes import PyType, python_type

FORCE_NOT_NULL: Final = "!"
FORCE_NULLABLE: Final = "?"
_PROBE: Final = "coherence_sql_codegen_probe"
# Field names a row or parameter class cannot take (names starting with "_" are refused for all):
# a NamedTuple's would shadow tuple methods, a Record row's the Record methods (mypy rejects both),
# and a Record row's class body itself uses `property` and `itemgetter`.
_TUPLE_METHODS: Final = frozenset({"count", "index"})
_RECORD_METHODS: Final = frozenset({"get", "items", "keys", "values"})
_RECORD_BODY_NAMES: Final = frozenset({"property", "itemgetter"})


@dataclass(frozen=True, slots=True)
class Column:
    name: str  # the field name: the column's name with a `!`/`?` override suffix removed
    type: PyType
    nullable: bool


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: PyType
    nullable: bool
    nullable_elements: bool


def is_record_row(columns: tuple[Column, ...]) -> bool:
    """Whether the row class is an asyncpg Record subclass (no conversion) or a NamedTuple.

    Only columns of the plan's ENUM types need converting (str → TaskType/TaskStatus); a row
    without any is the driver's own Record, passed as `record_class=` (docs/accessors.md).
    """
    return not any(column.type.enum for column in columns)


@dataclass(frozen=True, slots=True)
class Accessor:
    """Everything the renderer needs about one query."""

    spec: QuerySpec
    parameters: tuple[Parameter, ...]
    columns: tuple[Column, ...]


class Introspector:
    """Describes queries on one connection to a database migrated to the current schema.

    The connection is used for nothing else: it is switched to `force_generic_plan`.
    """

    def __init__(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        self._conn = conn
        self._not_null: dict[tuple[str, str, str], bool] = {}
        self._enum_oids: dict[int, bool] = {}
        self._generic = False

    async def describe(self, spec: QuerySpec) -> Accessor:
        if spec.operation is Operation.SCRIPT:
            return Accessor(spec, (), ())  # may hold several statements; nothing to type
        try:
            statement = await self._conn.prepare(spec.sql)
        except asyncpg.PostgresError as exc:
            raise GenerateError(f"{spec.qualified_name}: PostgreSQL rejects the statement: {exc}") from None
        parameter_types = statement.get_parameters()
        if len(parameter_types) != len(spec.parameters):
            raise GenerateError(
                f"{spec.qualified_name}: PostgreSQL sees {len(parameter_types)} parameters, "
                f"aiosql {len(spec.parameters)}"
            )
        attributes = statement.get_attributes()
        await self._learn_enums([t.oid for t in parameter_types] + [a.type.oid for a in attributes])
        parameters = tuple(
            Parameter(name, self._python_type(t), name in spec.nullable, name in spec.nullable_elements)
            for name, t in zip(spec.parameters, parameter_types, strict=True)
        )
        if spec.operation.returns_rows and not attributes:
            raise GenerateError(
                f"{spec.qualified_name}: operator '{spec.operation.value}' expects rows, but the statement "
                "returns no columns (add RETURNING, or use '!')"
            )
        columns: tuple[Column, ...] = ()
        if attributes and spec.operation.returns_rows:
            origins = await self._origins(spec.sql, len(parameter_types), len(attributes))
            columns = tuple(
                [
                    await self._column(spec, a.name, self._python_type(a.type), origin)
                    for a, origin in zip(attributes, origins, strict=True)
                ]
            )
            if spec.operation is not Operation.SELECT_VALUE:
                _check_field_names(spec, columns, record=is_record_row(columns))
        if spec.operation is Operation.INSERT_UPDATE_DELETE_MANY:
            _check_field_names(spec, tuple(Column(p.name, p.type, p.nullable) for p in parameters), record=False)
        return Accessor(spec, parameters, columns)

    def _python_type(self, t: Any) -> PyType:
        return python_type(t.name, t.kind, t.schema, is_enum=self._enum_oids.get(t.oid, False))

    async def _learn_enums(self, oids: list[int]) -> None:
        unknown = sorted({oid for oid in oids if oid not in self._enum_oids})
        if not unknown:
            return
        rows = await self._conn.fetch(
            "SELECT t.oid, coalesce(e.typtype, t.typtype) = 'e' AS is_enum "
            "FROM pg_type AS t LEFT JOIN pg_type AS e ON e.oid = t.typelem AND t.typcategory = 'A' "
            "WHERE t.oid = any($1::oid[])",
            unknown,
        )
        for row in rows:
            self._enum_oids[row["oid"]] = row["is_enum"]

    async def _origins(self, sql: str, parameters: int, columns: int) -> list[Origin]:
        if not self._generic:
            # Bound NULLs would be constant-folded into a custom plan and outer joins vanish.
            await self._conn.execute("SET plan_cache_mode = force_generic_plan")
            self._generic = True
        try:
            await self._conn.execute(f"PREPARE {_PROBE} AS {sql}")
        except asyncpg.PostgresError:
            return [None] * columns  # nothing provable: every column stays nullable
        try:
            arguments = f"({', '.join(['NULL'] * parameters)})" if parameters else ""
            raw = await self._conn.fetchval(f"EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {_PROBE}{arguments}")
        except asyncpg.PostgresError:
            return [None] * columns
        finally:
            await self._conn.execute(f"DEALLOCATE {_PROBE}")
        return output_origins(json.loads(raw) if isinstance(raw, str) else raw, columns)

    async def _column(self, spec: QuerySpec, name: str, python: PyType, origin: Origin) -> Column:
        if name.endswith(FORCE_NOT_NULL):
            return Column(name[:-1], python, nullable=False)
        if name.endswith(FORCE_NULLABLE):
            return Column(name[:-1], python, nullable=True)
        if isinstance(origin, NeverNull):
            return Column(name, python, nullable=False)
        if isinstance(origin, ColumnSource) and not origin.outer_nullable:
            return Column(name, python, nullable=not await self._attnotnull(origin))
        return Column(name, python, nullable=True)

    async def _attnotnull(self, source: ColumnSource) -> bool:
        key = (source.schema, source.table, source.column)
        if key not in self._not_null:
            value = await self._conn.fetchval(
                "SELECT a.attnotnull FROM pg_attribute AS a "
                "INNER JOIN pg_class AS c ON a.attrelid = c.oid "
                "INNER JOIN pg_namespace AS n ON c.relnamespace = n.oid "
                "WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped",
                *key,
            )
            self._not_null[key] = bool(value)
        return self._not_null[key]


def _check_field_names(spec: QuerySpec, columns: tuple[Column, ...], *, record: bool) -> None:
    """`record`: the fields belong to a Record row class, else to a NamedTuple."""
    seen: set[str] = set()
    for column in columns:
        name = column.name
        if not name.isidentifier() or name.startswith("_") or keyword.iskeyword(name):
            raise GenerateError(f"{spec.qualified_name}: column {name!r} is not a usable field name; alias it")
        if not record and name in _TUPLE_METHODS:
            raise GenerateError(
                f'{spec.qualified_name}: column {name!r} would shadow tuple.{name}; alias it (e.g. AS "total")'
            )
        if record and name in _RECORD_METHODS:
            raise GenerateError(
                f'{spec.qualified_name}: column {name!r} would shadow Record.{name}; alias it (e.g. AS "{name}_")'
            )
        if record and name in _RECORD_BODY_NAMES:
            raise GenerateError(
                f"{spec.qualified_name}: column {name!r} would shadow the {name} the row class is built with; alias it"
            )
        if name in seen:
            raise GenerateError(f"{spec.qualified_name}: two columns are named {name!r}; alias one of them")
        seen.add(name)
