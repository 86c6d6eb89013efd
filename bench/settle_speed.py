"""Steady-state speed (issue #4): function-heavy loops in a lazily loaded
module vs the same module loaded eagerly, before and after settling.
Alternating rounds in one process, medians; target after settling <= 1.02.

    python bench/settle_speed.py [--rounds 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SOURCE = textwrap.dedent('''
    import math
    SCALE = 3
    OFFSET = 7
    TABLE = (1, 2, 3, 4)

    class Point:
        dims = 2
        def __init__(self, x):
            self.x = x

    def global_lookups(n):
        t = 0
        for i in range(n):
            t += SCALE * OFFSET + TABLE[i & 3]
        return t

    def builtin_lookups(n):
        t = 0
        for i in range(n):
            t += len(TABLE) + abs(-i) + min(i, 3)
        return t

    def module_attribute_calls(n):
        t = 0.0
        for i in range(n):
            t += math.sqrt(i) + math.floor(1.5)
        return t

    def class_attribute_access(n):
        p = Point(1)
        t = 0
        for i in range(n):
            t += Point.dims + p.x
        return t
''')

LOOPS = ["global_lookups", "builtin_lookups", "module_attribute_calls", "class_attribute_access"]


def timed(fn, n):
    t = time.perf_counter()
    fn(n)
    return time.perf_counter() - t


def measure(eager_mod, lazy_mod, rounds, n):
    out = {}
    for name in LOOPS:
        e_fn, l_fn = getattr(eager_mod, name), getattr(lazy_mod, name)
        e_fn(1000), l_fn(1000)  # warm up (specialization on 3.11+)
        es, ls = [], []
        for _ in range(rounds):
            es.append(timed(e_fn, n))
            ls.append(timed(l_fn, n))
        out[name] = statistics.median(ls) / statistics.median(es)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import lazyexec
    import lazyexec._lazyexec as core

    with tempfile.TemporaryDirectory() as d:
        Path(d, "eager_mod.py").write_text(SOURCE)
        Path(d, "lazy_mod.py").write_text("__lazy_module__ = True\n" + SOURCE)
        sys.path.insert(0, d)
        import eager_mod

        import os

        os.environ["LAZYEXEC_SETTLE"] = "never"
        lazyexec.activate()
        import lazy_mod

        assert core.is_trapping(lazy_mod.__dict__)
        # materialize what the loops use, then measure through the trap
        for name in LOOPS:
            getattr(lazy_mod, name)(10)
        before = measure(eager_mod, lazy_mod, args.rounds, args.n)
        lazyexec.settle(lazy_mod)
        assert type(lazy_mod.__dict__) is dict
        after = measure(eager_mod, lazy_mod, args.rounds, args.n)
    geo = lambda r: statistics.geometric_mean(r.values())  # noqa: E731
    result = {"python": sys.version.split()[0], "before": before, "after": after,
              "geomean_before": geo(before), "geomean_after": geo(after)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"Python {result['python']}: lazy/eager time ratio, median of {args.rounds} alternating rounds")
        print(f"{'loop':<26}{'before settle':>15}{'after settle':>14}")
        for name in LOOPS:
            print(f"{name:<26}{before[name]:>15.3f}{after[name]:>14.3f}")
        print(f"{'geometric mean':<26}{result['geomean_before']:>15.3f}{result['geomean_after']:>14.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
