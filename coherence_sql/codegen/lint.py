"""`coherence-sql lint`: the hazards of aiosql query files, found before aiosql trips on them.

aiosql finds parameters with a regex that knows single and double quotes only, so an array slice,
a `:word` in a trailing comment or inside `$$ … $$`, or a comment on the `-- name:` line break a
file; and nothing checks that an operator fits its statement. This module tokenizes each query
just enough to see those (quotes, comments, dollar quotes, brackets, parentheses) and reports
`path:line: RULE message`. Rules and their exact messages are listed in docs/accessors.md.
Rule CS401 (a named query nothing in the package calls) looks at the package's own query files only.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiosql
import asyncpg
from aiosql.utils import VAR_REF

from coherence_sql.codegen.callers import QueryName, is_called, referenced_names
from coherence_sql.resources import queries_dir
from coherence_sql.sqltext import Token, tokenize

# -- findings ------------------------------------------------------------------------------------

RULES: Final[dict[str, str]] = {
    "CS100": "aiosql cannot load the file",
    "CS101": "array slice read as a parameter",
    "CS102": ":word in a trailing comment",
    "CS103": ":word inside a dollar-quoted body",
    "CS104": "comment on the -- name: line",
    "CS105": "missing parameter list",
    "CS201": "'!' on a SELECT",
    "CS202": "'^' on a query that can return several rows",
    "CS203": "row-returning operator on a statement without RETURNING",
    "CS301": "undeclared parameter",
    "CS302": "declared parameter not used",
    "CS401": "named query called by nothing in the package",
}


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule} {self.message}"


@dataclass(frozen=True, slots=True)
class Catalog:
    """Unique keys by table name (lower case), read from a live database, for rule CS202.

    Each key is a set of canonical expressions (`canonical()`): a column name, or an indexed
    expression such as `lower(email)`.
    """

    unique_keys: dict[str, tuple[frozenset[str], ...]] = field(default_factory=dict)

    @classmethod
    async def load(cls, conn: asyncpg.Connection[asyncpg.Record]) -> Catalog:
        rows = await conn.fetch(
            "SELECT c.relname, i.indexrelid, pg_get_indexdef(i.indexrelid, k.n, true) AS part "
            "FROM pg_index AS i "
            "INNER JOIN pg_class AS c ON i.indrelid = c.oid "
            "INNER JOIN pg_namespace AS n ON c.relnamespace = n.oid "
            "CROSS JOIN LATERAL generate_series(1, i.indnkeyatts) AS k (n) "
            "WHERE i.indisunique AND i.indpred IS NULL "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
            "ORDER BY c.relname, i.indexrelid, k.n"
        )
        parts: dict[tuple[str, int], set[str]] = {}
        for row in rows:
            parts.setdefault((row["relname"].lower(), row["indexrelid"]), set()).add(canonical(tokenize(row["part"])))
        keys: dict[str, list[frozenset[str]]] = {}
        for (table, _), key in parts.items():
            keys.setdefault(table, []).append(frozenset(key))
        return cls({table: tuple(found) for table, found in keys.items()})


# -- query blocks --------------------------------------------------------------------------------

_NAME_LINE: Final = re.compile(r"^[ \t]*--[ \t]*name[ \t]*:[ \t]*(?P<spec>.*)$", re.MULTILINE)
_SPEC: Final = re.compile(
    r"^(?P<name>[\w-]+)\s*(?:\((?P<params>[^()]*)\))?\s*(?P<op><!|\*!|\^|\$|!|#)?\s*(?P<rest>.*)$"
)
_NOQA: Final = re.compile(r"^--\s*noqa\s*:\s*(?P<rules>[A-Z0-9, ]+)$")
_EXEMPT_FROM_PARAMETER_LIST: Final = frozenset({"#", "*!", "<!"})  # aiosql 15's exceptions


@dataclass(slots=True)
class _Block:
    name: str
    op: str
    declared: list[str] | None
    name_line: int
    name_offset: int
    body_start: int
    body_end: int
    tokens: list[Token]
    suppressed: set[str]


class _FileLint:
    def __init__(self, path: Path, display: str, catalog: Catalog | None, referenced: set[QueryName] | None) -> None:
        self.text = path.read_text(encoding="utf-8")
        self.path = path
        self.display = display
        self.catalog = catalog
        self.referenced = referenced  # for CS401: what the package refers to; None: not checked
        self.findings: list[Finding] = []
        self._newlines = [i for i, ch in enumerate(self.text) if ch == "\n"]

    def line(self, offset: int) -> int:
        return bisect_right(self._newlines, offset - 1) + 1

    def report(self, block: _Block | None, offset: int, rule: str, message: str) -> None:
        if block is not None and rule in block.suppressed:
            return
        self.findings.append(Finding(self.display, self.line(offset), rule, message))

    def run(self) -> list[Finding]:
        for block in self._blocks():
            self._check_block(block)
        if not self.findings:
            self._check_aiosql_loads()
        return sorted(self.findings)

    def _blocks(self) -> list[_Block]:
        heads = list(_NAME_LINE.finditer(self.text))
        blocks: list[_Block] = []
        for number, head in enumerate(heads):
            body_start = head.end() + 1
            body_end = heads[number + 1].start() if number + 1 < len(heads) else len(self.text)
            spec = _SPEC.match(head["spec"].rstrip())
            tokens = tokenize(self.text, min(body_start, body_end), body_end)
            suppressed: set[str] = set()
            for token in tokens:
                if token.kind == "comment" and token.first_on_line and (noqa := _NOQA.match(token.text.strip())):
                    suppressed |= {r.strip() for r in noqa["rules"].split(",") if r.strip()}
            if spec is None:
                self.findings.append(
                    Finding(
                        self.display,
                        self.line(head.start()),
                        "CS100",
                        f"aiosql cannot parse the name line {head.group().strip()!r}",
                    )
                )
                continue
            params = spec["params"]
            declared = None if params is None else [p.strip() for p in params.split(",") if p.strip()]
            block = _Block(
                spec["name"].replace("-", "_"),
                spec["op"] or "",
                declared,
                self.line(head.start()),
                head.start(),
                body_start,
                body_end,
                tokens,
                suppressed,
            )
            rest = spec["rest"].strip()
            if rest.startswith(("--", "/*")):
                self.report(
                    block,
                    head.start(),
                    "CS104",
                    f"comment on the name line of {block.name}: aiosql cannot load it; put the comment on its own line",
                )
                continue
            if rest:
                self.report(block, head.start(), "CS100", f"aiosql cannot parse the name line of {block.name}")
                continue
            blocks.append(block)
        return blocks

    # -- rules -------------------------------------------------------------------------------

    def _check_block(self, block: _Block) -> None:
        if block.declared is None and block.op not in _EXEMPT_FROM_PARAMETER_LIST:
            self.report(
                block,
                block.name_offset,
                "CS105",
                f"{block.name} has no parameter list: aiosql 15 requires one; write {block.name}(...){block.op} "
                "(empty parentheses when there are none)",
            )
        self._check_hidden_parameters(block)
        if self.referenced is not None and not is_called(self.path.stem, block.name, self.referenced):
            self.report(
                block,
                block.name_offset,
                "CS401",
                f"nothing in the package calls {block.name} (coherence_sql.sql.{self.path.stem}.{block.name}); "
                "delete the query, or call it",
            )
        code = [t for t in block.tokens if t.kind not in ("comment", "block_comment")]
        self._check_parameters(block, code)
        if code:
            self._check_operator(block, code)

    def _check_hidden_parameters(self, block: _Block) -> None:
        depth_brackets: list[int] = []  # index in tokens of each open '['
        previous: Token | None = None
        for index, token in enumerate(block.tokens):
            if token.kind == "comment" and not token.first_on_line:
                for name, at in _aiosql_names(token.text):
                    self.report(
                        block,
                        token.start + at,
                        "CS102",
                        f"`:{name}` in a trailing comment is read by aiosql as a parameter; "
                        "move the comment to a line of its own",
                    )
            elif token.kind == "dollar":
                for name, at in _aiosql_names(token.text):
                    self.report(
                        block,
                        token.start + at,
                        "CS103",
                        f"`:{name}` inside a dollar-quoted body is read by aiosql as a parameter",
                    )
            elif token.kind == "op" and token.text == "[":
                depth_brackets.append(index)
            elif token.kind == "op" and token.text == "]" and depth_brackets:
                depth_brackets.pop()
            elif (
                token.kind == "param"
                and depth_brackets
                and previous is not None
                and not (previous.kind == "op" and previous.text == "[")
            ):
                self.report(
                    block,
                    token.start,
                    "CS101",
                    f"array slice `{previous.text}{token.text}`: aiosql reads `{token.text}` as a parameter; "
                    "put spaces around the colon (`[1 : 2]`)",
                )
            if token.kind not in ("comment", "block_comment"):
                previous = token

    def _check_parameters(self, block: _Block, code: list[Token]) -> None:
        used: dict[str, int] = {}
        for index, token in enumerate(code):
            if token.kind != "param" or _in_slice(code, index):
                continue
            used.setdefault(token.text[1:], token.start)
        if block.declared is None:
            return
        for name, offset in used.items():
            if name not in block.declared:
                self.report(
                    block,
                    offset,
                    "CS301",
                    f"{block.name} uses :{name}, which is not in its parameter list",
                )
        for name in block.declared:
            if name not in used:
                self.report(
                    block,
                    block.name_offset,
                    "CS302",
                    f"{block.name} declares {name} but never uses :{name}",
                )

    def _check_operator(self, block: _Block, code: list[Token]) -> None:
        statement = _Statement(code)
        offset = block.name_offset
        kind = statement.kind
        if block.op == "!" and kind in ("SELECT", "VALUES", "TABLE"):
            self.report(
                block,
                offset,
                "CS201",
                f"{block.name} is a {kind} but its operator is '!' (which discards rows); use '^', '$' or no operator",
            )
        returns_nothing = kind in ("INSERT", "UPDATE", "DELETE", "MERGE") and not statement.returning
        if block.op in ("", "^", "$", "<!") and returns_nothing:
            shown = f"'{block.op}'" if block.op else "(none: select many)"
            self.report(
                block,
                offset,
                "CS203",
                f"{block.name} is an {kind} without RETURNING but its operator {shown} expects rows; "
                "use '!' or add RETURNING",
            )
        if block.op == "^" and self.catalog is not None and not self._one_row(statement):
            self.report(
                block,
                offset,
                "CS202",
                f"{block.name} uses '^' but can return several rows: add LIMIT 1, filter by equality on "
                "every column of a unique key of its one table, or use no operator",
            )

    def _one_row(self, statement: _Statement) -> bool:
        if statement.kind in ("INSERT", "UPDATE", "DELETE", "MERGE"):
            return statement.returning
        if statement.limit_one or statement.single_aggregate_row:
            return True
        table = statement.single_table
        if table is None or self.catalog is None:
            return False
        pinned = statement.pinned_expressions
        return any(key <= pinned for key in self.catalog.unique_keys.get(table.lower(), ()))

    def _check_aiosql_loads(self) -> None:
        try:
            aiosql.from_path(self.path, "asyncpg")
        except Exception as exc:  # aiosql's SQLParseException / SQLLoadException
            self.findings.append(Finding(self.display, 1, "CS100", f"aiosql cannot load the file: {exc}"))


def _aiosql_names(text: str) -> list[tuple[str, int]]:
    """The names aiosql's own parameter regex finds in `text` (quoted strings skipped, as aiosql
    does), each with the offset of its colon."""
    names: list[tuple[str, int]] = []
    for match in VAR_REF.finditer(text):
        groups = match.groupdict()
        if groups["squote"] is None and groups["dquote"] is None:
            names.append((groups["var_name"], match.start("var_name") - 1))
    return names


def _in_slice(code: Sequence[Token], index: int) -> bool:
    depth = 0
    for back in range(index - 1, -1, -1):
        token = code[back]
        if token.kind != "op":
            continue
        if token.text == "]":
            depth += 1
        elif token.text == "[":
            if depth == 0:
                return back != index - 1
            depth -= 1
    return False


# -- statement shape -----------------------------------------------------------------------------

_STATEMENT_KINDS: Final = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE"})
_AGGREGATES: Final = frozenset(
    {"COUNT", "SUM", "MIN", "MAX", "AVG", "BOOL_AND", "BOOL_OR", "EVERY", "ARRAY_AGG", "STRING_AGG", "JSONB_AGG",
     "JSON_AGG", "JSONB_OBJECT_AGG", "JSON_OBJECT_AGG", "BIT_AND", "BIT_OR", "STDDEV", "VARIANCE"}
)  # fmt: skip
_CLAUSE_ENDS: Final = frozenset(
    {"WHERE", "GROUP", "HAVING", "WINDOW", "ORDER", "LIMIT", "OFFSET", "FETCH", "FOR", "UNION", "INTERSECT",
     "EXCEPT", "RETURNING", "ON"}
)  # fmt: skip
_VALUE_WORDS: Final = frozenset({"TRUE", "FALSE", "NULL", "CURRENT_DATE", "CURRENT_TIMESTAMP", "LOCALTIMESTAMP"})
_FROM_BREAKERS: Final = frozenset({"JOIN", "LATERAL", "NATURAL", "CROSS", "LEFT", "RIGHT", "FULL", "INNER"})


class _Statement:
    """The main statement's shape, from its depth-0 tokens."""

    def __init__(self, code: list[Token]) -> None:
        self.code = [t for t in code if not (t.kind == "op" and t.text == ";")]
        self.depth: list[int] = []
        depth = 0
        for token in self.code:
            if token.kind == "op" and token.text == ")":
                depth -= 1
            self.depth.append(depth)
            if token.kind == "op" and token.text == "(":
                depth += 1
        self.top = [(i, t) for i, t in enumerate(self.code) if self.depth[i] == 0]
        self.kind = next((w for _, t in self.top if (w := _upper(t)) in _STATEMENT_KINDS), "")

    @property
    def returning(self) -> bool:
        return any(_upper(t) == "RETURNING" for _, t in self.top)

    @property
    def limit_one(self) -> bool:
        words = [_upper(t) or t.text for _, t in self.top]
        for i, word in enumerate(words):
            if word == "LIMIT" and i + 1 < len(words) and words[i + 1] == "1":
                return True
            if word == "FETCH" and words[i + 1 : i + 3] in (["FIRST", "1"], ["NEXT", "1"]):
                return True
            if word == "FETCH" and words[i + 1 : i + 3] in (["FIRST", "ROW"], ["NEXT", "ROW"]):
                return True
        return False

    def _clause(self, keyword: str) -> list[tuple[int, Token]]:
        """Every token after the depth-0 `keyword` of the main statement, up to its next clause."""
        found = False
        clause: list[tuple[int, Token]] = []
        seen_kind = False
        for index, token in enumerate(self.code):
            top = self.depth[index] == 0
            word = _upper(token) if top else ""
            if not seen_kind:
                seen_kind = word == self.kind
                continue
            if found:
                if word in _CLAUSE_ENDS and word != keyword:
                    break
                clause.append((index, token))
            elif word == keyword:
                found = True
        return clause

    @property
    def single_aggregate_row(self) -> bool:
        """A SELECT whose select list aggregates with no GROUP BY (or a SELECT with no FROM)."""
        if self.kind != "SELECT" or any(_upper(t) in ("GROUP", "UNION", "INTERSECT", "EXCEPT") for _, t in self.top):
            return False
        words = [_upper(t) for _, t in self.top]
        if "FROM" not in words:
            return True
        select_at = next(i for i, (_, t) in enumerate(self.top) if _upper(t) == "SELECT")
        from_at = words.index("FROM")
        for position in range(select_at + 1, from_at):
            index, token = self.top[position]
            if _upper(token) in _AGGREGATES and index + 1 < len(self.code) and self.code[index + 1].text == "(":
                close = _closing(self.code, self.depth, index + 1)
                after = self.code[close + 1] if close + 1 < len(self.code) else None
                if after is None or _upper(after) != "OVER":
                    return True
        return False

    @property
    def single_table(self) -> str | None:
        """The one table of the main SELECT's FROM (no joins, no comma list), or None."""
        if self.kind != "SELECT" or any(_upper(t) in ("UNION", "INTERSECT", "EXCEPT") for _, t in self.top):
            return None
        source = [t for _, t in self._clause("FROM")]
        if not source or any(_upper(t) in _FROM_BREAKERS or t.text in (",", "(") for t in source):
            return None
        names = [t for t in source if t.kind in ("word", "qident")]
        if len(source) >= 3 and source[1].text == ".":
            return _identifier(source[2])  # schema.table
        return _identifier(names[0]) if names else None

    @property
    def pinned_expressions(self) -> frozenset[str]:
        """What the main WHERE pins with `expression = value` conjuncts, in canonical form
        (nothing when the WHERE has an OR); a value mentions no column."""
        clause = self._clause("WHERE")
        if any(_upper(t) == "OR" and self.depth[i] == 0 for i, t in clause):
            return frozenset()
        conjuncts: list[list[tuple[int, Token]]] = [[]]
        for index, token in clause:
            if _upper(token) == "AND" and self.depth[index] == 0:
                conjuncts.append([])
            else:
                conjuncts[-1].append((index, token))
        pinned: set[str] = set()
        for conjunct in conjuncts:
            equals = [n for n, (i, t) in enumerate(conjunct) if t.text == "=" and self.depth[i] == 0]
            if len(equals) != 1:
                continue
            tokens = [t for _, t in conjunct]
            left, right = tokens[: equals[0]], tokens[equals[0] + 1 :]
            for expression, value in ((left, right), (right, left)):
                if expression and value and _mentions_column(expression) and not _mentions_column(value):
                    pinned.add(canonical(expression))
        return frozenset(pinned)


