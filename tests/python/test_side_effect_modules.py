"""Imports of modules whose own import changes another module stay eager
(src/lazyexec/analyze/side_effects.py); the differential case is
tests/semantics/cases.txt `import_of_a_module_that_changes_another_module_at_import_stays_eager`."""

from __future__ import annotations

import ast
import sys
import textwrap

from lazyexec.analyze import side_effects


def scan(src: str):
    return side_effects.scan(compile(textwrap.dedent(src), "<m>", "exec", 0x400, dont_inherit=True))


def test_calls_through_imported_names_are_effects():
    assert scan("from x import pygram\npygram.initialize(1)\n") == "calls pygram.initialize() at line 2"
    assert scan("import sys\nsys.path.insert(0, 'x')\n") == "calls sys.path.insert() at line 2"
    assert scan("from .util import register_pattern\nregister_pattern('git', object)\n") == \
        "calls register_pattern() at line 2"
    assert scan("from . import util\nutil.register('gitwildmatch', object)\n") == \
        "calls util.register() at line 2"  # a string key: others look it up without the object
    assert scan("import logging\nlogging.getLogger(__name__).addHandler(None)\n") == \
        "calls logging.getLogger().addHandler() at line 2"
    assert scan("import warnings\ntry:\n    pass\nexcept ImportError:\n    warnings.warn('x')\n") == \
        "calls warnings.warn() at line 5"


def test_assignments_into_imported_objects_are_effects():
    assert scan("from astroid import nodes\ndef f(): pass\nnodes.For.assigned_stmts = f\n") == \
        "sets nodes.For.assigned_stmts at line 3"
    assert scan("import os\nos.environ['X'] = '1'\n") == "sets os.environ[] at line 2"
    assert scan("class K: pass\nK.x = 1\n") is None  # its own class
    assert scan("import sys\nsys.modules['m.path'] = sys\n") is None  # an alias under its own name
    assert scan("from _io import E\nE.__module__ = 'io'\n") is None  # relabelling


def test_classes_made_by_an_imported_metaclass_are_effects():
    # sympy's Singleton.__init__ registers the class with S.
    assert scan("from sympy.core.singleton import Singleton\nclass E(metaclass=Singleton): pass\n") == \
        "defines E with metaclass Singleton at line 2"
    assert scan("from . import core\nclass E(object, metaclass=core.Meta): pass\n") == \
        "defines E with metaclass core.Meta at line 2"
    assert scan("import abc\nclass A(metaclass=abc.ABCMeta): pass\n") is None  # the standard library's
    assert scan("class M(type): pass\nclass A(metaclass=M): pass\n") is None  # its own


def test_version_and_platform_branches_not_taken_are_not_scanned():
    # attrs 22: `if sys.version_info < (3, 7): warnings.warn(...)` never runs here.
    assert scan("import sys\nimport warnings\nif sys.version_info < (3, 7):\n    warnings.warn('x')\n") is None
    assert scan("import sys\nimport warnings\nif sys.version_info >= (3, 7):\n    warnings.warn('x')\n") == \
        "calls warnings.warn() at line 4"
    assert scan("import sys\nimport w\nif sys.version_info[:2] < (3, 7):\n    pass\nelse:\n    w.f()\n") == \
        "calls w.f() at line 6"
    assert scan("import sys\nimport w\nif sys.version_info[0] == 2 or sys.platform.startswith('zz'):\n    w.f()\n") is None
    assert scan("import sys\nimport w\nif not sys.version_info.major == 3:\n    w.f()\n") is None
    # Undecidable, or `sys` not imported by the module: both branches count.
    assert scan("import sys\nimport w\nif sys.version_info < (3, 7) or X:\n    w.f()\n") == "calls w.f() at line 4"
    assert scan("import w\nif sys.version_info < (3, 7):\n    w.f()\n") == "calls w.f() at line 3"
    assert scan("import sys\nimport w\nif sys.version_info < 3:\n    w.f()\n") == "calls w.f() at line 4"


