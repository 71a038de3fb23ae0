"""Where each result column comes from, read off the statement's generic plan.

asyncpg does not expose a column's table and attribute number, so the generator asks the server
for `EXPLAIN (VERBOSE, FORMAT JSON)` of the statement under `plan_cache_mode = force_generic_plan`
and maps each top-level `Output` expression back to a scanned relation's column. A column is
non-null only when it is such a column, NOT NULL in the catalog, and not on the nullable side of
an outer join; anything the walk cannot prove is nullable (docs/accessors.md lists the rules).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

# Nodes whose outputs no longer come from one scanned row: be conservative about all columns.
_UNSAFE_NODES: Final = frozenset({"Append", "Merge Append", "SetOp", "Recursive Union"})
# Subplans (scalar subqueries, CTE bodies) hang under these relationships; their joins and set
# operations do not affect the main query's columns.
_SUBPLAN_RELATIONSHIPS: Final = frozenset({"InitPlan", "SubPlan"})

_IDENT: Final = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_COLUMN_REF: Final = re.compile(rf"^(?:(?P<alias>{_IDENT})\.)?(?P<column>{_IDENT})$")
_CAST: Final = re.compile(r"^\((?P<inner>.*)\)::[A-Za-z_][\w .\"]*(?:\(\d+(?:,\d+)?\))?(?:\[\])*$")


@dataclass(frozen=True, slots=True)
class ColumnSource:
    """A result column that is a relation's column, as the plan shows it."""

    schema: str
    table: str
    column: str
    outer_nullable: bool  # on the nullable side of an outer join


@dataclass(frozen=True, slots=True)
class NeverNull:
    """A computed column the plan proves cannot be NULL (count(...))."""


Origin = ColumnSource | NeverNull | None


def _unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


def _children(node: dict[str, Any]) -> list[dict[str, Any]]:
    plans: list[dict[str, Any]] = node.get("Plans", [])
    return plans


def _walk(node: dict[str, Any], *, main_only: bool = False) -> Iterator[dict[str, Any]]:
    yield node
    for child in _children(node):
        if main_only and child.get("Parent Relationship") in _SUBPLAN_RELATIONSHIPS:
            continue
        yield from _walk(child, main_only=main_only)


def _aliases(node: dict[str, Any]) -> set[str]:
    return {n["Alias"] for n in _walk(node) if "Alias" in n}


def _nullable_aliases(root: dict[str, Any]) -> set[str]:
    """Aliases scanned on the nullable side of some outer join."""
    nullable: set[str] = set()
    for node in _walk(root):
        join_type = node.get("Join Type")
        if join_type not in ("Left", "Right", "Full"):
            continue
        for child in _children(node):
            side = child.get("Parent Relationship")
            if (
                (join_type == "Left" and side == "Inner")
                or (join_type == "Right" and side == "Outer")
                or join_type == "Full"
            ):
                nullable |= _aliases(child)
    return nullable


def _matching_paren(text: str, start: int) -> int:
    """Index of the parenthesis closing the one at `start` (quotes respected), or -1."""
    depth = 0
    quote: str | None = None
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _strip_casts(expression: str) -> str:
    """`(p.id)::bigint` → `p.id`: a cast keeps a value's nullness."""
    while True:
        match = _CAST.match(expression)
        if not match or _matching_paren(expression, 0) != len(match["inner"]) + 1:
            return expression
        expression = match["inner"]


def _is_count(expression: str) -> bool:
    """`count(...)`, with optional FILTER (...) and OVER ..., and nothing else: never NULL."""
    if not expression.startswith("count("):
        return False
    end = _matching_paren(expression, len("count"))
    if end < 0:
        return False
    rest = expression[end + 1 :]
    if rest.startswith(" FILTER ("):
        close = _matching_paren(expression, end + len(" FILTER ("))
        if close < 0:
            return False
        end, rest = close, expression[close + 1 :]
    if rest.startswith(" OVER ("):
        return _matching_paren(expression, end + len(" OVER (")) == len(expression) - 1
    if rest.startswith(" OVER "):
        return re.fullmatch(_IDENT, rest[len(" OVER ") :]) is not None
    return rest == ""


def output_origins(explained: Any, columns: int) -> list[Origin]:
    """The origin of each of the first `columns` outputs of an `EXPLAIN (VERBOSE, FORMAT JSON)`."""
    root: dict[str, Any] = explained[0]["Plan"]
    outputs: list[str] = root.get("Output", [])
    if len(outputs) < columns:
        return [None] * columns
    main = list(_walk(root, main_only=True))
    if any(n.get("Node Type") in _UNSAFE_NODES or "Grouping Sets" in n for n in main):
        return [None] * columns
    relations = {
        n["Alias"]: (n.get("Schema", "public"), n["Relation Name"]) for n in _walk(root) if "Relation Name" in n
    }
    nullable = _nullable_aliases(root)
    origins: list[Origin] = []
    for expression in outputs[:columns]:
        bare = _strip_casts(expression.strip())
        if _is_count(bare):
            origins.append(NeverNull())
            continue
        match = _COLUMN_REF.match(bare)
        if match is None:
            origins.append(None)
            continue
        alias = _unquote(match["alias"]) if match["alias"] else None
        if alias is None:
            # EXPLAIN leaves columns unqualified when the query has a single range table entry.
            if len(relations) != 1:
                origins.append(None)
                continue
            alias = next(iter(relations))
        if alias not in relations:
            origins.append(None)  # a subquery, CTE, function or VALUES scan: not a table column
            continue
        schema, table = relations[alias]
        origins.append(ColumnSource(schema, table, _unquote(match["column"]), alias in nullable))
    return origins
