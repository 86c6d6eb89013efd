"""Property-based robustness of the analyzer.

- On any program `hypothesmith` generates from Python's grammar, the analyzer
  either analyses it or raises the same SyntaxError `compile()` raises: it
  never crashes or hangs.
- On module-shaped programs from our own generator (imports, defs, classes,
  constants, version branches, rebinding, registration), the units cover every
  top-level statement exactly once, analysis is deterministic, and every lazy
  unit reads at definition time only names bound before it.
- Repeated analysis does not leak.
"""

from __future__ import annotations

import ast

import hypothesmith
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazyexec.analyze import analyze_source

def fast(examples: int) -> settings:
    return settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                    max_examples=examples, database=None)


def check_coverage(source: str, result: dict) -> None:
    tree = ast.parse(source)
    assert result["top_level_statements"] == len(tree.body)
    units = result["units"]
    covered = set()
    whole: dict[int, int] = {}
    for u in units:
        for s in u["statements"]:
            covered.add(s)
            if u["part"] is None:
                assert s not in whole, f"statement {s} in units {whole[s]} and {u['id']}"
                whole[s] = u["id"]
    assert covered == set(range(result["statements"]))
    top = {s for u in units if u["depth"] == 0 for s in u["statements"]}
    assert len(top) == len(tree.body)
    # Parts of one split statement are distinct.
    parts = [(u["statements"][0], u["part"]) for u in units if u["part"] is not None]
    assert len(parts) == len(set(parts))
    assert [u["id"] for u in units] == list(range(len(units)))
    for f in result["forces"]:
        assert units[f["before"]]["verdict"] == "eager"
        assert all(units[i]["verdict"] == "lazy" and i < f["before"] for i in f["units"])


@fast(150)
@given(hypothesmith.from_grammar())
def test_grammar_generated_programs_never_crash(source):
    try:
        compile(source, "<gen>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        with pytest.raises((SyntaxError, ValueError)):
            analyze_source(source, "<gen>")
        return
    result = analyze_source(source, "<gen>")
    check_coverage(source, result)


# ---- module-shaped programs --------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", "d", "f", "g", "C", "D", "os", "re", "json", "len", "open", "_x"])

STATEMENTS = [
    lambda n, m: f"import {m}",
    lambda n, m: f"import {m}.path",
    lambda n, m: f"from collections import {n}, OrderedDict",
    lambda n, m: f"{n} = {m!r}",
    lambda n, m: f"{n} = [{m}, 1]",
    lambda n, m: f"{n} = {m}",
    lambda n, m: f"{n}, {m} = 1, 2",
    lambda n, m: f"def {n}(x={m}):\n    return x + {m}",
    lambda n, m: f"@{m}\ndef {n}(): pass",
    lambda n, m: f"class {n}({m}):\n    attr = {m}\n    def meth(self): return {n}",
    lambda n, m: f"class {n}:\n    def __init_subclass__(cls): pass",
    lambda n, m: f"{n}.append({m})",
    lambda n, m: f"print({n})",
    lambda n, m: f"del {n}",
    lambda n, m: f"{n} += 1",
    lambda n, m: f"try:\n    import {m}\nexcept ImportError:\n    {m} = None",
    lambda n, m: f"if sys.version_info >= (3, 8):\n    {n} = 1\nelse:\n    {n} = 2",
    lambda n, m: f"if TYPE_CHECKING:\n    import {m}",
    lambda n, m: f"def {n}():\n    global {m}\n    {m} = 3",
    lambda n, m: "from os.path import *",
    lambda n, m: f"{n} = lambda: {m}",
    lambda n, m: f"{n} = [{m} for {m} in range(3)]",
    lambda n, m: f"__all__ = [{n!r}]",
]

statement = st.builds(lambda i, n, m: STATEMENTS[i](n, m), st.integers(0, len(STATEMENTS) - 1), NAMES, NAMES)
module = st.lists(statement, max_size=25).map(
    lambda body: "import sys\nfrom typing import TYPE_CHECKING\n" + "\n".join(body) + "\n")


@fast(300)
@given(module)
def test_module_shaped_programs(source):
    first = analyze_source(source, "<gen>", "gen")
    check_coverage(source, first)
    assert analyze_source(source, "<gen>", "gen") == first  # deterministic
    units = first["units"]
    bound_before: set[str] = set()
    for u in units:
        if u["verdict"] == "lazy":
            assert set(u["def_reads"]) <= bound_before, (u, bound_before)
        bound_before.update(u["binds"])


def test_repeated_analysis_does_not_leak():
    source = "\n".join(
        [f"import m{i}\ndef f{i}(x=[1, 2]): return m{i}.g(x)\nclass C{i}(object):\n    a = {i}\n"
         for i in range(50)]).encode()

    def rss_kb() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4

    for _ in range(100):
        analyze_source(source, "<leak>")
    before = rss_kb()
    for _ in range(800):
        analyze_source(source, "<leak>")
    grown = rss_kb() - before
    # A leak of even one small object per unit per run would be ~100 MB here.
    assert grown < 8 * 1024, f"RSS grew by {grown} kB over 800 analyses"