def test_one_decided_operand_decides_and_or():
    # black.parsing: `if sys.version_info < (3, 8) and not _IS_PYPY: ... sys.exit(1)`.
    assert scan("import sys\nimport w\nif sys.version_info < (3, 0) and not X:\n    w.f()\n") is None
    assert scan("import sys\nimport w\nif X and sys.version_info < (3, 0):\n    w.f()\n") is None
    assert scan("import sys\nimport w\nif X or sys.version_info >= (3, 0):\n    pass\nelse:\n    w.f()\n") is None
    # The other value of the decided operand leaves the test undecided: both branches count.
    assert scan("import sys\nimport w\nif sys.version_info >= (3, 0) and X:\n    w.f()\n") == \
        "calls w.f() at line 4"
    assert scan("import sys\nimport w\nif sys.version_info < (3, 0) or X:\n    w.f()\n") == "calls w.f() at line 4"


def test_handlers_of_a_try_that_cannot_fail_are_not_scanned():
    # importlib: `try: import _frozen_importlib as _bootstrap` / `except
    # ImportError: _bootstrap._setup(sys, _imp)`: a frozen module is always there.
    assert scan("import sys\ntry:\n    import _frozen_importlib as b\nexcept ImportError:\n    sys.setup()\n") is None
    assert scan("import sys\ntry:\n    import sys as s2\nexcept ImportError:\n    sys.setup()\n") is None
    # A module that may be missing, or anything else in the body: its handlers may run.
    assert scan("import sys\ntry:\n    import _no_such_module_x\nexcept ImportError:\n    sys.setup()\n") == \
        "calls sys.setup() at line 5"
    assert scan("import sys\ntry:\n    import sys as s2\n    s2.x\nexcept ImportError:\n    sys.setup()\n") == \
        "calls sys.setup() at line 6"


def test_setting_up_the_modules_own_accelerator_is_no_effect():
    def named(src, module):
        tree = compile(textwrap.dedent(src), "<m>", "exec", 0x400, dont_inherit=True)
        return side_effects.scan(tree, True, module)

    # csv: `from _csv import register_dialect` ... `register_dialect("excel", excel)`.
    assert named("from _csv import register_dialect\nregister_dialect('excel', 1)\n", "csv") is None
    # xml.etree.ElementTree: `from _elementtree import _set_factories`.
    assert named("from _elementtree import _set_factories\n_set_factories(1, 2)\n", "xml.etree.ElementTree") is None
    assert named("import _csv as acc\nacc.register_dialect('excel', 1)\n", "csv") is None
    # Another module's private module, or the name bound again by another import: an effect.
    assert named("from _json import register_dialect\nregister_dialect('excel', 1)\n", "csv") == \
        "calls register_dialect() at line 2"
    assert named("from _csv import f\nfrom other import f\nf(1)\n", "csv") == "calls f() at line 3"
    assert named("from ._csv import f\nf(1)\n", "csv") == "calls f() at line 2"
    assert scan("from _csv import register_dialect\nregister_dialect('excel', 1)\n") == \
        "calls register_dialect() at line 2"  # no module name known: presumed an effect


def test_what_is_not_an_effect():
    assert scan("def f(): pass\nf()\n") is None  # a local function
    assert scan("import copyreg\nclass P: pass\ndef r(p): pass\ncopyreg.pickle(P, r)\n") is None
    assert scan("from abc import ABC\nclass A(ABC): pass\nA.register(int)\n") is None
    assert scan("import atexit\ndef bye(): pass\natexit.register(bye)\n") is None
    assert scan("import x\nif __name__ == '__main__':\n    x.main()\n") is None
    assert scan("import x\ndef f():\n    x.main()\n") is None
    assert scan("import x\ny = x.compute()\n") is None  # assignments build this module's namespace


