"""`make demo`: the example application started eagerly and under lazyexec,
alternating, with medians of wall time and peak memory, and what never ran.

    python bench/demo.py [--runs 11]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import alternate, bench_env  # noqa: E402

APP = Path(__file__).resolve().parents[1] / "examples" / "app"
COMMANDS = ["report", "export", "check"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    args = ap.parse_args()
    py = sys.executable
    env = bench_env()
    rows = []
    for command in COMMANDS:
        eager = [py, "inventory.py", command]
        lazy = [py, "-m", "lazyexec", "run", "inventory.py", command]
        same = subprocess.run(eager, cwd=APP, env=env, capture_output=True, text=True).stdout == \
            subprocess.run(lazy, cwd=APP, env=env, capture_output=True, text=True).stdout
        r = alternate(eager, lazy, str(APP), env, runs=args.runs)
        stats = subprocess.run(lazy, cwd=APP, env={**env, "LAZYEXEC_STATS": "1"}, capture_output=True, text=True).stderr
        never = sum(int(line.split()[4]) for line in stats.splitlines() if line.startswith("inventory_app."))
        deferred = sum(int(line.split()[2]) for line in stats.splitlines() if line.startswith("inventory_app."))
        rows.append((command, r, same, never, deferred))
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        Console = None
    title = f"examples/app/inventory.py, eager vs lazyexec, median of {args.runs} alternating runs"
    if Console is not None:
        t = Table(title=title)
        for col in ("command", "same output", "eager ms", "lazy ms", "time ratio", "eager RSS MiB",
                    "lazy RSS MiB", "RSS ratio", "units never run"):
            t.add_column(col, justify="right")
        for command, r, same, never, deferred in rows:
            t.add_row(command, "yes" if same else "NO", f"{r['eager_s'] * 1000:.1f}", f"{r['lazy_s'] * 1000:.1f}",
                      f"{r['time_ratio']:.2f}", f"{r['eager_rss_kib'] / 1024:.1f}", f"{r['lazy_rss_kib'] / 1024:.1f}",
                      f"{r['rss_ratio']:.2f}", f"{never} of {deferred}")
        Console().print(t)
    else:
        print(title)
        for command, r, same, never, deferred in rows:
            print(command, same, r, never, deferred)
    print("Note: the lazy column includes importing lazyexec itself and reading stored artifacts.")
    return 0 if all(same for _, _, same, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
