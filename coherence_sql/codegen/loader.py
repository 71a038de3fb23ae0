"""Query files read through aiosql: the records the generator works from.

aiosql parses each `queries/<stem>.sql` (name, operation, `$n`-rewritten SQL, parameters in `$n`
order, docstring); this module only reshapes its answer and reads our docstring conventions,
`nullable: a, b[]`, `row: NameRow` (the row class's name) and `alias: OldNameRow` (another name for it).
"""

from __future__ import annotations

import enum
import keyword
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosql
from aiosql.types import SQLOperationType

from coherence_sql.errors import CoherenceSQLError

NULLABLE_PREFIX = "nullable:"
ROW_PREFIX = "row:"
ALIAS_PREFIX = "alias:"


class GenerateError(CoherenceSQLError):
    """A query file cannot be turned into typed accessors; the message names the query."""


class Operation(enum.Enum):
    """aiosql's operators, by their suffix on the `-- name:` line."""

    SELECT = ""
    SELECT_ONE = "^"
    SELECT_VALUE = "$"
    INSERT_UPDATE_DELETE = "!"
    INSERT_RETURNING = "<!"
    INSERT_UPDATE_DELETE_MANY = "*!"
    SCRIPT = "#"

    @property
    def returns_rows(self) -> bool:
        return self in (Operation.SELECT, Operation.SELECT_ONE, Operation.SELECT_VALUE, Operation.INSERT_RETURNING)


_BY_AIOSQL: dict[SQLOperationType, Operation] = {
    SQLOperationType.SELECT: Operation.SELECT,
    SQLOperationType.SELECT_ONE: Operation.SELECT_ONE,
    SQLOperationType.SELECT_VALUE: Operation.SELECT_VALUE,
    SQLOperationType.INSERT_UPDATE_DELETE: Operation.INSERT_UPDATE_DELETE,
    SQLOperationType.INSERT_RETURNING: Operation.INSERT_RETURNING,
    SQLOperationType.INSERT_UPDATE_DELETE_MANY: Operation.INSERT_UPDATE_DELETE_MANY,
    SQLOperationType.SCRIPT: Operation.SCRIPT,
}


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """One named query as aiosql parsed it."""

    module: str  # the file's stem: queries/projects.sql → "projects"
    name: str
    operation: Operation
    sql: str  # aiosql's rewrite, with $1..$n
    parameters: tuple[str, ...]  # in $n order
    doc: str
    line: int
    nullable: frozenset[str]  # parameters that accept None
    nullable_elements: frozenset[str]  # array parameters whose elements accept None
    row_name: str | None = None  # `row: NameRow`: the name of the row class (shared by its shape)
    row_aliases: tuple[str, ...] = ()  # `alias: OldRow`: more names for the row class, in this module

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.name}"


def _entries(doc: str, prefix: str) -> list[str]:
    """The comma-separated entries of every `<prefix> a, b` docstring line, stripped."""
    lines = (line.strip() for line in doc.splitlines())
    return [
        item.strip() for text in lines if text.lower().startswith(prefix) for item in text[len(prefix) :].split(",")
    ]


def _nullable(doc: str, name: str, parameters: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    whole: set[str] = set()
    elements: set[str] = set()
    for entry in filter(None, _entries(doc, NULLABLE_PREFIX)):
        target, bucket = (entry[:-2], elements) if entry.endswith("[]") else (entry, whole)
        if target not in parameters:
            raise GenerateError(f"{name}: 'nullable: {entry}' names no parameter of the query")
        bucket.add(target)
    return frozenset(whole), frozenset(elements)


def _class_names(doc: str, where: str, prefix: str) -> list[str]:
    """The names on every `<prefix> A, B` docstring line (class names: identifiers, not `_x`)."""
    names = _entries(doc, prefix)
    for entry in names:
        if not entry.isidentifier() or keyword.iskeyword(entry) or entry.startswith("_"):
            raise GenerateError(f"{where}: '{prefix} {entry}' is not usable as a class name")
    return names


def _row_name(doc: str, where: str) -> str | None:
    names = _class_names(doc, where, ROW_PREFIX)
    if len(names) > 1:
        raise GenerateError(f"{where}: 'row:' names {', '.join(names)}; a row class has one name")
    return names[0] if names else None


def _parameters(name: str, where: str, fn: Any, adapter: Any) -> tuple[str, ...]:
    signature = fn.__signature__
    declared = tuple(p for p in signature.parameters if p != "self") if signature is not None else ()
    # The asyncpg adapter numbers parameters as it rewrites them; it must agree with the signature,
    # or aiosql rewrote something that is no parameter (an array slice `a[1:2]`; see the lint).
    numbered = tuple(getattr(adapter, "var_sorted", {}).get(name, declared))
    if numbered != declared:
        raise GenerateError(
            f"{where}: aiosql numbered {list(numbered)} but the parameters are {list(declared)}; "
            "run `coherence-sql lint` (an array slice like a[1:2]?)"
        )
    if fn.attributes:
        raise GenerateError(f"{where}: `:object.attribute` parameters are not supported by the generator")
    return declared


def load_file(path: Path) -> list[QuerySpec]:
    """Every query of one file, in file order."""
    try:
        queries = aiosql.from_path(path, "asyncpg")
    except Exception as exc:  # aiosql raises SQLParseException, SQLLoadException, ValueError
        raise GenerateError(f"{path.name}: aiosql cannot load it: {exc}") from None
    specs: list[QuerySpec] = []
    names = set(queries.available_queries)
    for attr in sorted(names):
        # aiosql adds a `<name>_cursor` companion to every plain select; it is not a query of its own
        if attr.endswith("_cursor") and getattr(queries, attr[: -len("_cursor")], None) is not None:
            continue
        fn = getattr(queries, attr)
        operation = _BY_AIOSQL[fn.operation]
        where = f"{path.stem}.{attr}"
        parameters = _parameters(attr, where, fn, queries.driver_adapter)
        doc = fn.__doc__ or ""
        nullable, nullable_elements = _nullable(doc, where, parameters)
        for identifier in (attr, *parameters):
            if keyword.iskeyword(identifier) or not identifier.isidentifier():
                raise GenerateError(f"{where}: {identifier!r} is not usable as a Python name")
        if "conn" in parameters or "rows" in parameters:
            raise GenerateError(f"{where}: a parameter may not be named 'conn' or 'rows'")
        specs.append(
            QuerySpec(
                module=path.stem,
                name=attr,
                operation=operation,
                sql=fn.sql,
                parameters=parameters,
                doc=doc,
                line=fn.__func__.__code__.co_firstlineno,
                nullable=nullable,
                nullable_elements=nullable_elements,
                row_name=_row_name(doc, where),
                row_aliases=tuple(_class_names(doc, where, ALIAS_PREFIX)),
            )
        )
    specs.sort(key=lambda s: (s.line, s.name))
    return specs
