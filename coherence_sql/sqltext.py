"""SQL text as tokens, and statements split on top-level semicolons.

One lexer for the query lint (coherence_sql.codegen.lint) and the schema runner's `-- no-transaction`
files (coherence_sql.schema): comments, quoted strings (E'…' with backslash escapes), quoted
identifiers and dollar quotes are single tokens, so a `;` or `--` inside them is never mistaken
for SQL. aiosql's `:name` parameters are tokens of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # word, param, number, string, qident, dollar, comment, block_comment, op, positional
    text: str
    start: int  # offset in the file
    first_on_line: bool


_WORD: Final = re.compile(r"[A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*")
_NUMBER: Final = re.compile(r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")
_DOLLAR_TAG: Final = re.compile(r"\$(?:[A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$")
_PARAM: Final = re.compile(r":\w+")


def tokenize(text: str, start: int = 0, end: int | None = None) -> list[Token]:
    """The tokens of text[start:end]; whitespace dropped, everything else kept."""
    stop = len(text) if end is None else end
    tokens: list[Token] = []
    i = start
    line_start = True
    while i < stop:
        ch = text[i]
        if ch == "\n":
            line_start = True
            i += 1
            continue
        if ch.isspace():
            i += 1
            continue
        j = i + 1
        kind = "op"
        nxt = text[i + 1] if i + 1 < stop else ""
        if ch == "-" and nxt == "-":
            kind, j = "comment", _find(text, "\n", i, stop)
        elif ch == "/" and nxt == "*":
            kind, j = "block_comment", _block_comment_end(text, i, stop)
        elif ch == "'" or (ch in "eE" and nxt == "'"):
            kind, j = "string", _string_end(text, i, stop)
        elif ch == '"':
            kind, j = "qident", _find(text, '"', i + 1, stop, past=True)
        elif ch == "$" and (tag := _DOLLAR_TAG.match(text, i, stop)):
            kind, j = "dollar", _find(text, tag.group(), tag.end(), stop, past=True, length=len(tag.group()))
        elif ch == "$" and nxt.isdigit():
            kind, j = "positional", _match_end(_NUMBER, text, i + 1, stop)
        elif ch == ":" and nxt == ":":
            j = i + 2
        elif ch == ":" and (param := _PARAM.match(text, i, stop)) and (i == 0 or text[i - 1] != ":"):
            kind, j = "param", param.end()
        elif word := _WORD.match(text, i, stop):
            kind, j = "word", word.end()
        elif ch.isdigit():
            kind, j = "number", _match_end(_NUMBER, text, i, stop)
        tokens.append(Token(kind, text[i:j], i, line_start))
        line_start = False
        i = j
    return tokens


def _match_end(pattern: re.Pattern[str], text: str, start: int, stop: int) -> int:
    match = pattern.match(text, start, stop)
    return match.end() if match else start + 1


def _find(text: str, needle: str, start: int, stop: int, *, past: bool = False, length: int = 1) -> int:
    found = text.find(needle, start, stop)
    if found < 0:
        return stop
    return found + length if past else found


def _block_comment_end(text: str, i: int, stop: int) -> int:
    depth, i = 1, i + 2
    while i < stop and depth:
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def _string_end(text: str, i: int, stop: int) -> int:
    escapes = text[i] in "eE"
    i += 2 if escapes else 1
    while i < stop:
        ch = text[i]
        if escapes and ch == "\\":
            i += 2
            continue
        if ch == "'":
            if i + 1 < stop and text[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    return stop


def split_statements(text: str) -> list[str]:
    """The statements of a SQL text, split on top-level semicolons; chunks holding only comments
    are dropped. Used for `-- no-transaction` files: PostgreSQL runs a multi-statement query string
    as one implicit transaction, where `CREATE INDEX CONCURRENTLY` is refused. (A `BEGIN ATOMIC …
    END` function body is not understood; keep such functions in transactional files.)
    """
    statements: list[str] = []
    start = 0
    has_code = False
    for token in tokenize(text):
        if token.kind in ("comment", "block_comment"):
            continue
        if token.text == ";":
            if has_code:
                statements.append(text[start : token.start + 1].strip())
            start, has_code = token.start + 1, False
        else:
            has_code = True
    if has_code:
        statements.append(text[start:].strip())
    return statements
