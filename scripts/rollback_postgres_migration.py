#!/usr/bin/env python3
"""Roll back a migration phase (the plan's rollback automation script).

A thin entry point: `python scripts/rollback_postgres_migration.py ARGS` is `coherence-sql rollback ARGS`
(`--database-url DSN` may come anywhere among ARGS). See docs/runbook.md.
"""

from __future__ import annotations

import sys

from coherence_sql.cli import main

if __name__ == "__main__":
    sys.exit(main(["rollback", *sys.argv[1:]]))
