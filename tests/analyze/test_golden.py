"""Each case of cases.txt is its own test: the analyzer's verdicts, reasons
and force plan must match the expectation exactly."""

from __future__ import annotations

import pytest

from lazyexec.analyze import analyze_source
from lazyexec.config import Config

from golden import load

CASES = load()


def observed(case):
    config = None
    if any(k in case.options for k in ("pure", "pure_bases", "never", "defer")):
        config = Config(pure=tuple(case.options.get("pure", ())),
                        pure_bases=tuple(case.options.get("pure_bases", ())),
                        never=tuple(case.options.get("never", ())),
                        defer=case.options.get("defer", "all"))
    result = analyze_source(case.source_bytes(), f"<case {case.name}>", case.options.get("module"),
                            bool(case.options.get("package")), config)
    units = result["units"]
    got = [(u["line"], u["verdict"], u["reason"]) for u in units]
    forces = [(units[f["before"]]["line"], [units[i]["line"] for i in f["units"]]) for f in result["forces"]]
    return got, forces, result


def own_views(result):
    return [u["line"] for u in result["units"] if u["verdict"] == "lazy" and u.get("own_views")]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_case(case):
    if not case.runnable:
        pytest.skip(f"needs Python {case.options.get('min')}" if case.options.get("min") else "disabled")
    got, forces, result = observed(case)
    detail = "\n".join(f"  {u['line']} {u['verdict']} {u['reason']}: {u['message']}" for u in result["units"])
    assert got == case.expected, f"cases.txt:{case.line} {case.name}\n{detail}"
    assert forces == case.forces, f"cases.txt:{case.line} {case.name} forces"
    assert own_views(result) == case.views, f"cases.txt:{case.line} {case.name} own-views"


def test_corpus_is_large_and_names_are_unique():
    names = [c.name for c in CASES]
    assert len(names) >= 80
    assert len(set(names)) == len(names)


def test_every_reason_code_is_exercised():
    """Every reason the analyzer can give appears in some case's expectation."""
    from lazyexec import _lazyexec

    used = {r for c in CASES for _, _, r in c.expected}
    all_codes = {code for code, _, _ in _lazyexec.reason_codes()}
    # Not reachable from a module source on its own: a statement kind that
    # does not exist at module level.
    unreachable = {"impure-expression"}
    missing = all_codes - used - unreachable
    assert not missing, f"reason codes without a golden case: {sorted(missing)}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES if c.runnable])
def test_case_compiles_under_this_interpreter(case):
    """Real CPython is the oracle for the snippet being valid Python."""
    compile(case.source_bytes(), case.name, "exec", dont_inherit=True)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES if "oracle" in c.options])
def test_oracle_eager_execution(case):
    """Where a reason claims what eager execution does, run it eagerly and see."""
    namespace: dict = {"__name__": "oracle"}
    code = compile(case.source_bytes(), case.name, "exec", dont_inherit=True)
    if case.options["oracle"] == "NameError":
        with pytest.raises(NameError):
            exec(code, namespace)
    else:
        exec(code, namespace)
