"""The plan's edge checks (one fused loop, keys numbered) give exactly the verdicts of the
per-record path they replaced: the same rows, refusals (kind and text), merges, parked edges and
locking rows, over valid and hostile edges. No database: the plan is pure (nothing is written)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from coherence_sql.errors import InvalidValueError
from coherence_sql.models import Project
from coherence_sql.stores import rules
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.transfer.backfill.checks import RECORD_ERRORS, BadRecordError, error_text
from coherence_sql.transfer.backfill.plan import Plan
from coherence_sql.transfer.backfill.report import Normalisation
from coherence_sql.transfer.snapshot import Snapshot, collect_snapshot, record_key

Verdicts = dict[str, Any]


def reference(edges: list[Any], project_keys: set[tuple[str, str]]) -> Verdicts:
    """The per-record path as it was (plan.py before the fused loop), verbatim in its rules."""
    rows: list[tuple[Any, ...]] = []
    problems: list[tuple[int, str, str, str]] = []
    locking: set[int] = set()
    merged, parked = Normalisation("merged"), Normalisation("parked")
    seen: dict[tuple[str, str, str, str], int] = {}
    keys: dict[tuple[str, str], tuple[str, str]] = {}

    def key_of(ecosystem: str, name: str) -> tuple[str, str]:
        key = keys.get((ecosystem, name))
        if key is None:
            key = keys[ecosystem, name] = rules.project_key(ecosystem, name)
        return key

    def convert(index: int, e: Any) -> tuple[Any, ...] | None:
        source = key_of(e.from_ecosystem, e.from_name)
        target = key_of(e.to_ecosystem, e.to_name)
        if source == target:
            raise BadRecordError(f"a project cannot depend on itself: {e.from_ecosystem}/{e.from_name}", "self-edge")
        edge = (*source, *target)
        if edge in seen:
            merged.add(f"edges[{index}] repeats edges[{seen[edge]}] ({record_key('edges', e)})")
            return None
        seen[edge] = index
        if source not in project_keys or target not in project_keys:
            missing = "/".join(source if source not in project_keys else target)
            parked.add(f"edges[{index}] ({record_key('edges', e)}): {missing} is not in the snapshot")
            locking.add(index + 1)
        return (index + 1, *edge)

    for index, e in enumerate(edges):
        try:
            row = convert(index, e)
        except RECORD_ERRORS as exc:
            kind = getattr(exc, "kind", "invalid")
            text = str(exc) if isinstance(exc, BadRecordError | InvalidValueError) else error_text(exc)
            problems.append((index, record_key("edges", e), kind, text))
            continue
        if row is not None:
            rows.append(row)
    return {
        "rows": rows,
        "problems": problems,
        "locking": locking,
        "merged": (merged.count, merged.examples),
        "parked": (parked.count, parked.examples),
    }


def planned(edges: list[Any], projects: list[Project]) -> Verdicts:
    plan = Plan(Snapshot(projects=projects, edges=edges), 10_000)
    section = next(s for s in plan.sections if s.name == "edges")
    notes = {n.what.split(":")[1].split()[0]: n for n in plan.normalised.values() if n.what.startswith("edges:")}
    assert section.edge_keys is not None
    return {
        "rows": section.edge_keys.by_key(section.rows),  # rows hold key numbers: the keys they stand for
        "problems": [(p.index, p.key, p.kind, p.reason) for p in plan.problems if p.section == "edges"],
        "locking": section.locking,
        "merged": (notes["duplicates"].count, notes["duplicates"].examples),
        "parked": (notes["parked"].count, notes["parked"].examples),
    }


# Few spellings, so that case variants, duplicates, self-edges and missing projects are common;
# hostile ones: empty, NUL, a lone surrogate, a dotted "İ" that lengthens when lower-cased, too
# long, not text at all (a Snapshot built in code is not validated), unhashable.
NAMES = st.sampled_from(["a", "A", "b", "B", "c", "İ", "x" * 200, "", "n\x00ul", "s\ud800"])
HOSTILE: st.SearchStrategy[Any] = st.sampled_from([None, 7, ["a"]])
SPELLING = st.one_of(NAMES, NAMES, NAMES, HOSTILE)
EDGES = st.lists(st.builds(DependencyEdge, SPELLING, SPELLING, SPELLING, SPELLING), max_size=40)
KNOWN = st.lists(st.tuples(st.sampled_from(["npm", "pypi"]), st.sampled_from(["a", "b", "c"])), max_size=6)


def projects_of(keys: list[tuple[str, str]]) -> list[Project]:
    return [Project(ecosystem=e, name=n, version="1", description="d") for e, n in dict.fromkeys(keys)]


def npm(edges: list[DependencyEdge]) -> list[DependencyEdge]:
    """Most edges in one ecosystem, so that the snapshot's projects are hit and missed."""
    return [e._replace(from_ecosystem="npm") if i % 2 else e for i, e in enumerate(edges)]


