"""What a command prints: text for a person, or with `--json` one JSON document on stdout.

Errors follow the same rule: in JSON mode `{"error": {"type": ..., "message": ...}}` on stdout
(with the exit status text mode has), else one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any


def wants_json(args: argparse.Namespace) -> bool:
    """Whether `--json` was given (before or after the command name)."""
    return bool(getattr(args, "json", False))


def as_json(data: Any) -> str:
    """`data` as indented JSON; dates, paths and other values as their text."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def emit(args: argparse.Namespace, data: Mapping[str, Any], lines: Iterable[str]) -> None:
    """Print `data` as JSON in JSON mode, else `lines`."""
    if wants_json(args):
        print(as_json(data), flush=True)
        return
    for line in lines:
        print(line, flush=True)


def emit_error(json_mode: bool, kind: str, message: str) -> None:
    """An error the way the mode wants it (the caller chooses the exit status)."""
    if json_mode:
        print(as_json({"error": {"type": kind, "message": message}}), flush=True)
    else:
        print(f"coherence-sql: {kind}: {message}", file=sys.stderr, flush=True)
