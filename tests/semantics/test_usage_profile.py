"""The usage profile (issue #10): a module a program used whole loads eagerly
at its next start; one whose pending units would cost more to run than the
lazy bookkeeping of those that ran stays lazy (issue 11's cost model). Output
is the same on every run (eager is the reference), only the bookkeeping
changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MAIN = """
import sys
import whole, partial
print(whole.a(), whole.b(), partial.a())
print("lazy:", sorted(m for m in ("whole", "partial") if type(sys.modules[m].__spec__.loader).__name__ == "LazySourceLoader"))
"""


def make_app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir(parents=True)
    (app / "whole.py").write_text("__lazy_module__ = True\ndef a(): return 1\ndef b(): return 2\n")
    # Its pending class costs more to create than one unit's lazy bookkeeping.
    (app / "partial.py").write_text("__lazy_module__ = True\ndef a(): return 3\n"
                                    "class Unused:\n    def m(self): return 4\n")
    (app / "main.py").write_text(MAIN)
    return app


def run(app: Path, tmp_path: Path, script="main.py", **extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(LAZYEXEC_CACHE_DIR=str(tmp_path / "cache"), LAZYEXEC_BUILD="inline", **extra)
    return subprocess.run([sys.executable, "-m", "lazyexec", "run", script], cwd=app, env=env,
                          capture_output=True, text=True, timeout=120)


def test_whole_used_module_loads_eagerly_next_time(tmp_path):
    app = make_app(tmp_path)
    first, second, third = (run(app, tmp_path) for _ in range(3))
    assert first.stdout == "1 2 3\nlazy: ['partial', 'whole']\n", first.stderr
    assert second.stdout == "1 2 3\nlazy: ['partial']\n", second.stderr
    assert third.stdout == second.stdout


def test_profile_is_per_program(tmp_path):
    app = make_app(tmp_path)
    (app / "other.py").write_text(MAIN)
    assert run(app, tmp_path).returncode == 0
    assert run(app, tmp_path, "other.py").stdout.endswith("lazy: ['partial', 'whole']\n")


def test_off_switch_and_expiry(tmp_path):
    app = make_app(tmp_path)
    for extra in ({"LAZYEXEC_PROFILE": "0"}, {"LAZYEXEC_PROFILE_TTL": "0"}):
        for _ in range(2):
            r = run(app, tmp_path, **extra)
            assert r.stdout == "1 2 3\nlazy: ['partial', 'whole']\n", (extra, r.stderr)


def test_a_module_that_stops_being_used_whole_is_lazy_again_after_expiry(tmp_path):
    app = make_app(tmp_path)
    run(app, tmp_path, LAZYEXEC_PROFILE_TTL="1")
    assert run(app, tmp_path, LAZYEXEC_PROFILE_TTL="1").stdout.endswith("lazy: ['partial']\n")
    import time

    time.sleep(1.2)
    assert run(app, tmp_path, LAZYEXEC_PROFILE_TTL="1").stdout.endswith("lazy: ['partial', 'whole']\n")


def test_damaged_profile_is_one_warning_and_rewritten(tmp_path):
    app = make_app(tmp_path)
    run(app, tmp_path)
    [profile] = (tmp_path / "cache" / "profiles").glob("*.profile")
    profile.write_bytes(b"\x00not marshal")
    r = run(app, tmp_path)
    assert r.stdout == "1 2 3\nlazy: ['partial', 'whole']\n"
    assert r.stderr.count("RuntimeWarning: lazyexec: ignoring damaged usage profile") == 1, r.stderr
    r = run(app, tmp_path)
    assert (r.stdout, r.stderr) == ("1 2 3\nlazy: ['partial']\n", "")


def test_dash_m_programs_in_different_directories_have_their_own_profiles(tmp_path):
    apps = []
    for d in ("one", "two"):
        app = make_app(tmp_path / d)
        (app / "prog.py").write_text(MAIN)
        apps.append(app)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")}
    env.update(LAZYEXEC_CACHE_DIR=str(tmp_path / "cache"), LAZYEXEC_BUILD="inline")
    runs = [subprocess.run([sys.executable, "-m", "lazyexec", "run", "-m", "prog"], cwd=app, env=env,
                           capture_output=True, text=True, timeout=120) for app in (apps[0], apps[0], apps[1])]
    assert [r.stdout.splitlines()[-1] for r in runs] == ["lazy: ['partial', 'whole']", "lazy: ['partial']",
                                                         "lazy: ['partial', 'whole']"], [r.stderr for r in runs]


def test_a_light_use_does_not_inherit_the_profile_of_a_heavy_one(tmp_path):
    """`prog --all` uses `whole` whole; `prog --version` (another shape of
    command line) must not load it eagerly for that."""
    app = make_app(tmp_path)
    (app / "cli.py").write_text("import sys, whole\nif '--all' in sys.argv: print(whole.a(), whole.b())\n"
                                "print(type(whole.__spec__.loader).__name__)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")}
    env.update(LAZYEXEC_CACHE_DIR=str(tmp_path / "cache"), LAZYEXEC_BUILD="inline")

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "lazyexec", "run", "cli.py", *args], cwd=app, env=env,
                           capture_output=True, text=True, timeout=120)
        return r.stdout.splitlines()[-1]

    assert [cli("--all"), cli("--all"), cli("--version"), cli("--all", "x")] == [
        "LazySourceLoader", "SourceFileLoader", "LazySourceLoader", "LazySourceLoader"]


NEARLY = """
import sys
import nearly, unused_import, unused_sub, from_lazy, half, cheap_rest, pkgx, lazyhelpers
print(nearly.f0(), nearly.f8(), unused_import.f0(), half.f0(), cheap_rest.f0())
print("lazy:", sorted(m for m in ("nearly", "unused_import", "unused_sub", "from_lazy", "half", "cheap_rest")
                      if type(sys.modules[m].__spec__.loader).__name__ == "LazySourceLoader"))
