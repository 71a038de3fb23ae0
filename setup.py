"""Build step that copies the project's SQL (schema/, queries/) and the example snapshot into the
wheel's package data."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithSQL(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        for name in ("schema", "queries"):
            target = Path(self.build_lib) / "coherence_sql" / "_data" / name
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            copied = 0
            for sql in sorted((root / name).glob("*.sql")):
                shutil.copy2(sql, target / sql.name)
                copied += 1
            if not copied:  # a wheel cannot hold an empty directory; resources.py needs it to exist
                (target / ".keep").write_text(f"coherence_sql's {name}/ directory holds no .sql files yet\n")
        examples = Path(self.build_lib) / "coherence_sql" / "_data" / "examples"
        shutil.rmtree(examples, ignore_errors=True)
        examples.mkdir(parents=True)
        for example in sorted((root / "examples").glob("*.json")):
            shutil.copy2(example, examples / example.name)


setup(cmdclass={"build_py": BuildWithSQL})
