"""Analysis speed against CPython's own compile(), over the whole stdlib.

Alternates compile and analyze per round (so machine noise hits both) and
reports the median over rounds of the total time of each, and their ratio.
Target (issue #2): analysis costs at most 2x compile.

    python bench/analyze_speed.py [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings

from lazyexec.analyze import analyze_source, knowledge
from lazyexec.cli.census import iter_sources, stdlib_root


def load_sources():
    sources = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in iter_sources(stdlib_root()):
            data = path.read_bytes()
            try:
                compile(data, str(path), "exec", dont_inherit=True)
            except (SyntaxError, ValueError):
                continue
            sources.append((str(path), data))
    return sources


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sources = load_sources()
    knowledge()
    compile_times, analyze_times = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(args.rounds):
            t = time.perf_counter()
            for name, data in sources:
                compile(data, name, "exec", dont_inherit=True)
            compile_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            for name, data in sources:
                analyze_source(data, name)
            analyze_times.append(time.perf_counter() - t)
    c, a = statistics.median(compile_times), statistics.median(analyze_times)
    result = {"python": sys.version.split()[0], "files": len(sources), "rounds": args.rounds,
              "compile_s": round(c, 3), "analyze_s": round(a, 3), "ratio": round(a / c, 3)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"Python {result['python']}: {result['files']} stdlib files, median of {args.rounds} rounds: "
              f"compile {c:.2f} s, analyze {a:.2f} s, ratio {a / c:.2f} (target <= 2.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