print("far away loaded:", "faraway" in sys.modules, "pkgx.sub" in sys.modules)
"""


def test_a_module_used_nearly_whole_loads_eagerly_next_time_unless_its_rest_would_load_more(tmp_path):
    """Pending units that would load no module the run did not, and cost
    less to run eagerly than the lazy bookkeeping of the units that ran:
    eager next time (a few functions left, or half of them: a function
    definition costs less to run than one unit's bookkeeping). A pending
    import of a module the run never loaded (`import faraway`; `from pkgx
    import sub` with pkgx loaded but not its submodule), or pending classes
    (expensive to create), keep the module lazy; the output is the same
    every run."""
    app = tmp_path / "app"
    app.mkdir()
    defs = "".join(f"def f{i}(): return {i}\n" for i in range(9))
    (app / "nearly.py").write_text("__lazy_module__ = True\n" + defs + "def unused(): return -1\n")
    (app / "unused_import.py").write_text("__lazy_module__ = True\nimport faraway\n" + defs)
    (app / "faraway.py").write_text("print('faraway ran')\n")
    (app / "unused_sub.py").write_text("__lazy_module__ = True\nfrom pkgx import sub\n" + defs)
    # A pending `from lazyhelpers import helper` whose unit in lazyhelpers (a
    # lazily loaded module) loads nothing: eager next time.
    (app / "from_lazy.py").write_text("__lazy_module__ = True\nfrom lazyhelpers import helper\n" + defs)
    (app / "lazyhelpers.py").write_text("__lazy_module__ = True\nimport sys\ndef helper(): return 0\n"
                                        "def other(): return sys.platform\n")
    (app / "pkgx").mkdir()
    (app / "pkgx" / "__init__.py").write_text("")
    (app / "pkgx" / "sub.py").write_text("print('sub ran')\n")
    (app / "half.py").write_text("__lazy_module__ = True\n" + "".join(f"def f{i}(): return {i}\n" for i in range(2))
                                 + "".join(f"class C{i}:\n    def m(self): return {i}\n" for i in range(2)))
    # Five of nine small functions never used: running them costs less
    # than the bookkeeping of the four that ran.
    (app / "cheap_rest.py").write_text("__lazy_module__ = True\n" + defs)
    (app / "main.py").write_text(NEARLY.replace("half.f0()", "half.f0(), half.f1()").replace("cheap_rest.f0()", "cheap_rest.f0(), cheap_rest.f1(), cheap_rest.f2(), cheap_rest.f3()")
                                 + "print(*(getattr(nearly, f'f{i}')() for i in range(9)))\n"
                                 + "print(*(getattr(unused_import, f'f{i}')() for i in range(9)))\n"
                                 + "print(*(getattr(unused_sub, f'f{i}')() for i in range(9)))\n"
                                 + "print(*(getattr(from_lazy, f'f{i}')() for i in range(9)))\n"
                                 + "print(lazyhelpers.other() == sys.platform)\n")
    first, second, third = (run(app, tmp_path) for _ in range(3))
    tail = "far away loaded: False False\n" + "0 1 2 3 4 5 6 7 8\n" * 4 + "True\n"
    assert first.stdout == (f"0 8 0 0 1 0 1 2 3\nlazy: ['cheap_rest', 'from_lazy', 'half', 'nearly', 'unused_import', "
                            f"'unused_sub']\n{tail}"), first.stderr
    assert second.stdout == f"0 8 0 0 1 0 1 2 3\nlazy: ['half', 'unused_import', 'unused_sub']\n{tail}", second.stderr
    assert third.stdout == second.stdout


BUSY_MAIN = """
import sys, busy
print(busy.work(3000))
print("lazy:", type(busy.__spec__.loader).__name__ == "LazySourceLoader")
"""


def test_a_module_whose_code_looks_up_globals_through_the_trap_a_lot_loads_eagerly_next_time(tmp_path):
    """Until it settles, each global or builtin lookup of a lazily loaded
    module's own code goes through its trapping namespace (+200 to +500
    instructions against an eager module's specialized LOAD_GLOBAL): 9,000
    of them cost more than creating the one class left pending, so the
    module loads eagerly next time (before, only the units that ran were
    counted and it stayed lazy). Same output every run."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "busy.py").write_text("__lazy_module__ = True\nLIMIT = 3\n"
                                 "def work(n):\n    t = 0\n    for i in range(n):\n        t += len(NAMES) + LIMIT\n"
                                 "    return t\n"
                                 "NAMES = (1, 2)\n"
                                 "class Unused:\n    def m(self): return 4\n")
    (app / "main.py").write_text(BUSY_MAIN)
    first, second, third = (run(app, tmp_path) for _ in range(3))
    assert first.stdout == "15000\nlazy: True\n", first.stderr
    assert second.stdout == "15000\nlazy: False\n", second.stderr
    assert third.stdout == second.stdout