@given(EDGES, KNOWN)
def test_fused_edge_checks_give_the_per_record_verdicts(edges: list[DependencyEdge], known: list[Any]) -> None:
    edges = npm(edges)
    projects = projects_of(known)
    keys = {rules.project_key(p.ecosystem, p.name) for p in projects}
    assert planned(edges, projects) == reference(edges, keys)


def test_the_verdicts_cover_each_kind() -> None:
    """The generated cases above can hit every branch; this one surely does, and says what each gives."""
    projects = projects_of([("npm", "a"), ("npm", "b")])
    edges = [
        DependencyEdge("npm", "a", "npm", "b"),
        DependencyEdge("NPM", "A", "npm", "B"),  # the same edge in other case: merged
        DependencyEdge("npm", "a", "npm", "A"),  # itself
        DependencyEdge("npm", "a", "npm", "zzz"),  # parked
        DependencyEdge("npm", "", "npm", "a"),  # empty name
        DependencyEdge("npm", ["a"], "npm", "a"),  # type: ignore[arg-type]  # unhashable
    ]
    verdicts = planned(edges, projects)
    assert verdicts == reference(edges, {("npm", "a"), ("npm", "b")})
    assert verdicts["rows"] == [(1, "npm", "a", "npm", "b"), (4, "npm", "a", "npm", "zzz")]
    assert verdicts["locking"] == {4}
    assert verdicts["merged"] == (1, ["edges[1] repeats edges[0] (NPM/A -> npm/B)"])
    assert verdicts["parked"] == (1, ["edges[3] (npm/a -> npm/zzz): npm/zzz is not in the snapshot"])
    assert [(p[0], p[2]) for p in verdicts["problems"]] == [(2, "self-edge"), (4, "invalid"), (5, "invalid")]
    assert verdicts["problems"][0][3] == "a project cannot depend on itself: npm/a"
    assert verdicts["problems"][1][3].startswith("project name must be a non-empty string")
    assert verdicts["problems"][2][3] == "TypeError: unhashable type: 'list'"


# A file's edges as decoded: the usual shape, with the spellings above or JSON's other values in
# its places, and shapes that are no edge at all (parsing lists those as malformed).
JSON_VALUE: st.SearchStrategy[Any] = st.sampled_from([None, 7, 1.5, True, ["a"], {"a": "b"}])
JSON_SPELLING = st.one_of(NAMES, NAMES, NAMES, JSON_VALUE)
RAW_EDGE: st.SearchStrategy[Any] = st.one_of(
    st.builds(lambda a, b, c, d: [[a, b], [c, d]], JSON_SPELLING, JSON_SPELLING, JSON_SPELLING, JSON_SPELLING),
    st.builds(lambda a, b, c, d: [["npm", b], ["npm", d]], NAMES, NAMES, NAMES, NAMES),
    st.sampled_from(
        [None, "a", 3, [], [["a", "b"]], [["a", "b"], ["c"]], [["a"], ["c", "d"]], [["a", "b"], ["c", "d"], ["e", "f"]]]
    ),
    st.sampled_from([[("npm", "a"), ["npm", "b"]], {"from": ["npm", "a"]}, [["a", "b"], "cd"]]),
)


def plan_of(data: dict[str, Any], *, edges_raw: bool) -> dict[str, Any]:
    collected = collect_snapshot(data, edges_raw=edges_raw)
    plan = Plan(collected.snapshot, 10_000, collected)
    section = next(s for s in plan.sections if s.name == "edges")
    assert section.edge_keys is not None
    return {
        "rows": section.edge_keys.by_key(section.rows),
        "locking": section.locking,
        "problems": sorted(((p.section, p.index), p) for p in plan.problems),
        "notes": {n.what: (n.count, n.examples) for n in plan.normalised.values()},
        "raw": plan.raw,
    }


@given(st.lists(RAW_EDGE, max_size=30), KNOWN)
def test_a_files_edges_checked_as_decoded_give_the_verdicts_of_parsed_edges(edges: list[Any], known: list[Any]) -> None:
    """The plan reads a file's edges as decoded (no DependencyEdge each): the same rows, problems
    (malformed shapes included: kind, key and text), notes and quarantined records as parsing them."""
    data = {"projects": [p.model_dump(mode="json") for p in projects_of(known)], "edges": edges}

    assert plan_of(data, edges_raw=True) == plan_of(data, edges_raw=False)


def test_a_malformed_edge_read_as_decoded_is_the_problem_parsing_lists() -> None:
    data = {"edges": [[["npm", "a"], ["npm", "b"]], [["npm", "a"], ["npm"]], "x", [["npm", 7], ["npm", "b"]]]}

    plan = Plan(collect_snapshot(data, edges_raw=True).snapshot, 10, collect_snapshot(data, edges_raw=True))

    assert [(p.index, p.kind, p.reason) for p in sorted(plan.problems, key=lambda p: p.index)] == [
        (1, "malformed", "expected [ecosystem, name] (got [['npm', 'a'], ['npm']])"),
        (2, "malformed", "expected [[from_ecosystem, from_name], [to_ecosystem, to_name]] (got 'x')"),
        (3, "malformed", "expected [ecosystem, name] (got [['npm', 7], ['npm', 'b']])"),
    ]
