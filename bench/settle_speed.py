"""Steady-state speed (issue #4): function-heavy loops in a lazily loaded
module vs the same module loaded eagerly, before and after settling.
Alternating rounds in one process, medians; target after settling <= 1.02.
Three states: trapping (before settling), settled with units still pending
(`settle_complete = false`: the PEP 562 hook stays, `module.attr` loads from
other modules are not specialized on 3.11+), settled and complete (default).

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

# A second module reached by attribute access (`helpers.twice`): lazy too in
# the lazy run. `never_used` stays pending, so its PEP 562 hook stays in the
# namespace until the module is complete (see "complete" below).
HELPERS = textwrap.dedent('''
    K = 3
    def twice(x):
        return 2 * x
    def never_used():
        return 0
''')

SOURCE = textwrap.dedent('''
    import math
    import HELPERS as helpers
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

    def lazy_module_attribute_calls(n):
        t = 0
        for i in range(n):
            t += helpers.twice(i) + helpers.K
        return t

    def class_attribute_access(n):
        p = Point(1)
        t = 0
        for i in range(n):
            t += Point.dims + p.x
        return t
''')

LOOPS = ["global_lookups", "builtin_lookups", "module_attribute_calls", "lazy_module_attribute_calls",
         "class_attribute_access"]


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
        Path(d, "eager_mod.py").write_text(SOURCE.replace("HELPERS", "eager_helpers"))
        Path(d, "eager_helpers.py").write_text(HELPERS)
        Path(d, "lazy_mod.py").write_text("__lazy_module__ = True\n" + SOURCE.replace("HELPERS", "lazy_helpers"))
        Path(d, "lazy_helpers.py").write_text("__lazy_module__ = True\n" + HELPERS)
        sys.path.insert(0, d)
        import eager_mod

        import os

        os.environ["LAZYEXEC_SETTLE"] = "never"
        os.environ["LAZYEXEC_SETTLE_COMPLETE"] = "0"  # first settled with units pending, then complete
        lazyexec.activate()
        import lazy_mod

        assert core.is_trapping(lazy_mod.__dict__) and "lazy_helpers" not in sys.modules
        # materialize what the loops use, then measure through the trap
        for name in LOOPS:
            getattr(lazy_mod, name)(10)
        before = measure(eager_mod, lazy_mod, args.rounds, args.n)
        helpers = sys.modules["lazy_helpers"]
        lazyexec.settle(lazy_mod)
        lazyexec.settle(helpers)
        namespace = type(sys).__dict__["__dict__"].__get__  # without completing a settled module
        assert type(namespace(lazy_mod)) is dict and type(namespace(helpers)) is dict
        assert lazyexec.is_pending(helpers, "never_used") and "__getattr__" in namespace(helpers)
        after = measure(eager_mod, lazy_mod, args.rounds, args.n)
        # Complete (what settling does by default, settle_complete): nothing
        # pending in either module, lazyexec's hooks removed.
        lazyexec.materialize_all(helpers)
        lazyexec.materialize_all(lazy_mod)
        assert "__getattr__" not in helpers.__dict__
        complete = measure(eager_mod, lazy_mod, args.rounds, args.n)
    geo = lambda r: statistics.geometric_mean(r.values())  # noqa: E731
    result = {"python": sys.version.split()[0], "before": before, "after": after, "complete": complete,
              "geomean_before": geo(before), "geomean_after": geo(after), "geomean_complete": geo(complete)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"Python {result['python']}: lazy/eager time ratio, median of {args.rounds} alternating rounds")
        print("columns: trapping | settled, units still pending (settle_complete = false) | settled and complete")
        print(f"{'loop':<30}{'before settle':>15}{'pending kept':>14}{'complete':>10}")
        for name in LOOPS:
            print(f"{name:<30}{before[name]:>15.3f}{after[name]:>14.3f}{complete[name]:>10.3f}")
        print(f"{'geometric mean':<30}{result['geomean_before']:>15.3f}{result['geomean_after']:>14.3f}"
              f"{result['geomean_complete']:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