def _large_function(i: int) -> str:
    body = "".join(f"    v{j} = a.attr{i}_{j} + helper{j}(b, 'text {i} {j}')\n" for j in range(30))
    return f"def big{i}(a, b):\n{body}    return {i}\n"


def test_large_functions_that_ran_cost_their_size_so_the_module_loads_eagerly_next_time(tmp_path):
    """A unit's code unmarshalled alone re-creates every name and constant
    the module's `.pyc` shares: about 20 instructions per byte more than
    eagerly (a 1.5 KiB function: +43 K). Three such functions used and a
    small class pending: eager next time (before, 2 per byte: lazy). Same
    output every run."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "large.py").write_text("__lazy_module__ = True\n" + "".join(_large_function(i) for i in range(3))
                                  + "class Unused:\n    def m(self): return 4\n")
    (app / "main.py").write_text("import sys, large\nprint([getattr(large, f'big{i}').__name__ for i in range(3)])\n"
                                 "print('lazy:', type(large.__spec__.loader).__name__ == 'LazySourceLoader')\n")
    first, second, third = (run(app, tmp_path) for _ in range(3))
    assert first.stdout == "['big0', 'big1', 'big2']\nlazy: True\n", first.stderr
    assert second.stdout == "['big0', 'big1', 'big2']\nlazy: False\n", second.stderr
    assert third.stdout == second.stdout


FROM_HEAVY_MAIN = """
import sys, lazyexec, user, heavy
print(*(getattr(user, f'f{i}')() for i in range(9)), heavy.other())
print("lazy:", type(user.__spec__.loader).__name__ == "LazySourceLoader",
      "TABLE pending:", lazyexec.is_pending(heavy, "TABLE"))
