"""Import a large generated module eagerly vs lazily when one name is used
(issue #3): 2,000 functions, 200 classes, 300 constants, 50 imports.
Reports median wall-time and peak-RSS ratios of alternating child runs, and
the per-lookup cost of the trapping globals before settling.

    python bench/large_module.py [--runs 11]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import alternate, bench_env  # noqa: E402

IMPORTS = ["json", "csv", "decimal", "fractions", "statistics", "email.mime.text", "http.client", "xml.dom.minidom",
           "sqlite3", "difflib", "textwrap", "pprint", "ftplib", "smtplib", "imaplib", "poplib", "mailbox",
           "tarfile", "zipfile", "gzip", "bz2", "lzma", "shelve", "dbm", "configparser", "plistlib", "netrc",
           "html.parser", "urllib.request", "wave", "colorsys", "calendar", "uuid", "ipaddress",
           "concurrent.futures", "asyncio", "unittest", "doctest", "pydoc", "tkinter.constants", "turtledemo",
           "optparse", "getopt", "shlex", "cmd", "code", "pdb", "timeit", "cProfile", "trace"]


def generate(path: Path) -> None:
    lines = ["__lazy_module__ = True"]
    imports = [m for m in IMPORTS if _exists(m)][:50]
    for m in imports:
        lines.append(f"import {m}")
    for i in range(300):
        lines.append(f"CONST_{i} = ({i}, 'value {i}', [{i}, {i + 1}], {{'k': {i}}})")
    for i in range(200):
        lines.append(textwrap.dedent(f"""\
            class Class{i}:
                '''Class {i}.'''
                limit = CONST_{i % 300}
                def method(self, x):
                    return x + {i}
                def other(self, y):
                    return [y] * 3
            """))
    for i in range(2000):
        lines.append(textwrap.dedent(f"""\
            def func_{i}(a, b=CONST_{i % 300}, *args, **kw):
                '''Function {i}.'''
                total = a
                for item in args:
                    total += item
                return total, b, kw
            """))
    lines.append("def hot_loop(n):\n    t = 0\n    for i in range(n):\n        t += len(CONST_1) + abs(-i)\n    return t\n")
    path.write_text("\n".join(lines) + "\n")


def _exists(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def lookup_cost(root: Path) -> dict:
    """Per-lookup cost of global and builtin reads through the trap (before
    settling) against the same module loaded eagerly, in one process."""
    code = textwrap.dedent(f"""
        import sys, time, statistics, importlib
        sys.path.insert(0, {str(root)!r})
        import lazyexec
        def timed(mod, n=200000, rounds=7):
            ts = []
            for _ in range(rounds):
                t = time.perf_counter(); mod.hot_loop(n); ts.append(time.perf_counter() - t)
            return statistics.median(ts)
        import big as eager_big
        eager = timed(eager_big)
        del sys.modules["big"]
        lazyexec.activate()
        import big as lazy_big
        import lazyexec._lazyexec as core
        assert core.is_trapping(lazy_big.__dict__)
        lazy = timed(lazy_big)
        print(eager, lazy)
    """)
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=bench_env(), check=True)
    eager, lazy = map(float, out.stdout.split())
    return {"loop_eager_s": eager, "loop_lazy_s": lazy, "lookup_ratio_before_settle": lazy / eager}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        generate(root / "big.py")
        env = bench_env()
        use_one = "import big; big.func_7(1)"
        eager = [sys.executable, "-c", use_one]
        lazy = [sys.executable, "-c", "import lazyexec; lazyexec.activate(); " + use_one]
        r = alternate(eager, lazy, d, env, runs=args.runs)
        r.update(lookup_cost(root))
    r["python"] = sys.version.split()[0]
    if args.json:
        print(json.dumps(r))
    else:
        print(f"Python {r['python']}: import a 2,000-function module and use one name, median of {r['runs']} alternating runs")
        print(f"  wall time  eager {r['eager_s'] * 1000:.1f} ms, lazy {r['lazy_s'] * 1000:.1f} ms, ratio {r['time_ratio']:.2f}")
        print(f"  peak RSS   eager {r['eager_rss_kib'] / 1024:.1f} MiB, lazy {r['lazy_rss_kib'] / 1024:.1f} MiB, ratio {r['rss_ratio']:.2f}")
        print(f"  global+builtin lookups through the trap before settling: {r['lookup_ratio_before_settle']:.2f}x eager")
    return 0


if __name__ == "__main__":
    sys.exit(main())
