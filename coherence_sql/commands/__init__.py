"""Subcommands of `coherence-sql`, one module per group; each has `register(subparsers)`.

A module's `register` adds its parsers and sets `run=` to a function taking the parsed
arguments and returning an exit code (or a coroutine that returns one). Beside them: `database`
(which database a command uses), `output` (text or `--json`), `logs` (`--log-level`,
`--log-format`) and `render` (tables and progress).
"""

from __future__ import annotations

from types import ModuleType

from coherence_sql.commands import (
    backup_commands,
    codegen_commands,
    cutover_commands,
    data_commands,
    db_commands,
    demo_command,
    health_commands,
    loadtest_commands,
    metrics_commands,
    roles_commands,
    schema_commands,
)

COMMAND_MODULES: tuple[ModuleType, ...] = (
    db_commands,
    schema_commands,
    roles_commands,
    codegen_commands,
    cutover_commands,
    data_commands,
    backup_commands,
    metrics_commands,
    health_commands,
    loadtest_commands,
    demo_command,
)