"""


def test_a_pending_from_import_costs_what_it_would_run_in_the_module_it_imports_from(tmp_path):
    """Loading a module whole runs its pending `from heavy import TABLE`,
    and with it heavy's pending TABLE unit (a computed value: unknown cost,
    counted as expensive), which the run never needed. Before, the import
    counted as 2 K (a module loaded already), `user` loaded eagerly next time
    and built TABLE (issue 11: a module loaded whole ran what its deferred
    imports pull from lazily loaded modules). Now `user` stays lazy and TABLE
    pending; the output is the same every run."""
    app = tmp_path / "app"
    app.mkdir()
    defs = "".join(f"def f{i}(): return {i}\n" for i in range(9))
    (app / "user.py").write_text("__lazy_module__ = True\nfrom heavy import TABLE\n" + defs
                                 + "def uses_table(): return TABLE\n")
    (app / "heavy.py").write_text("__lazy_module__ = True\n"
                                  "TABLE = {n: str(n) * 3 for n in range(200)}\n"
                                  "def other(): return 'other'\n")
    (app / "main.py").write_text(FROM_HEAVY_MAIN)
    first, second, third = (run(app, tmp_path) for _ in range(3))
    assert first.stdout == "0 1 2 3 4 5 6 7 8 other\nlazy: True TABLE pending: True\n", first.stderr
    assert second.stdout == first.stdout, second.stderr
    assert third.stdout == first.stdout


DECORATED_MAIN = """
import sys, lazyexec, deco, based
print(*(getattr(deco, f'f{i}')() for i in range(9)), *(getattr(based, f'f{i}')() for i in range(9)))
print("lazy:", [type(m.__spec__.loader).__name__ == "LazySourceLoader" for m in (deco, based)],
      "pending:", lazyexec.is_pending(deco, "Point"), lazyexec.is_pending(based, "Color"))
