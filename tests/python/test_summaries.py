"""Cross-module summaries (src/lazyexec/analyze/summaries.py): an importer's
classes over another module's classes, base of base, re-exports, and the
invalidation of importers whose summaries changed. The differential case is
tests/semantics/cases.txt `subclasses_of_other_modules_classes_use_their_summaries`."""

from __future__ import annotations

import os
import sys

from lazyexec import compile as lazy_compile, store
from lazyexec.analyze import summaries

BASE = """\
REGISTRY = []
class Plugin:
    def run(self): return 1
class Registering:
    def __init_subclass__(cls, **kw):
        REGISTRY.append(cls)
class Meta(type):
    def __new__(mcs, name, bases, ns):
        REGISTRY.append(name)
        return super().__new__(mcs, name, bases, ns)
class WithMeta(metaclass=Meta):
    pass
class Busy:
    table = dict(REGISTRY=REGISTRY)
    table.update(x=1)
"""
MID = """\
from base import Plugin, Registering
class Mid(Plugin):
    pass
class MidRegistering(Registering):
    pass
"""
PKG_INIT = "from .impl import Mid as Exported\n"
APP = """\
from base import Plugin, Registering, WithMeta, Busy
from mid import Mid, MidRegistering
from pkg import Exported
import base
class A(Plugin): pass
class B(Registering): pass
class C(WithMeta): pass
class D(Mid): pass
class E(MidRegistering): pass
class F(Exported): pass
class G(base.Plugin): pass
class H(Busy): pass
attr = Plugin.run
busy = Busy.table
"""


def _tree(tmp_path):
    (tmp_path / "base.py").write_text(BASE)
    (tmp_path / "mid.py").write_text(MID)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text(PKG_INIT)
    (tmp_path / "pkg" / "impl.py").write_text("from mid import Mid\n")
    (tmp_path / "app.py").write_text(APP)


def _verdicts(stdout: str) -> dict:
    out = {}
    for line in stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1] in ("lazy", "eager"):
            out[parts[2].split("(")[0].split("=")[0].strip()] = parts[1]
    return out


def test_classes_over_other_modules_classes_read_their_summaries(tmp_path, run_cli):
    _tree(tmp_path)
    r = run_cli("explain", tmp_path / "app.py")
    assert r.returncode == 0, r.stderr
    v = _verdicts(r.stdout)
    assert v["class A"] == "lazy"  # a plain class of another module
    assert v["class B"] == "eager"  # its base defines __init_subclass__
    assert v["class C"] == "eager"  # its base's metaclass has a __new__
    assert v["class D"] == "lazy"  # base of base: mid.Mid over base.Plugin
    assert v["class E"] == "eager"  # base of base defines __init_subclass__
    assert v["class F"] == "lazy"  # re-exported twice: pkg -> pkg.impl -> mid
    assert v["class G"] == "lazy"  # through `import base`
    assert v["class H"] == "lazy"  # its body runs code, subclassing it does not
    assert v["attr"] == "lazy"  # an attribute of a class whose body is pure
    assert v["busy"] == "eager"  # of one whose body runs code: not known


