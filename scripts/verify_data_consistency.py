#!/usr/bin/env python3
"""Compare a snapshot of the in-memory stores with PostgreSQL (the plan's consistency verification script).

A thin entry point: `python scripts/verify_data_consistency.py ARGS` is `coherence-sql verify ARGS`
(`--database-url DSN` may come anywhere among ARGS). See docs/runbook.md.
"""

from __future__ import annotations

import sys

from coherence_sql.cli import main

if __name__ == "__main__":
    sys.exit(main(["verify", *sys.argv[1:]]))