def _upper(token: Token) -> str:
    return token.text.upper() if token.kind == "word" else ""


def _identifier(token: Token) -> str:
    return token.text[1:-1].replace('""', '"') if token.kind == "qident" else token.text.lower()


def _is_column(tokens: Sequence[Token], index: int) -> bool:
    """Whether tokens[index] names a column: an identifier that is no function, type or keyword."""
    token = tokens[index]
    if token.kind == "qident":
        return True
    if token.kind != "word" or token.text.upper() in _VALUE_WORDS:
        return False
    after = tokens[index + 1] if index + 1 < len(tokens) else None
    before = tokens[index - 1] if index else None
    return not ((after is not None and after.text == "(") or (before is not None and before.text == "::"))


def _mentions_column(tokens: Sequence[Token]) -> bool:
    return any(_is_column(tokens, i) for i in range(len(tokens)))


def canonical(tokens: Sequence[Token]) -> str:
    """An expression with table qualifiers, casts and redundant parentheses removed, lower-cased:
    `lower((email)::text)` from the catalog and `lower(c.email)` from a query both give `lower(email)`."""
    kept: list[Token] = []
    index = 0
    code = [t for t in tokens if t.kind not in ("comment", "block_comment")]
    while index < len(code):
        token = code[index]
        following = code[index + 1] if index + 1 < len(code) else None
        if token.kind in ("word", "qident") and following is not None and following.text == ".":
            index += 2  # a qualifier: `c.` in `c.email`
            continue
        if token.text == "::":
            index += 2
            while index < len(code) and code[index].text in ("[", "]"):
                index += 1
            continue
        kept.append(token)
        index += 1
    texts = [_identifier(t) if t.kind in ("word", "qident") else t.text for t in kept]
    changed = True
    while changed:
        changed = False
        for i in range(len(texts) - 2):
            opens_call = i > 0 and re.fullmatch(r"\w+", texts[i - 1]) is not None
            if texts[i] == "(" and texts[i + 2] == ")" and not opens_call:
                texts[i : i + 3] = [texts[i + 1]]
                changed = True
                break
    return "".join(texts)