"""


def test_a_pending_class_whose_creation_runs_unknown_code_counts_as_expensive(tmp_path):
    """A pending class made by a decorator (`@dataclasses.dataclass`: about
    28 times a plain class's creation, `@attr.s` 50 times) or whose base
    has a metaclass (`enum.Enum`: 6 to 8 times) costs what the model cannot
    size: counted as a computed value, as `re.compile` is. Before, as a plain
    class (50 K plus 20 per byte): nine small functions used were enough to
    load each module eagerly next time, creating the class the run never
    used. Now both stay lazy; the output is the same every run."""
    app = tmp_path / "app"
    app.mkdir()
    defs = "".join(f"def f{i}(): return {i}\n" for i in range(9))
    (app / "deco.py").write_text("__lazy_module__ = True\nimport dataclasses\n" + defs
                                 + "@dataclasses.dataclass\nclass Point:\n    x: int = 0\n    y: int = 0\n")
    (app / "based.py").write_text("__lazy_module__ = True\nimport sys\nfrom enum import Enum\n" + defs
                                  + "def platform(): return sys.platform\n"
                                  + "class Color(Enum):\n    RED = 1\n    GREEN = 2\n")
    (app / "main.py").write_text(DECORATED_MAIN + "import enum\nprint(based.platform() == sys.platform)\n")
    first, second, third = (run(app, tmp_path) for _ in range(3))
    out = "0 1 2 3 4 5 6 7 8 0 1 2 3 4 5 6 7 8\nlazy: [True, True] pending: True True\nTrue\n"
    assert first.stdout == out, first.stderr
    assert second.stdout == out, second.stderr
    assert third.stdout == out



CONSTANT_LIKE_MAIN = """
import re, sys
import cheap, costly
print(sum(getattr(m, f"f{i}")() for m in (cheap, costly) for i in range(9)))
print("lazy:", [type(m.__spec__.loader).__name__ == "LazySourceLoader" for m in (cheap, costly)])
"""


def test_a_pending_assignment_that_only_reads_names_or_builds_displays_costs_what_a_constant_does(tmp_path):
    """A pending computed value counts as expensive (it may run anything the
    analysis called pure: `re.compile(...)`), but one whose code only reads
    names, builds displays, unpacks, or calls a builtin constructor the
    module does not rebind (`EnumMeta = EnumType`, `_NOT_FOUND = object()`,
    `_special = frozenset({...})`, functools' `_convert` table; on 3.11 a
    comprehension over a constant calling `chr`) costs about what a
    constant does: enum, whose two such assignments were counted
    400 K each, loads eagerly next time in `pygmentize -V`. A module whose
    pending value calls anything else stays lazy; the output is the same
    every run."""
    app = tmp_path / "app"
    app.mkdir()
    defs = "".join(f"def f{i}(): return {i}\n" for i in range(9))
    (app / "cheap.py").write_text("__lazy_module__ = True\n" + defs
                                  + "_SENTINEL = object()\nALIAS = f0\n_TABLE = {'a': [('b', f1)], 'c': (f2,)}\n"
                                  + "NAMES = frozenset({'x', 'y'})\nA, B = f2, f3\nC = D = f4\n"
                                  # 3.11 runs a comprehension as its own function (3.12 inlines it: PEP 709)
                                  + ("_MAP = {i: '\\\\' + chr(i) for i in b'()[]'}\n" if sys.version_info[:2] == (3, 11) else ""))
    (app / "costly.py").write_text("__lazy_module__ = True\nimport re\n" + defs + "PATTERN = re.compile('[a-z]+')\n")
    (app / "main.py").write_text(CONSTANT_LIKE_MAIN)
    first, second, third = (run(app, tmp_path) for _ in range(3))
    assert first.stdout == "72\nlazy: [True, True]\n", first.stderr
    assert second.stdout == "72\nlazy: [False, True]\n", second.stderr
    assert third.stdout == second.stdout


GUARD_MAIN = """
import sys
import native_guard, python_guard
print(sum(getattr(m, f"f{i}")() for m in (native_guard, python_guard) for i in range(9)))
print("lazy:", [type(m.__spec__.loader).__name__ == "LazySourceLoader" for m in (native_guard, python_guard)])
print("_statistics loaded:", "_statistics" in sys.modules, file=sys.stderr)
"""


def test_a_pending_import_guard_of_an_extension_module_the_run_did_not_load_costs_its_loading(tmp_path):
    """A pending unit that would load a module the run did not keeps its
    module lazy (that module could cost anything). An import guard (`try:
    from _typing import _idfunc` / `except ImportError:`) whose modules not
    loaded are extension or built-in modules counts their loading (500 K
    each) instead: typing, used nearly whole by every program reading entry
    points, loads whole next time. A guard of a Python module still keeps
    its module lazy; the output is the same every run."""
    app = tmp_path / "app"
    app.mkdir()
    defs = "".join(f"def f{i}(): return {i}\n" for i in range(9))
    # Enough lazy bookkeeping to outweigh the extension's 500 K: trap lookups.
    hot = "def hot():\n    for _ in range(3000): f0\n"
    guard = "try:\n    from {m} import {n}\nexcept ImportError:\n    {n} = None\n"
    (app / "native_guard.py").write_text("__lazy_module__ = True\n" + defs + hot
                                         + guard.format(m="_statistics", n="_normal_dist_inv_cdf"))
    (app / "python_guard.py").write_text("__lazy_module__ = True\n" + defs + hot
                                         + guard.format(m="colorsys", n="rgb_to_hsv"))
    (app / "main.py").write_text("import native_guard, python_guard\nnative_guard.hot(); python_guard.hot()\n"
                                 + GUARD_MAIN)
    first, second, third = (run(app, tmp_path) for _ in range(3))
    assert first.stdout == "72\nlazy: [True, True]\n", first.stderr
    assert "_statistics loaded: False" in first.stderr
    assert second.stdout == "72\nlazy: [False, True]\n", second.stderr
    assert "_statistics loaded: True" in second.stderr
    assert third.stdout == second.stdout


def test_builtin_lookups_through_the_trap_count_their_keyerror(tmp_path):
    """A builtin looked up by a lazily loaded module's own code misses its
    trapping namespace first: the trap raises KeyError, LOAD_GLOBAL matches
    and clears it, then reads the builtins (+503 instructions against +213
    for a module global, docs/startup.md). The model counts 300 more per
    miss: 1,600 builtin lookups now outweigh a pending computed value (400
    K), where at 200 each they did not. Same output every run."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "busy.py").write_text("__lazy_module__ = True\n"
                                 "def work(n):\n    t = 0\n    for i in range(n):\n        t += len(()) + abs(-1)\n"
                                 "    return t\n"
                                 "TABLE = sorted(range(3))\n")
    (app / "main.py").write_text(BUSY_MAIN.replace("work(3000)", "work(800)"))
    first, second, third = (run(app, tmp_path) for _ in range(3))
    assert first.stdout == "800\nlazy: True\n", first.stderr
    assert second.stdout == "800\nlazy: False\n", second.stderr
    assert third.stdout == second.stdout