def test_a_top_level_call_of_an_own_function_scans_its_body():
    # ansible.plugins.loader's `_configure_collection_loader()`.
    src = """
        import sys
        from conf import Config
        def _install(finder):
            sys.meta_path.insert(0, finder)
        def _configure():
            finder = object()
            _install(finder)
            Config.on_load += 1
        _configure()
    """
    assert scan(src) == "calls _configure() at line 10, which calls sys.meta_path.insert() at line 5"
    assert scan(src.replace("_install(finder)\n", "pass\n")) == \
        "calls _configure() at line 10, which sets Config.on_load at line 9"
    # Names the function binds itself are its own, whatever the module imported.
    assert scan("import x\ndef f(x):\n    x.go()\n    y = x\n    y.z = 1\nf(1)\n") is None
    assert scan("import x\ndef f():\n    x = make()\n    x.go()\nf()\n") is None
    assert scan("import x\ndef f():\n    global x\n    x = 1\n    x.go()\nf()\n") == \
        "calls f() at line 6, which calls x.go() at line 5"
    # Nested functions, classes and lambdas run later; a def rebinding the
    # imported name makes it local; an assignment at the top level is as before.
    assert scan("import x\ndef f():\n    def g():\n        x.go()\n    return g\nf()\n") is None
    assert scan("from x import go\ndef go():\n    pass\ngo()\n") is None
    assert scan("import x\ndef f():\n    x.go()\ny = f()\n") is None
    # The module's own table, its accelerator, registrations by object.
    assert scan("TABLE = {}\nimport os\ndef f():\n    TABLE['a'] = os.sep\nf()\n") is None
    assert side_effects.scan(compile("from _ctypes import c\ndef r():\n    c.clear()\nr()\n", "<m>", "exec",
                                     0x400), module="ctypes") is None
    assert scan("import atexit\ndef f():\n    atexit.unregister(f)\nf()\n") is None
    # Followed CALL_DEPTH functions deep, each once (recursion ends).
    chain = "import x\ndef f3():\n    x.go()\ndef f2():\n    f3()\ndef f1():\n    f2()\n"
    assert scan(chain + "f1()\n") == "calls f1() at line 8, which calls x.go() at line 3"
    assert scan(chain + "def f0():\n    f1()\nf0()\n") is None
    assert scan("import x\ndef f():\n    f()\nf()\n") is None