def _closing(code: list[Token], depth: list[int], open_index: int) -> int:
    for index in range(open_index + 1, len(code)):
        if code[index].text == ")" and depth[index] == depth[open_index]:
            return index
    return len(code) - 1


# -- entry points --------------------------------------------------------------------------------


def lint_file(
    path: Path, catalog: Catalog | None = None, *, display: str | None = None, referenced: set[QueryName] | None = None
) -> list[Finding]:
    """The findings for one query file. Without a catalog, rule CS202 is not checked; without
    `referenced` (the package's references to generated modules, `callers.referenced_names()`), CS401."""
    return _FileLint(path, display or str(path), catalog, referenced).run()


def sql_files(paths: Iterable[Path]) -> list[Path]:
    """The .sql files named, directories expanded (sorted)."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.glob("*.sql")) if path.is_dir() else [path])
    return found


def _is_package_query_file(path: Path) -> bool:
    try:
        return path.resolve().parent == queries_dir().resolve()
    except FileNotFoundError:  # no queries/ beside or inside the package
        return False


def lint_paths(paths: Iterable[Path], catalog: Catalog | None = None) -> list[Finding]:
    """The findings for every file named (directories expanded); the package's own query files are
    also checked for queries nothing calls (CS401)."""
    findings: list[Finding] = []
    referenced: set[QueryName] | None = None
    for path in sql_files(paths):
        if _is_package_query_file(path):
            referenced = referenced_names() if referenced is None else referenced
            findings.extend(lint_file(path, catalog, referenced=referenced))
        else:
            findings.extend(lint_file(path, catalog))
    return findings
