"""The README: its first Python example runs as written, and its two commands are the ones CI runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.DOTALL | re.MULTILINE)


def test_the_readme_leads_with_the_install_and_test_commands() -> None:
    install, test = (block.strip() for block in blocks("bash")[:2])
    assert install.endswith("python -m pip install '.[embedded]' && coherence-sql demo")
    assert "dev" not in install  # the main job installs no development tools
    assert test.endswith("python -m pip install -e '.[dev]' && python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "readme_command 1" in ci
    assert "readme_command 2" in ci


def test_the_python_example_migrates_and_opens_the_stores(empty_dsn: str, tmp_path: Path) -> None:
    example = blocks("python")[0]
    assert "await migrate(dsn)" in example
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": empty_dsn, "COHERENCE_SQL_DATA_DIR": str(tmp_path / "never-started")}
    ran = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert re.fullmatch(r"applied [1-9]\d* schema file\(s\)", lines[0]), lines
    assert "name='coherence-example'" in lines[1]
    assert "version='1.0.0'" in lines[1]
    assert lines[2] == "dual-write"
    assert not (tmp_path / "never-started").exists()  # DATABASE_URL was used, not the embedded server
