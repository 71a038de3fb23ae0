"""verify of a large snapshot file against a database that already holds it, checkouts side by side.

Each run is `bench_backfill_scale.py`'s verify phase in a child process of its own (so its peak RSS
is its own), with one checkout first on PYTHONPATH; the checkouts alternate round by round so that
the shared machine's load falls on both. Prints one JSON line a run: wall and CPU seconds (the
child's user + system, which load inflates less than wall time), peak RSS, the report's counts and
the load average before and after.

    python benchmarks/bench_backfill_scale.py --phases backfill ...   # or any loaded database
    python benchmarks/bench_verify_scale.py --database-url URL --snapshot /tmp/scale.json \\
        --checkout before=/tmp/old-checkout --checkout after=. [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent / "bench_backfill_scale.py"


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def run(label: str, checkout: Path, dsn: str, snapshot: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    before = _load()
    began = time.perf_counter()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)  # one child at a time: the difference is its own
    done = subprocess.run(
        [sys.executable, str(BENCH), "--child", "verify", "--dsn", dsn, "--snapshot", str(snapshot)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        return {"checkout": label, "failed": done.stderr[-2000:]}
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["checkout"] = label
    figures["wall_seconds"] = round(wall, 1)
    figures["cpu_seconds"] = round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 1)
    figures["load"] = f"{before} -> {_load()}"
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a database that holds the snapshot (backfilled)")
    parser.add_argument("--snapshot", type=Path, default=Path("/tmp/coherence-scale-snapshot.json"))
    parser.add_argument("--checkout", action="append", required=True, help="LABEL=PATH of a source tree")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    checkouts = [(label, Path(path)) for label, _, path in (c.partition("=") for c in args.checkout)]
    for _ in range(args.rounds):
        for label, path in checkouts:
            print(json.dumps(run(label, path, args.database_url, args.snapshot)), flush=True)


if __name__ == "__main__":
    main()
