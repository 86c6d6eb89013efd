"""Units the import itself runs (force steps: an eager statement reads what
they bind) share one marshal stream of their code objects, unmarshalled
once when the first of them runs (artifact format 12): the same program as
eagerly (differential), stored in that form and the rest still deferred
(lazy-only), and a damaged stream an error, not a crash."""

import marshal
import textwrap
import types

import pytest

from harness import Case, lazy_runs_match_eager, write

MODULE = textwrap.dedent('''\
    __lazy_module__ = True
    import os.path as osp
    from os import sep

    def helper(x):
        return x + 1

    class Base:
        def hello(self):
            return "base"

    class Child(Base):
        def hello(self):
            return "child+" + super().hello()

    TABLE = {k: k * 2 for k in range(3)}

    def untouched():
        return "untouched"

    print("forced:", Base.__name__, Child().hello(), helper(1), osp.basename("/a/b"), sep, TABLE)

    def later():
        return helper(2), Child.__mro__[1].__name__
    ''')

MAIN = textwrap.dedent('''\
    import m
    if LAZY:
        import lazyexec
        assert lazyexec.is_pending(m, "untouched") and lazyexec.is_pending(m, "later"), "deferred"
        assert not lazyexec.is_pending(m, "Child") and not lazyexec.is_pending(m, "helper"), "forced"
    print(m.later(), m.untouched(), m.Child().hello(), m.helper.__qualname__, m.TABLE, m.osp.__name__)
    print(sorted(k for k in NAMESPACE(m) if not k.startswith("__")))
    ''')


def case() -> Case:
    return Case("grouped_forced_units", {"m.py": MODULE, "main.py": MAIN}, 0)


def plan_of(tmp_path):
    from lazyexec import compile as compile_stage
    from lazyexec.config import Config

    return compile_stage.build_plan((tmp_path / "m.py").read_bytes(), str(tmp_path / "m.py"), "m", False,
                                    Config(), require_marker=True, pep810=True)


def test_units_the_import_runs_behave_as_eagerly(tmp_path):
    write(case(), tmp_path)
    eager = lazy_runs_match_eager(tmp_path)
    assert "forced: Base child+base 2 b / {0: 0, 1: 2, 2: 4}" in eager.stdout


def test_units_the_import_runs_share_one_stream(tmp_path):
    write(case(), tmp_path)
    plan = plan_of(tmp_path)
    payloads = {u[1][0]: u[0] for u in plan.units if u[1]}
    grouped = {name: p for name, p in payloads.items() if isinstance(p, tuple) and p[0] == "group"}
    assert {"helper", "Base", "Child", "TABLE", "osp", "sep"} <= set(grouped)
    assert grouped["helper"][3] == "function" and grouped["Child"][3:] == ("class", ("Base",))
    assert grouped["TABLE"][3] == "code" and grouped["Base"][4] == ()
    blobs = {p[1] for p in grouped.values()}
    assert len(blobs) == 1  # one stream, stored once (marshal shares the object)
    codes = marshal.loads(blobs.pop())
    assert codes[grouped["helper"][2]].co_name == "helper" and codes[grouped["Child"][2]].co_name == "Child"
    # What the import does not run keeps its own code.
    assert payloads["untouched"][0] == "function" and payloads["later"][0] == "function"


def test_a_damaged_stream_is_an_import_error_and_nothing_runs(tmp_path):
    from lazyexec import _lazyexec
    from lazyexec.runtime import run_plan
    from lazyexec.store import Plan

    write(case(), tmp_path)
    plan = plan_of(tmp_path)
    bad = marshal.dumps(("not", "code"))
    units = [(("group", bad, *u[0][2:]), *u[1:]) if isinstance(u[0], tuple) and u[0][0] == "group" else u
             for u in plan.units]
    module = types.ModuleType("m")
    module.__file__ = str(tmp_path / "m.py")
    with pytest.raises(ImportError, match="bad marshal data for a group of units"):
        run_plan(module, Plan(units, plan.steps))
    assert _lazyexec.is_trapping(module.__dict__)
    # The members stay pending: asking again gives the same error.
    with pytest.raises(ImportError, match="bad marshal data for a group of units"):
        _lazyexec.force(module.__dict__, [i for i, u in enumerate(units) if u[1] == ("helper",)])
