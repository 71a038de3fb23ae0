"""The command line's global options: --version, --log-level, --log-format json, --json everywhere."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import coherence_sql
from coherence_sql.cli import build_parser, main
from coherence_sql.commands.logs import configure_logging

PASSWORD = "Zq9-never-shown"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coherence_sql.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"coherence-sql {version('coherence-sql')}\n"
    assert coherence_sql.__version__ == version("coherence-sql")


def every_command(parser: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    found: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = every_command(sub, (*prefix, name))
                found.extend(nested or [(*prefix, name)])
    return found


REQUIRED = {
    "backfill": ["s.json"],
    "verify": ["s.json"],
    "rollback": ["--phase", "1"],
    "backup": ["--dir", "backups"],
    "restore": ["backups/x"],
    "loadtest": ["mixed"],
}


def test_every_command_takes_json_before_or_after_its_name() -> None:
    parser = build_parser()
    commands = every_command(parser)
    assert len(commands) >= 12, commands
    for command in commands:
        extra = REQUIRED.get(command[0], [])
        after = parser.parse_args([*command, *extra, "--json"])
        before = parser.parse_args(["--json", *command, *extra])
        neither = parser.parse_args([*command, *extra])
        assert getattr(after, "json", False) or after.global_json, command
        assert before.global_json, command
        assert not getattr(neither, "json", False), command
        assert not neither.global_json, command


def test_json_mode_prints_one_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "status", "--json", "--data-dir", str(tmp_path / "none")]) == 1
    shown = json.loads(capsys.readouterr().out)
    assert shown == {
        "running": False,
        "initialized": False,
        "pid": None,
        "data_dir": str(tmp_path / "none"),
        "url": None,
    }


def test_json_mode_errors_are_json_with_the_same_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    dsn = f"postgresql://app:{PASSWORD}@127.0.0.1:1/x"
    assert main(["migrate", "--database-url", dsn]) == 2
    text = capsys.readouterr()
    assert text.out == ""
    assert text.err.startswith("coherence-sql: DatabaseUnavailableError: cannot connect to postgresql://app:***@")

    assert main(["--json", "migrate", "--database-url", dsn]) == 2
    out = capsys.readouterr().out
    error = json.loads(out)["error"]
    assert error["type"] == "DatabaseUnavailableError"
    assert error["message"].startswith("cannot connect to postgresql://app:***@127.0.0.1:1/x")
    assert PASSWORD not in out


def test_usage_errors_in_json_mode_are_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "migrate", "--lock-wait", "soon"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "UsageError"
    assert "--lock-wait" in error["message"]
    assert main(["migrate", "--lock-wait", "soon"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: coherence-sql migrate")
    assert "coherence-sql migrate: error: argument --lock-wait" in err


def test_a_bad_setting_is_a_configuration_error_naming_the_variable(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "POSTGRES_POOL_SIZE": "many", "COHERENCE_SQL_DATA_DIR": str(tmp_path / "none")}
    ran = cli("--json", "status", env=env)
    assert ran.returncode == 2, ran.stderr
    error = json.loads(ran.stdout)["error"]
    assert error == {
        "type": "ConfigurationError",
        "message": "POSTGRES_POOL_SIZE must be an integer from 1 to 10000, got 'many'",
    }
    assert PASSWORD not in ran.stdout + ran.stderr


def test_log_format_json_is_one_object_a_line_with_the_dsn_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    handler = configure_logging("INFO", "json")
    try:
        logging.getLogger("coherence_sql.test").info("connecting to postgresql://app:%s@db/c", PASSWORD)
        logging.getLogger("coherence_sql.test").debug("below the level")
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert set(entry) == {"time", "level", "logger", "message"}
    assert (entry["level"], entry["logger"]) == ("INFO", "coherence_sql.test")
    assert entry["message"] == "connecting to postgresql://app:***@db/c"
    assert entry["time"].endswith("+00:00")


def test_log_level_and_format_are_checked() -> None:
    parser = build_parser()
    args = parser.parse_args(["--log-level", "debug", "--log-format", "json", "db", "status"])
    assert (args.log_level, args.log_format) == ("DEBUG", "json")
    for bad in (["--log-level", "loud"], ["--log-format", "xml"]):
        with pytest.raises(SystemExit) as caught:
            parser.parse_args([*bad, "db", "status"])
        assert caught.value.code == 2


def test_demo_in_json_mode_prints_only_its_result(clean_dsn: str) -> None:
    ran = cli("--json", "--log-format", "json", "demo", "--database-url", clean_dsn)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)  # the whole of stdout is one document
    assert result["schema"]["current"] is True
    assert result["memory"]["projects"] > 0
    assert (result["verify"]["mismatched"], result["verify"]["passed"]) == (0, True)
    assert result["store_status"]["phase"] == "dual-write"
    assert result["store_status"]["shadow"]["mismatched"] == 0