def test_a_file_argument_is_not_part_of_the_programs_shape(tmp_path):
    """The Python layer's activation (`lazyexec run`) keys profiles as the
    C++ one does (test_boot): a path, `module:function` or number given
    first shares the profile; a word (a subcommand) does not."""
    app = make_app(tmp_path)
    (app / "cli.py").write_text(MAIN)

    def last(*args):
        r = subprocess.run([sys.executable, "-m", "lazyexec", "run", "cli.py", *args], cwd=app,
                           env={**{k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")},
                                "LAZYEXEC_CACHE_DIR": str(tmp_path / "cache"), "LAZYEXEC_BUILD": "inline"},
                           capture_output=True, text=True, timeout=120)
        return r.stdout.splitlines()[-1]

    assert [last("a.py"), last("b/c.py"), last("app:main"), last("12"), last("check"), last("check")] == [
        "lazy: ['partial', 'whole']", "lazy: ['partial']", "lazy: ['partial']", "lazy: ['partial']",
        "lazy: ['partial', 'whole']", "lazy: ['partial']"]
    from lazyexec.importer import profile

    assert profile.usage(["x.py"]) == profile.usage(["y/z.py"]) != profile.usage(["build"])
    assert profile.usage(["é"]) == profile.usage(["1abc"]) == profile.usage(["./x"]) != profile.usage(["a-b_c1"])


def test_modules_on_an_import_cycle_stay_lazy_however_whole_they_were_used(tmp_path):
    # nbformat's shape (jupyter-nbconvert failed from its second lazy start):
    # the package's earlier import (v4) reaches validator, which imports
    # reader, which imports validator back; eagerly validator starts the
    # cycle and defines ValidationError before importing reader. Lazily both
    # are lazy modules whose imports are deferred, used whole by the run;
    # loaded eagerly at the next start, reader (imported at the package's
    # later `from . import reader`) started the cycle itself and validator
    # met it half-initialized: ImportError.
    app = tmp_path / "app"
    pkg = app / "pkg"
    (pkg / "v4").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import v4\nfrom . import reader\n")
    # v4 and convert keep units pending (unused classes): lazy at every start.
    unused = "class Unused:\n    def m(self): return 1\n"
    (pkg / "v4" / "__init__.py").write_text("from .convert import upgrade\n" + unused)
    (pkg / "v4" / "convert.py").write_text("from .. import validator\ndef upgrade(): return validator.check()\n" + unused)
    (pkg / "validator.py").write_text("class ValidationError(Exception):\n    pass\n"
                                      "from .reader import get_version\ndef check(): return get_version()\n")
    (pkg / "reader.py").write_text("from .validator import ValidationError\ndef get_version(): return 4\n"
                                   "def error(): return ValidationError.__name__\n")
    (app / "main.py").write_text("import pkg\nprint(pkg.reader.get_version(), pkg.reader.error(), pkg.validator.check())\n")
    (app / "all.toml").write_text('mode = "all"\n')
    eager = subprocess.run([sys.executable, "main.py"], cwd=app, capture_output=True, text=True)
    assert eager.stdout == "4 ValidationError 4\n", eager.stderr
    for _ in range(3):
        r = run(app, tmp_path, LAZYEXEC_CONFIG=str(app / "all.toml"))
        assert r.stdout == eager.stdout, r.stderr
    import marshal

    [profile] = (tmp_path / "cache" / "profiles").glob("*.profile")
    whole = marshal.loads(profile.read_bytes())["eager"]
    assert "pkg.reader" not in whole and "pkg.validator" not in whole, whole
