"""Where the package finds its SQL (`schema/`, `queries/`) and the example snapshot (`examples/`).

In a source checkout they sit at the project root; a built wheel carries copies inside the
package (`coherence_sql/_data/`, written by setup.py's build step).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _sql_dir(name: str) -> Path:
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"coherence_sql cannot find its {name}/ directory (looked in {packaged} and {checkout})")


def schema_dir() -> Path:
    return _sql_dir("schema")


def queries_dir() -> Path:
    return _sql_dir("queries")


def example_snapshot() -> Path:
    """The shipped example snapshot of the API's in-memory stores (for `coherence-sql demo`)."""
    return _sql_dir("examples") / "snapshot.json"
