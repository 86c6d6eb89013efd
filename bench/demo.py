"""`make demo`: the example application started eagerly and under lazyexec,
alternating, with medians of wall time and peak memory, and what never ran.

Two ways in, each against eager in its own alternating run:

- `lazyexec run inventory.py CMD`: the application's own modules, which opt
  in with `__lazy_module__ = True` (mode "marked"), started through the
  Python layer;
- the whole program (mode "all": the application and the standard library),
  started as programs started by others are: the `.pth` line with
  `LAZYEXEC=1`, activation in C++. The `.pth` file goes into a private venv
  made for the demo (the project's venv is left as it is).

Artifacts are built in the warm-up runs (warm starts are measured).

    python bench/demo.py [--runs 11]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import alternate, bench_env, clean_venv  # noqa: E402

APP = Path(__file__).resolve().parents[1] / "examples" / "app"
COMMANDS = ["report", "export", "check"]


def same_output(eager, lazy, env, lazy_env) -> bool:
    run = lambda cmd, e: subprocess.run(cmd, cwd=APP, env=e, capture_output=True, text=True).stdout  # noqa: E731
    return run(eager, env) == run(lazy, lazy_env)


def units(stats_stderr: str) -> tuple[int, int]:
    """(deferred, never run) over the application's modules, from LAZYEXEC_STATS."""
    lines = [line.split() for line in stats_stderr.splitlines() if line.startswith("inventory_app.")]
    return sum(int(f[2]) for f in lines), sum(int(f[4]) for f in lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    args = ap.parse_args()
    py = sys.executable
    env = bench_env()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        whole_py = clean_venv(sys.executable, d, pth=True)  # lazyexec copied in, its .pth installed
        config = Path(d) / "all.toml"
        config.write_text('mode = "all"\n')
        whole_env = {**env, "LAZYEXEC": "1", "LAZYEXEC_CONFIG": str(config), "LAZYEXEC_CACHE_DIR": str(Path(d) / "cache")}
        for command in COMMANDS:
            eager = [py, "inventory.py", command]
            marked = [py, "-m", "lazyexec", "run", "inventory.py", command]
            r = alternate(eager, marked, str(APP), env, runs=args.runs)
            deferred, never = units(subprocess.run(marked, cwd=APP, env={**env, "LAZYEXEC_STATS": "1"},
                                                   capture_output=True, text=True).stderr)
            rows.append(("run, opt-in", command, r, same_output(eager, marked, env, env),
                         f"{never} of {deferred}"))
            # Eager in the demo venv too: the same interpreter, the same .pth file (inactive).
            eager_whole = [whole_py, "inventory.py", command]
            r = alternate(eager_whole, eager_whole, str(APP), env, runs=args.runs, lazy_env=whole_env)
            deferred, never = units(subprocess.run(eager_whole, cwd=APP, env={**whole_env, "LAZYEXEC_STATS": "1"},
                                                   capture_output=True, text=True).stderr)
            rows.append((".pth, all", command, r,
                         same_output(eager_whole, eager_whole, env, whole_env), f"{never} of {deferred}"))
    title = f"examples/app/inventory.py, eager vs lazyexec, warm, median of {args.runs} alternating runs"
    columns = ("lazy start", "command", "same output", "eager ms", "lazy ms", "time ratio", "eager RSS MiB",
               "lazy RSS MiB", "RSS ratio", "app units never run")
    cells = [(how, command, "yes" if same else "NO", f"{r['eager_s'] * 1000:.1f}", f"{r['lazy_s'] * 1000:.1f}",
              f"{r['time_ratio']:.2f}", f"{r['eager_rss_kib'] / 1024:.1f}", f"{r['lazy_rss_kib'] / 1024:.1f}",
              f"{r['rss_ratio']:.2f}", never) for how, command, r, same, never in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(" | ".join(columns))
        for row in cells:
            print(" | ".join(row))
    else:
        t = Table(title=title)
        for col in columns:
            t.add_column(col, justify="left" if col == "lazy start" else "right", no_wrap=col == "lazy start")
        for row in cells:
            t.add_row(*row)
        Console().print(t)
    print("run, opt-in: `lazyexec run inventory.py CMD`, the application's opted-in modules lazy (Python layer).\n"
          ".pth, all: `LAZYEXEC=1 python inventory.py CMD` with the .pth line, every module lazy (the standard library\n"
          "too), activation in C++, as for programs started by others. Real programs: make bench-quick.")
    return 0 if all(same for _, _, _, same, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