def test_explain_names_the_call(tmp_path, run_cli):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "__init__.py").write_text("")
    (tmp_path / "lib" / "registry.py").write_text("def initialize(v): pass\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "nodes.py").write_text("from lib import registry\nregistry.initialize(1)\nsyms = 1\n")
    (tmp_path / "app" / "parsing.py").write_text("from app.nodes import syms\ndef f(): return syms\n")
    r = run_cli("explain", tmp_path / "app" / "parsing.py")
    assert r.returncode == 0, r.stderr
    assert "imports app.nodes calls registry.initialize() at line 2" in r.stdout


def test_namespace_packages_and_missing_modules_are_looked_up_without_error(tmp_path, monkeypatch):
    # a namespace package inside a regular one: its path needs the parent imported
    (tmp_path / "regular" / "ns").mkdir(parents=True)
    (tmp_path / "regular" / "__init__.py").write_text("")
    (tmp_path / "regular" / "ns" / "mod.py").write_text("import other\nother.init()\n")
    (tmp_path / "app.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    units = [{"verdict": "lazy", "kind": "import", "imports": ["regular.ns.mod"]},
             {"verdict": "lazy", "kind": "from-import", "imports": ["missing", "missing.name"]}]
    assert "regular" not in sys.modules
    # A module that cannot be found: its import stays eager, failing at import as eagerly.
    assert side_effects.effect_imports(units, str(tmp_path / "app.py"), "app", False) == {
        "missing": f"missing ({side_effects.MISSING})"}


def test_an_import_guard_of_a_missing_module_is_not_kept_eager_for_it(tmp_path, monkeypatch):
    # The guard handles the failure itself; found modules and the module's own package are not asked about.
    (tmp_path / "app.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    units = [{"verdict": "lazy", "kind": "try", "imports": ["missing_guarded"]},
             {"verdict": "lazy", "kind": "import", "imports": ["json"]},
             {"verdict": "lazy", "kind": "from-import", "imports": ["app.sibling", "app.sibling.x"]}]
    assert side_effects.effect_imports(units, str(tmp_path / "app.py"), "app.mod", False) == {}


def _reexport_package(tmp_path, models_source: str) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text(
        "import first\nfrom .models import Request\nfrom . import status\n")
    (tmp_path / "pkg" / "models.py").write_text(models_source)
    (tmp_path / "pkg" / "status.py").write_text("import regs\nregs.add('x', 1)\n")
    (tmp_path / "first.py").write_text("import regs\nregs.add('first', 1)\n")
    (tmp_path / "regs.py").write_text("table = {}\ndef add(k, v): table[k] = v\n")


def test_a_reexport_whose_import_changes_nothing_outside_is_not_a_side_effect_import(tmp_path, run_cli):
    _reexport_package(tmp_path, "import json\nclass Request: pass\n")
    r = run_cli("explain", tmp_path / "pkg" / "__init__.py")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    request = next(i for i, l in enumerate(lines) if "from .models import Request" in l)
    status = next(i for i, l in enumerate(lines) if "from . import status" in l)
    assert " lazy " in lines[request], r.stdout
    # status registers under a string key: presumed made for its side effect
    assert "eager" in lines[status] and "side effect" in lines[status + 1], r.stdout


def test_a_reexport_reaching_a_registration_stays_eager_unless_an_earlier_eager_import_ran_it(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    _reexport_package(tmp_path, "import first\nclass Request: pass\n")
    units = [{"verdict": "eager", "kind": "from-import", "reason": "side-effect-import",
              "imports": ["pkg.models", "pkg.models.Request"]}]
    path = str(tmp_path / "pkg" / "__init__.py")
    never = lambda name: False  # noqa: E731
    assert side_effects.effect_free_imports(units, path, "pkg", True, never) == []
    eager_first = {"verdict": "eager", "kind": "import", "reason": "never-lazy-import", "imports": ["first"]}
    assert side_effects.effect_free_imports([eager_first, *units], path, "pkg", True, never) == \
        ["pkg.models", "pkg.models.Request"]
    # a binary module the knowledge base keeps eager (readline) is an effect
    search, own = side_effects._search_and_own(path, "pkg", True)
    assert side_effects.reaches_effect(["readline"], search, own, lambda n: n == "readline") is not None
    assert side_effects.reaches_effect(["pkg.models"], search, {"pkg", "first"}, never) is None


def test_imports_under_type_checking_do_not_run():
    tree = compile("import typing as t\nif t.TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
                   "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n"
                   "def f():\n    import d\n", "<m>", "exec", 0x400, dont_inherit=True)
    assert side_effects.imports_of(tree, "pkg.m", False) == ["typing", "b", "typing", "typing.TYPE_CHECKING"]


def test_import_guards_follow_the_import_rules(tmp_path, run_cli):
    # `try: import x except ImportError: ...` deferred as one unit: an import
    # of a module whose import changes another module keeps it eager, and
    # one whose names the module never reads is a side-effect import unless
    # importing it changes nothing outside (a re-export).
    (tmp_path / "regs.py").write_text("table = {}\ndef add(k, v): table[k] = v\n")
    (tmp_path / "plugin.py").write_text("import regs\nregs.add('plugin', 1)\nVALUE = 1\n")
    (tmp_path / "plain.py").write_text("VALUE = 2\n")
    (tmp_path / "wrapper.py").write_text("import plugin\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "compat.py").write_text(
        "try:\n    import plugin\nexcept ImportError:\n    plugin = None\n"
        "try:\n    import plain as reexported\nexcept ImportError:\n    reexported = None\n"
        "try:\n    import wrapper as registering\nexcept ImportError:\n    registering = None\n"
        "def use(): return plugin\n")
    r = run_cli("explain", tmp_path / "app" / "compat.py")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    at = {int(l.split()[0]): l + "\n" + lines[i + 1] for i, l in enumerate(lines) if l.split() and l.split()[0].isdigit()}
    assert " eager " in at[1] and "imports plugin calls regs.add()" in at[1], r.stdout
    assert " lazy " in at[5] and "import-guard" not in at[5] and "deferred as one unit" in at[5], r.stdout
    assert " eager " in at[9] and "side effect" in at[9], r.stdout


def test_an_availability_probe_whose_import_changes_nothing_stays_lazy(tmp_path, run_cli):
    # shutil's `try: import bz2; del bz2; _BZ2_SUPPORTED = True` / `except
    # ImportError: _BZ2_SUPPORTED = False`: the import's name is deleted at
    # once; when importing the module changes nothing outside it, the probe
    # waits for the first read of its flag.
    (tmp_path / "quiet.py").write_text("VALUE = 1\n")
    (tmp_path / "regs.py").write_text("table = {}\ndef add(k, v): table[k] = v\n")
    (tmp_path / "noisy.py").write_text("import regs\nregs.add('noisy', 1)\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "probe.py").write_text(
        "try:\n    import quiet\n    del quiet\n    HAVE_QUIET = True\nexcept ImportError:\n    HAVE_QUIET = False\n"
        "try:\n    import noisy\n    del noisy\n    HAVE_NOISY = True\nexcept ImportError:\n    HAVE_NOISY = False\n"
        "def have(): return HAVE_QUIET, HAVE_NOISY\n")
    r = run_cli("explain", tmp_path / "app" / "probe.py")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    at = {int(l.split()[0]): l + "\n" + lines[i + 1] for i, l in enumerate(lines) if l.split() and l.split()[0].isdigit()}
    assert " lazy " in at[1] and "binds HAVE_QUIET;" in at[1], r.stdout
    assert " eager " in at[7], r.stdout


def test_the_reexport_check_counts_registering_decorators_but_not_the_stdlibs_or_pure_ones():
    def lenient(src, pure=None):
        tree = compile(src, "<m>", "exec", ast.PyCF_ONLY_AST)
        return side_effects.scan(tree, strict=False, module="m", pure=pure)

    # mpmath.functions.zetazeros: @defun writes another module's registry
    assert "decorates zetazero with defun()" in lenient("from .functions import defun\n@defun\ndef zetazero(n): pass\n")
    assert "decorates C with reg.add()" in lenient("import reg\n@reg.add('k')\nclass C: pass\n")
    # the standard library's, and what the knowledge base knows pure
    assert lenient("import enum, functools\n@enum.unique\nclass E(enum.Enum): A = 1\n"
                   "@functools.lru_cache(maxsize=None)\ndef f(): pass\n") is None
    assert lenient("from attr import frozen\n@frozen\nclass C: pass\n", pure=lambda n: n == "attr.frozen") is None
    # the strict scan (imports whose names are read) leaves decorators to first use
    tree = compile("from .functions import defun\n@defun\ndef f(): pass\n", "<m>", "exec", ast.PyCF_ONLY_AST)
    assert side_effects.scan(tree) is None


def test_the_strict_scan_counts_a_decorator_handed_an_imported_object():
    def strict(src, pure=None):
        tree = compile(src, "<m>", "exec", ast.PyCF_ONLY_AST)
        return side_effects.scan(tree, module="m", pure=pure)

    # django.test.signals: `@receiver(setting_changed)` connects to another module's signal
    assert "decorates f with receiver(setting_changed)" in strict(
        "from dispatch import receiver\nfrom signals import setting_changed\n"
        "@receiver(setting_changed)\ndef f(**kw): pass\n")
    assert "decorates A with admin.register(Model)" in strict(
        "from app import admin\nfrom .models import Model\n@admin.register(Model)\nclass A: pass\n")
    # no imported object handed over, or the callee known pure or the standard library's
    assert strict("import attr\n@attr.s(slots=True)\nclass C: pass\n") is None
    assert strict("from lib import deco\n@deco(1, 'x')\ndef f(): pass\n") is None
    assert strict("from typing_extensions import deprecated\nfrom w import W\n@deprecated(W)\nclass C: pass\n",
                  pure=lambda n: n.startswith("typing_extensions.")) is None
    assert strict("import functools\nfrom m2 import other\n@functools.wraps(other)\ndef f(): pass\n") is None


def test_deferred_import_in_a_cycle_with_a_later_eager_import_stays_eager(tmp_path):
    # sympy.core: `from .expr import ...` deferred, `from .numbers import ...`
    # eager; expr's top level imports numbers (its last line).
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .expr import Expr\nfrom .other import X\nfrom .numbers import Float\n")
    (pkg / "expr.py").write_text("class Expr: pass\nfrom .numbers import Float\n")
    (pkg / "other.py").write_text("X = 1\n")
    (pkg / "numbers.py").write_text("from .expr import Expr\nclass Float(Expr): pass\n")
    units = [
        {"kind": "from-import", "verdict": "lazy", "imports": ["pkg.expr", "pkg.expr.Expr"]},
        {"kind": "from-import", "verdict": "lazy", "imports": ["pkg.other", "pkg.other.X"]},
        {"kind": "from-import", "verdict": "eager", "imports": ["pkg.numbers", "pkg.numbers.Float"]},
    ]
    found = side_effects.effect_imports(units, str(pkg / "__init__.py"), "pkg", True)
    assert set(found) == {"pkg.expr"}, found
    assert found["pkg.expr"].endswith(f"({side_effects.CYCLE})")
    # The later import deferred too: whichever is used first would start
    # the cycle; the earlier one stays eager, so that it starts as eagerly.
    units[2]["verdict"] = "lazy"
    found = side_effects.effect_imports(units, str(pkg / "__init__.py"), "pkg", True)
    assert set(found) == {"pkg.expr"}, found
    assert "a deferred import further down, which may be used first" in found["pkg.expr"], found


def _package(tmp_path, sources: dict, rows: list) -> tuple:
    """Package `pkg` of `sources` ({module: text}), and the from-import units
    of its __init__ ((module, name, verdict) each)."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for name, text in sources.items():
        (pkg / f"{name}.py").write_text(text)
    return pkg, [{"kind": "from-import", "verdict": verdict, "imports": [f"pkg.{m}", f"pkg.{m}.{n}"]}
                 for m, n, verdict in rows]


def test_deferred_import_in_a_longer_cycle_with_a_later_eager_import_stays_eager(tmp_path):
    # sympy: `from .polys import ...` deferred, `from .printing import pretty`
    # eager; a -> b -> c -> a, c imported at import further down.
    pkg, units = _package(tmp_path, {
        "__init__": "from .a import A\nfrom .other import X\nfrom .c import C\n",
        "a": "A = 1\nfrom .b import B\n", "b": "from .c import C\nB = C\n", "c": "from .a import A\nC = A\n",
        "other": "from .b import B\nX = B\n"},  # other leads into the cycle, not back from it
        [("a", "A", "lazy"), ("other", "X", "lazy"), ("c", "C", "eager")])
    found = side_effects.effect_imports(units, str(pkg / "__init__.py"), "pkg", True)
    assert set(found) == {"pkg.a"}, found
    assert "a longer cycle" in found["pkg.a"] and found["pkg.a"].endswith(f"({side_effects.CYCLE})")
    # The later import deferred too: the earlier one stays eager, as above.
    units[2]["verdict"] = "lazy"
    found = side_effects.effect_imports(units, str(pkg / "__init__.py"), "pkg", True)
    assert set(found) == {"pkg.a"}, found
    assert "which may be used first" in found["pkg.a"], found
    # Only this distribution's modules, and not through the running package.
    reach = side_effects.package_reach("pkg.a", [str(tmp_path)], {"pkg"})
    assert {"pkg.a", "pkg.b", "pkg.c"} <= reach and "pkg.other" not in reach and "pkg" not in reach, reach


def test_deferred_import_entering_a_cycle_elsewhere_than_a_later_eager_import_stays_eager(tmp_path):
    # sympy.matrices.expressions: `from .slice import ...` deferred (slice
    # imports matexpr), `from .inverse import ...` eager; both lead into the
    # cycle inverse -> matpow -> matexpr -> matmul -> inverse, at matexpr and
    # at inverse. Neither leads to the other: the longer-cycle check does not see it.
    sources = {"__init__": "from .s import S\nfrom .t import T\nfrom .i import I\n",
               "s": "from .e import E\nS = E\n", "t": "from .m import M\nT = M\n",
               "e": "class E: pass\nfrom .m import M\n", "m": "from .i import I\nfrom .e import E\nM = E\n",
               "i": "from .p import P\nI = P\n", "p": "from .e import E\nP = E\n"}
    pkg, units = _package(tmp_path, sources, [("s", "S", "lazy"), ("t", "T", "lazy"), ("i", "I", "eager")])
    found = side_effects.effect_imports(units, str(pkg / "__init__.py"), "pkg", True)
    # t enters the cycle at m. s, kept eager, runs first, but its own import
    # of e may be deferred in its turn (in mode "all"): the cycle is not
    # known to have started, and t stays eager too.
    assert set(found) == {"pkg.s", "pkg.t"}, found
    assert "enter an import cycle at pkg.e, which pkg.i" in found["pkg.s"], found
    assert found["pkg.s"].endswith(f"({side_effects.CYCLE})")
    # Entering the cycle where the later import enters it: the same order.
    (pkg / "s.py").write_text("from .i import I\nS = I\n")
    assert set(side_effects.effect_imports(units, str(pkg / "__init__.py"), "pkg", True)) == {"pkg.t"}
    # The later import deferred too: whichever is used first would start
    # the cycle. s and t stay eager, as above (s's own imports may be
    # deferred: the cycle is not known to have started when t runs).
    (pkg / "s.py").write_text(sources["s"])
    units[2]["verdict"] = "lazy"
    found = side_effects.effect_imports(units, str(pkg / "__init__.py"), "pkg", True)
    assert set(found) == {"pkg.s", "pkg.t"}, found
    assert "which may be used first" in found["pkg.s"], found
    # The start order: depth first, in source order, packages above first.
    order = side_effects.start_order(["pkg.s"], [str(tmp_path)], {"pkg"}, "pkg")
    assert order == ["pkg.s", "pkg.e", "pkg.m", "pkg.i", "pkg.p"], order
    # Deferred imports that enter no cycle in common stay deferred.
    (pkg / "s.py").write_text("S = 1\n")
    (pkg / "t.py").write_text("T = 2\n")
    assert side_effects.effect_imports(units, str(pkg / "__init__.py"), "pkg", True) == {}
def test_the_start_order_walks_each_module_once_and_sees_a_changed_module(tmp_path):
    # What a module's top level starts is kept with the facts it comes from
    # (a large cycle's modules are walked again for every deferred import):
    # repeats start nothing, and a module rewritten is read again.
    sources = {"__init__": "", "a": "from . import b\nfrom .b import B\nimport pkg.c\nfrom .b import B\n",
               "b": "from .c import C\nB = C\n", "c": "C = 1\n", "d": "D = 1\n"}
    pkg, _ = _package(tmp_path, sources, [])
    search = [str(tmp_path)]
    assert side_effects.start_order(["pkg.a"], search, set(), "pkg") == ["pkg", "pkg.a", "pkg.b", "pkg.c"]
    assert side_effects.start_order(["pkg.a"], search, {"pkg.b"}, "pkg") == ["pkg", "pkg.a", "pkg.c"]
    (pkg / "c.py").write_text("from .d import D\nC = D\n")
    assert side_effects.start_order(["pkg.a"], search, {"pkg"}, "pkg") == ["pkg.a", "pkg.b", "pkg.c", "pkg.d"]


def test_deferred_import_entering_a_cycle_elsewhere_than_its_package_later_stays_eager(tmp_path):
    # sqlalchemy.orm.util: `from . import attributes` deferred, leading to
    # collections, whose `__go(locals())` imports mapped_collection, which
    # imports collections back; sqlalchemy.orm imports exc (which leads to
    # util) and later mapped_collection, which enters the cycle elsewhere.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    sources = {"__init__": "from . import a\nfrom .mapped import keyed\n",
               "a": "from . import coll\nfrom . import other\n",
               "coll": "class Coll: pass\ndef __go():\n    from .mapped import keyed\n__go()\n",
               "mapped": "from .coll import Coll\nkeyed = Coll\n", "other": "X = 1\n"}
    for name, text in sources.items():
        (pkg / f"{name}.py").write_text(text)
    units = [
        {"kind": "from-import", "verdict": "lazy", "imports": ["pkg", "pkg.coll"]},
        {"kind": "from-import", "verdict": "lazy", "imports": ["pkg", "pkg.other"]},
    ]
    found = side_effects.effect_imports(units, str(pkg / "a.py"), "pkg.a", False)
    assert set(found) == {"pkg.coll"}, found
    assert "which pkg.mapped (imported by pkg at import after this module) enters at pkg.mapped" in found["pkg.coll"]
    # A function of the module called at its top level imports there.
    tree = compile(sources["coll"], "coll.py", "exec", 1024)
    assert side_effects.imports_of(tree, "pkg.coll", False) == ["pkg.mapped", "pkg.mapped.keyed"]
    # The package imports the cycle's entry first: nothing to reorder.
    (pkg / "__init__.py").write_text("from .coll import Coll\nfrom . import a\nfrom .mapped import keyed\n")
    assert side_effects.effect_imports(units, str(pkg / "a.py"), "pkg.a", False) == {}
    # Imported directly, after the package ran whole: nothing after it.
    (pkg / "__init__.py").write_text("from .mapped import keyed\n")
    assert side_effects.effect_imports(units, str(pkg / "a.py"), "pkg.a", False) == {}


def test_an_extension_module_outside_the_stdlib_is_an_effect(tmp_path, run_cli):
    # pandas._libs: `import pandas._libs.pandas_datetime  # noqa: F401`, its
    # name never read: the extension module sets the C API capsule on the
    # `pandas` package that its other extension modules import. No scan can
    # read what an extension module's import does: not a re-export.
    import importlib.machinery

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("import pkg._speedups  # noqa: F401\nfrom .models import Request\n")
    (tmp_path / "pkg" / "models.py").write_text("class Request: pass\n")
    (tmp_path / "pkg" / ("_speedups" + importlib.machinery.EXTENSION_SUFFIXES[0])).write_bytes(b"")
    path = str(tmp_path / "pkg" / "__init__.py")
    search, own = side_effects._search_and_own(path, "pkg", True)
    never = lambda name: False  # noqa: E731
    assert "extension module" in side_effects.reaches_effect(["pkg._speedups"], search, own, never)
    assert side_effects.reaches_effect(["pkg.models", "pkg.models.Request"], search, own, never) is None
    # the standard library's own extension modules change nothing outside
    stdlib_ext = next((m for m in ("_bz2", "_ctypes", "_decimal", "_json", "_lzma")
                       if m not in sys.builtin_module_names), None)
    if stdlib_ext is not None:
        assert side_effects.reaches_effect([stdlib_ext], search, own, never) is None
    r = run_cli("explain", path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    ext = next(i for i, l in enumerate(lines) if "import pkg._speedups" in l)
    assert " eager " in lines[ext] and "side effect" in lines[ext + 1], r.stdout


def test_a_packages_init_keeps_the_order_of_its_extension_modules(tmp_path, run_cli):
    # pandas._libs' __init__ imports `interval`, then `tslibs`, whose modules
    # import each other from C in a cycle only that order resolves: deferred,
    # `pandas._libs.lib` started first and met timestamps half-initialized.
    import importlib.machinery

    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text(
        "from ._ext import A\nfrom .sub import B\nfrom .plain import C\n"
        "def use(): return A, B, C\n")
    (tmp_path / "pkg" / ("_ext" + suffix)).write_bytes(b"")
    (tmp_path / "pkg" / ("_ext2" + suffix)).write_bytes(b"")
    (tmp_path / "pkg" / "sub.py").write_text("from ._ext2 import B\n")
    (tmp_path / "pkg" / "plain.py").write_text("C = 1\n")
    (tmp_path / "pkg" / "user.py").write_text("from ._ext import A\ndef use(): return A\n")
    r = run_cli("explain", tmp_path / "pkg" / "__init__.py")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    at = {int(l.split()[0]): l + "\n" + lines[i + 1] for i, l in enumerate(lines) if l.split() and l.split()[0].isdigit()}
    assert " eager " in at[1] and "pkg._ext, which is an extension module" in at[1], r.stdout
    assert " eager " in at[2] and "leads to pkg._ext2" in at[2], r.stdout
    assert " lazy " in at[3], r.stdout
    # a module that is not the package's __init__ leaves the order to it
    r = run_cli("explain", tmp_path / "pkg" / "user.py")
    assert r.returncode == 0, r.stderr
    assert " lazy " in next(l for l in r.stdout.splitlines() if "from ._ext import A" in l), r.stdout


def test_a_from_import_of_a_name_its_module_never_binds_stays_eager(tmp_path):
    # template_tests.broken_tag's `from django import Xtemplate`
    (tmp_path / "lib.py").write_text("VALUE = 1\n__all__ = ['LISTED']\n")
    (tmp_path / "star.py").write_text("from lib import *\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub.py").write_text("")

    def kept(module, name):
        units = [{"kind": "from-import", "verdict": "lazy", "imports": [module, f"{module}.{name}"]}]
        return side_effects.effect_imports(units, str(tmp_path / "app.py"), "app", False)

    assert kept("lib", "Missing") == {"lib.Missing": "lib.Missing (never bound in lib: its import fails at import, as eagerly)"}
    assert kept("lib", "VALUE") == {}
    assert kept("lib", "LISTED") == {}  # named, if only in a string: not certain
    assert kept("star", "Missing") == {}  # a star import binds names unseen
    assert kept("pkg", "sub") == {}  # a submodule
    assert kept("lib", "__file__") == {}  # the import system binds dunders


def test_imports_of_follows_a_top_level_call_of_the_modules_own_class_into_its_init():
    # twisted.logger._logger: `_log = Logger()`, whose __init__ imports ._global.
    import ast

    tree = ast.parse("import a\nclass C:\n    def __init__(self):\n        from . import b\n"
                     "    def other(self):\n        import c\n"
                     "def f():\n    import d\n"
                     "X = C()\nY = C()\nZ: object = f()\nimport e\n")
    assert side_effects.imports_of(tree, "pkg.m", False) == ["a", "pkg", "pkg.b", "d", "e"]
    # Not a call of its own: nothing followed.
    tree = ast.parse("import a\nclass C:\n    def __init__(self):\n        import b\nX = a.C()\n")
    assert side_effects.imports_of(tree, "m", False) == ["a"]
