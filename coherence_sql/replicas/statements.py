"""Which statements a replica may run: read-only ones, decided from the SQL text once and cached.

A statement is read-only when every statement in the text is a SELECT (or a WITH of SELECTs) that
writes nothing, locks no row and calls no function outside a list of functions PostgreSQL marks
immutable or stable. Anything else, and anything this module cannot read, goes to the primary:
a wrong "write" costs a primary read, a wrong "read" would lose a write on a replica.
tests/replicas/test_statements.py holds every named query of queries/*.sql against the server's plan.
"""

from __future__ import annotations

from typing import Final

from coherence_sql.sqltext import Token, split_statements, tokenize

__all__ = ["READ_ONLY_FUNCTIONS", "SERVER_STATE", "is_read_only"]

# Words that write, lock rows or change the session wherever they appear in a SELECT or a WITH
# (a data-modifying CTE, SELECT ... INTO a new table, a row lock's FOR UPDATE/SHARE).
_WRITING_WORDS: Final = frozenset(
    {"insert", "update", "delete", "merge", "into", "lock", "copy", "call", "notify", "truncate", "create",
     "alter", "drop", "grant", "revoke", "listen", "reset", "set", "vacuum", "analyze", "refresh", "do"}
)  # fmt: skip
_ROW_LOCK_WORDS: Final = frozenset({"update", "share", "no", "key"})  # after FOR: FOR UPDATE, FOR NO KEY UPDATE

# Words that may stand before "(" without being a function call: keywords and type names.
_NOT_CALLS: Final = frozenset(
    {"select", "from", "where", "and", "or", "not", "in", "exists", "any", "all", "some", "as", "on", "using",
     "join", "values", "filter", "over", "within", "partition", "by", "order", "group", "having", "then",
     "else", "when", "case", "end", "is", "like", "ilike", "similar", "between", "with", "materialized",
     "recursive", "union", "intersect", "except", "lateral", "limit", "offset", "array", "row", "cast",
     "coalesce", "nullif", "greatest", "least", "extract", "position", "substring", "overlay", "trim",
     "interval", "numeric", "decimal", "varchar", "char", "character", "varying", "bit", "time", "timestamp",
     "float", "distinct", "asc", "desc", "nulls", "first", "last", "only", "escape", "return", "if"}
)  # fmt: skip

# Functions a replica may run: immutable or stable in pg_proc for every overload, or (SERVER_STATE)
# volatile only because they report the server's state. tests/replicas/test_statements.py checks the
# first on a live server and runs the second on a hot standby, which can write nothing.
SERVER_STATE: Final = frozenset(
    {"pg_database_size", "pg_relation_size", "pg_total_relation_size", "pg_is_in_recovery",
     "pg_last_wal_receive_lsn", "pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp"}
)  # fmt: skip
READ_ONLY_FUNCTIONS: Final = SERVER_STATE | frozenset(
    {"count", "sum", "min", "max", "avg", "bool_and", "bool_or", "every", "array_agg", "string_agg",
     "json_agg", "jsonb_agg", "json_build_object", "jsonb_build_object", "jsonb_object_agg", "row_number",
     "rank", "dense_rank", "lower", "upper", "length", "char_length", "left", "right", "strpos", "replace",
     "concat", "concat_ws", "split_part", "btrim", "ltrim", "rtrim", "abs", "round", "floor", "ceil",
     "unnest", "array_length", "cardinality", "array_position", "now", "current_setting", "to_char",
     "date_trunc", "date_part", "make_interval", "jsonb_typeof", "jsonb_array_length", "to_jsonb",
     "to_json", "jsonb_build_array", "json_build_array", "host", "current_database", "generate_series",
     "mode", "percentile_cont", "percentile_disc", "lag", "lead", "first_value", "last_value", "nth_value",
     "ntile", "cume_dist", "percent_rank", "array_remove", "starts_with", "to_regclass", "inet_server_addr",
     "pg_postmaster_start_time", "format", "current_schema", "has_table_privilege", "has_parameter_privilege"}
)  # fmt: skip

_CACHE: dict[str, bool] = {}


def is_read_only(sql: str) -> bool:
    """Whether a replica may run `sql` (see the module docstring); the answer is cached per text."""
    known = _CACHE.get(sql)
    if known is None:
        known = _CACHE[sql] = _classify(sql)
    return known


def _classify(sql: str) -> bool:
    try:
        statements = [s for s in split_statements(sql) if s.strip()]
    except Exception:  # text the lexer cannot read is the primary's to judge
        return False
    return bool(statements) and all(_statement_is_read_only(s) for s in statements)


def _statement_is_read_only(statement: str) -> bool:
    words = [t for t in tokenize(statement) if t.kind not in ("comment", "block_comment")]
    if not words or words[0].kind != "word" or words[0].text.lower() not in ("select", "with"):
        return False
    for index, token in enumerate(words):
        if token.kind != "word":
            continue
        word = token.text.lower()
        if word in _WRITING_WORDS:
            return False
        if word == "for" and _next_word(words, index) in _ROW_LOCK_WORDS:
            return False
        if _calls_unknown_function(words, index, word):
            return False
    return True


def _next_word(tokens: list[Token], index: int) -> str | None:
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    return following.text.lower() if following is not None and following.kind == "word" else None


def _calls_unknown_function(tokens: list[Token], index: int, word: str) -> bool:
    if word in _NOT_CALLS or word in READ_ONLY_FUNCTIONS or not _is_call(tokens, index):
        return False
    return not _is_column_list(tokens, index)


def _is_column_list(tokens: list[Token], index: int) -> bool:
    """`AS name (a, b)` (an alias's column names) or `name (a, b) AS (...)` (a CTE's)."""
    if index > 0 and tokens[index - 1].kind == "word" and tokens[index - 1].text.lower() == "as":
        return True
    depth = 0
    for position in range(index + 1, len(tokens)):
        text = tokens[position].text if tokens[position].kind == "op" else ""
        depth += (text == "(") - (text == ")")
        if depth == 0:
            after = [t.text.lower() for t in tokens[position + 1 : position + 3]]
            return len(after) == 2 and after[0] == "as" and after[1] in ("(", "materialized", "not")
    return False


def _is_call(tokens: list[Token], index: int) -> bool:
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    return following is not None and following.kind == "op" and following.text == "("