def test_an_importer_loses_its_artifact_when_a_summary_it_relied_on_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("LAZYEXEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    _tree(tmp_path)
    app = str(tmp_path / "app.py")
    with open(app, "rb") as f:
        plan = lazy_compile.build_plan(f.read(), app, "app", False, None)
    assert plan is not None
    st = os.stat(app)
    assert store.save(app, plan, st.st_mtime_ns, st.st_size, b"k" * 16)
    stored = [p for p in store.locations(app, b"k" * 16) if os.path.exists(p)]
    assert stored
    base = str(tmp_path / "base.py")
    # Built again unchanged: the importer keeps its artifact.
    with open(base, "rb") as f:
        lazy_compile.build_plan(f.read(), base, "base", False, None)
    assert all(os.path.exists(p) for p in stored)
    # Plugin now registers its subclasses: app's class A relied on it not doing so.
    (tmp_path / "base.py").write_text(BASE.replace("    def run(self): return 1\n",
                                                   "    def run(self): return 1\n"
                                                   "    def __init_subclass__(cls): REGISTRY.append(cls)\n"))
    os.utime(base, ns=(st.st_mtime_ns + 10**9, st.st_mtime_ns + 10**9))
    with open(base, "rb") as f:
        lazy_compile.build_plan(f.read(), base, "base", False, None)
    assert not any(os.path.exists(p) for p in stored)
    # Rebuilt with the new summary: A stays eager now.
    summaries._facts_cache.clear()
    with open(app, "rb") as f:
        result = lazy_compile._lazyexec.compile(f.read(), app, lazy_compile.knowledge(None), "app", False)
    from lazyexec.analyze import build_knowledge

    kb, _, deps = build_knowledge(result["units"], app, "app", False, None)
    assert base in deps
    sys.modules.pop("base", None)


UTIL = """\
TABLE = {}
def make(x, y=2):
    \"\"\"Pure: builds from its arguments.\"\"\"
    out = {"x": x}
    out["y"] = y
    def inner(): return out
    inner.__doc__ = "made"
    return staticmethod(inner)
def remember(x):
    TABLE[x] = 1
    return x
def lookup(x):
    return TABLE.get(x)
def marks(f):
    return f
"""
USER = """\
import util
from util import make, remember, lookup, marks
from pkg2 import sub as alias
made = make(1)
kept = remember(1)
looked = lookup(1)
@marks
def decorated(): pass
mod_attr = alias.VALUE
via_module = util.make(2)
"""


def test_functions_of_other_modules_pure_to_call_and_submodules(tmp_path, run_cli):
    (tmp_path / "util.py").write_text(UTIL)
    (tmp_path / "pkg2").mkdir()
    (tmp_path / "pkg2" / "__init__.py").write_text("")
    (tmp_path / "pkg2" / "sub.py").write_text("VALUE = 1\n")
    (tmp_path / "user.py").write_text(USER)
    r = run_cli("explain", tmp_path / "user.py")
    assert r.returncode == 0, r.stderr
    v = _verdicts(r.stdout)
    assert v["made"] == "lazy"  # changes nothing but its locals
    assert v["kept"] == "eager"  # writes a module global
    assert v["looked"] == "eager"  # reads a module value at call time: may change
    assert v["@marks"] == "lazy"  # a decorator returning its argument
    assert v["mod_attr"] == "lazy"  # `from pkg2 import sub`: a module
    assert v["via_module"] == "lazy"


def test_a_function_making_a_function_is_no_pure_decorator_factory(tmp_path, run_cli):
    # pyupgrade's `@register(ast.Call)`: `register(tp)` only returns a
    # closure (pure to call), but decorating calls the closure, which
    # appends to the module's FUNCS. A function that may return something
    # callable is "call", not "func": pure to call and to decorate with, no
    # pure decorator factory.
    (tmp_path / "reg4.py").write_text(
        "FUNCS = []\n"
        "def register(tp):\n    def deco(f):\n        FUNCS.append(f)\n        return f\n    return deco\n"
        "def lam(tp):\n    return lambda f: f\n"
        "import functools\n"
        "def _reg(tp, f):\n    FUNCS.append(f)\n    return f\n"
        "def via_partial(tp):\n    return functools.partial(_reg, tp)\n"
        "def mark(f):\n    return f\n"
        "def plus(x):\n    return x + 1\n")
    (tmp_path / "user4.py").write_text(
        "from reg4 import register, lam, mark, plus, via_partial\n"
        "@via_partial(int)\ndef third(node):\n    return node\n"
        "@register(int)\ndef visit(node):\n    return node\n"
        "@lam(int)\ndef other(node):\n    return node\n"
        "@mark\ndef marked(node):\n    return node\n"
        "ONE = plus(0)\n")
    r = run_cli("explain", tmp_path / "user4.py")
    assert r.returncode == 0, r.stderr
    v = _verdicts(r.stdout)
    assert v["@register"] == "eager"  # its closure registers the definition
    assert v["@lam"] == "eager"  # what a lambda does when called is not judged
    assert v["@via_partial"] == "eager"  # returns a call's result: not judged
    assert v["@mark"] == "lazy"
    assert v["ONE"] == "lazy"


def test_classes_of_a_submodule_imported_by_from_import(tmp_path, run_cli):
    # pylint's `from pylint import reporters` / `class PyLinter(...,
    # reporters.ReportsHandlerMixIn, ...)`: the submodule's summary applies.
    (tmp_path / "pkg3").mkdir()
    (tmp_path / "pkg3" / "__init__.py").write_text("")
    (tmp_path / "pkg3" / "impl.py").write_text(
        "class Plain:\n    def run(self): return 1\n"
        "class Registering:\n    def __init_subclass__(cls, **kw): pass\n")
    (tmp_path / "pkg3" / "reporters.py").write_text("from pkg3.impl import Plain, Registering\n")
    (tmp_path / "user3.py").write_text(
        "from pkg3 import reporters\n"
        "class Linter(reporters.Plain):\n    pass\n"
        "class Other(reporters.Registering):\n    pass\n")
    r = run_cli("explain", tmp_path / "user3.py")
    assert r.returncode == 0, r.stderr
    v = _verdicts(r.stdout)
    assert v["class Linter"] == "lazy"  # a plain class, re-exported by the submodule
    assert v["class Other"] == "eager"  # its base defines __init_subclass__


def test_reexports_of_names_the_knowledge_base_knows(tmp_path, run_cli):
    # _pytest.compat's `from typing import final as final`, read by pytest's
    # modules as `@final`: the re-export carries the knowledge base's fact.
    (tmp_path / "compat.py").write_text(
        "from typing import final as final\nfrom collections.abc import Mapping\nfrom os import getcwd\n")
    (tmp_path / "user2.py").write_text(
        "from compat import final, Mapping, getcwd\n"
        "@final\nclass Sealed:\n    pass\n"
        "class Table(Mapping):\n    pass\n"
        "here = getcwd()\n")
    r = run_cli("explain", tmp_path / "user2.py")
    assert r.returncode == 0, r.stderr
    v = _verdicts(r.stdout)
    assert v["@final"] == "lazy"  # typing.final: pure in the knowledge base
    assert v["class Table"] == "lazy"  # collections.abc.*: a pure base
    assert v["here"] == "eager"  # os.getcwd: not known pure (the working directory changes)


def test_reexports_of_known_names_are_read_as_the_known_name(tmp_path, run_cli):
    # _pytest.warning_types reads _pytest.compat's `from typing import final
    # as final` as `@final` over an attrs class, which _pytest.deprecated
    # calls for its constants: the re-export (followed through another
    # module) is typing.final itself, a decorator returning its class, so
    # the class's instances are made by attrs' code alone. A function of
    # the same name that is only pure to call says nothing of what it returns.
    (tmp_path / "compat.py").write_text("from typing import final as final\n")
    (tmp_path / "compat2.py").write_text("from compat import final\n")
    (tmp_path / "ownfinal.py").write_text("def final(cls):\n    return cls\n")
    (tmp_path / "warns.py").write_text(
        "import attr\nfrom compat2 import final\nimport ownfinal\n"
        "@final\n@attr.s(auto_attribs=True)\nclass Unformatted:\n    category: type\n    template: str\n"
        "@ownfinal.final\n@attr.s(auto_attribs=True)\nclass Other:\n    template: str\n")
    (tmp_path / "consts.py").write_text(
        "from warns import Unformatted, Other\n"
        "A = Unformatted(DeprecationWarning, 'x')\n"
        "B = Other('y')\n")
    facts = summaries.module_facts(str(tmp_path / "compat2.py"), "compat2", False, None)
    assert facts == {"final": "alias:typing.final"}
    r = run_cli("explain", tmp_path / "consts.py")
    assert r.returncode == 0, r.stderr
    v = _verdicts(r.stdout)
    assert v["A"] == "lazy"  # typing.final and attr.s: attrs' __init__ only stores the fields
    assert v["B"] == "eager"  # ownfinal.final: pure to call, but what it returns is not known


def test_a_summary_cut_by_the_depth_limit_is_computed_again_nearer_the_top(tmp_path, monkeypatch):
    # A build met _pytest.warning_types through other importers first, near
    # the depth limit, where the summaries of its own imports are not read
    # (its @final unknown, UnformattedWarning no "new"); reused as it was for
    # _pytest.deprecated, that summary kept the constants eager.
    (tmp_path / "compat.py").write_text("from typing import final as final\n")
    (tmp_path / "warns.py").write_text(
        "import attr\nfrom compat import final\n"
        "@final\n@attr.s(auto_attribs=True)\nclass Unformatted:\n    template: str\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = str(tmp_path / "warns.py")
    deep = summaries.module_facts(path, "warns", False, None, depth=summaries.SUMMARY_DEPTH)
    assert deep.get("Unformatted") != "new"  # what its imports' summaries say is not read there
    assert summaries.module_facts(path, "warns", False, None, depth=0)["Unformatted"] == "new"
    assert summaries.module_facts(path, "warns", False, None, depth=1)["Unformatted"] == "new"


def test_instances_whose_call_the_knowledge_base_knows_pure(tmp_path, run_cli):
    # pytest's `hookimpl = HookimplMarker("pytest")` in _pytest.config, read
    # by its plugins as `@hookimpl(tryfirst=True)` and re-exported by pytest:
    # the summary says calling the name is pure ("pluggy.HookimplMarker.__call__").
    (tmp_path / "hostcfg").mkdir()
    (tmp_path / "hostcfg" / "__init__.py").write_text(
        "from pluggy import HookimplMarker\nimport pluggy\n"
        "hookimpl = HookimplMarker('host')\n"
        "hookspec = pluggy.HookspecMarker('host')\n"
        "other = dict(a=1)\n")
    (tmp_path / "host.py").write_text("from hostcfg import hookimpl, hookspec\n")
    (tmp_path / "plugin.py").write_text(
        "from hostcfg import hookimpl, other\n"
        "import host\n"
        "@hookimpl(tryfirst=True)\ndef host_configure(config): pass\n"
        "@host.hookspec\ndef host_spec(arg): pass\n"
        "@other\ndef not_a_marker(): pass\n")
    r = run_cli("explain", tmp_path / "plugin.py")
    assert r.returncode == 0, r.stderr
    v = _verdicts(r.stdout)
    assert v["@hookimpl"] == "lazy"  # an instance whose call is known pure
    assert v["@host.hookspec"] == "lazy"  # re-exported by another module
    assert v["@other"] == "eager"  # a dict: calling it is not known pure
