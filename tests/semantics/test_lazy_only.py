"""Behaviour only lazyexec has: failures at first use, retries, notes,
threads, __at_import__, the artifact store, the off switch and stats."""

from __future__ import annotations

import struct
import sys
import textwrap

from harness import Case, run, write

from lazyexec import store


def program(tmp_path, files: dict, lazy=True, env=None):
    case = Case("t", {k: textwrap.dedent(v).lstrip("\n") for k, v in files.items()}, 0)
    write(case, tmp_path)
    return run(tmp_path, lazy=lazy, env_extra=env)


def test_failing_unit_keeps_its_type_gains_a_note_and_retries(tmp_path):
    r = program(tmp_path, {
        "mod.py": """
            __lazy_module__ = True
            DIVISOR = 0
            RATIO = 10 // DIVISOR
            """,
        "main.py": """
            import mod
            try:
                mod.RATIO
            except ZeroDivisionError as e:
                print("ZeroDivisionError")
                notes = getattr(e, "__notes__", [])
                if sys.version_info >= (3, 11):
                    assert any("mod.py:3" in n for n in notes), notes
            import lazyexec
            assert lazyexec.is_pending(mod, "RATIO")
            mod.DIVISOR = 5
            print(mod.RATIO)
            """})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ZeroDivisionError\n2\n"


def test_failing_unit_keyerror_through_a_global_lookup_is_a_nameerror(tmp_path):
    """docs/differences.md: the interpreter takes a KeyError from the trapping
    namespace for "absent"; through the module the KeyError is kept."""
    r = program(tmp_path, {
        "mod.py": """
            __lazy_module__ = True
            VALUE = {"a": 1}["b"]
            def get():
                return VALUE
            """,
        "main.py": """
            import mod
            for use in (mod.get, lambda: mod.VALUE, lambda: mod.get()):
                try:
                    use()
                except Exception as e:
                    print(type(e).__name__)
            """})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "NameError\nKeyError\nNameError\n"


def test_skiptest_keeps_its_type(tmp_path):
    r = program(tmp_path, {
        "mod.py": """
            __lazy_module__ = True
            import unittest
            class Fixture(unittest.SkipTest.__mro__[0]):
                pass
            """,
        "main.py": """
            import unittest
            import mod
            print(issubclass(mod.Fixture, unittest.SkipTest))
            """})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "True\n"


def test_keyboard_interrupt_raised_by_unit_code(tmp_path):
    r = program(tmp_path, {
        "side.py": """
            COUNT = [0]
            """,
        "mod.py": """
            __lazy_module__ = True
            import side
            from side import COUNT
            __all__ = ["side", "COUNT"]  # read: not a side-effect import
            """,
        "main.py": """
            import builtins
            real_import = builtins.__import__
            def flaky(name, *a, **k):
                if name == "side" and not getattr(flaky, "done", False):
                    flaky.done = True
                    raise KeyboardInterrupt
                return real_import(name, *a, **k)
            import mod
            builtins.__import__ = flaky
            try:
                mod.side
            except KeyboardInterrupt:
                print("interrupted")
            import lazyexec
            print(lazyexec.is_pending(mod, "side"))
            print(mod.side.COUNT)
            builtins.__import__ = real_import
            """})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "interrupted\nTrue\n[0]\n"


def test_at_import_runs_after_the_eager_part(tmp_path):
    r = program(tmp_path, {
        "mod.py": """
            __lazy_module__ = True
            EVENTS = ["eager"]
            def __at_import__():
                EVENTS.append("at_import")
            """,
        "main.py": """
            import mod
            print(mod.EVENTS)
            """})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "['eager', 'at_import']\n"


def test_threads_racing_first_access_get_one_object(tmp_path):
    units = "\n".join(f"class C{i}:\n    pass\nL{i} = [C{i}]" for i in range(200))
    r = program(tmp_path, {
        "mod1.py": "__lazy_module__ = True\n" + units,
        "mod2.py": "__lazy_module__ = True\nimport mod1\n" + units,
        "main.py": """
            import threading
            import mod1, mod2
            barrier = threading.Barrier(32)
            seen = [[] for _ in range(32)]
            def worker(k):
                barrier.wait()
                for i in range(200):
                    for m in (mod1, mod2):
                        seen[k].append(id(getattr(m, f"L{i}")))
                        seen[k].append(id(getattr(m, f"C{i}")))
            threads = [threading.Thread(target=worker, args=(k,)) for k in range(32)]
            for t in threads: t.start()
            for t in threads: t.join(60)
            assert not any(t.is_alive() for t in threads), "deadlock"
            assert all(s == seen[0] for s in seen), "two objects for one name"
            assert all(mod1.L5[0] is mod1.C5 for _ in range(2))
            print("ok", len(seen[0]))
            """})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok 800\n"


def test_cycle_between_units_is_an_error_not_a_hang(tmp_path):
    r = program(tmp_path, {
        "a.py": """
            __lazy_module__ = True
            import b
            X = 1
            """,
        "b.py": """
            __lazy_module__ = True
            import a
            """,
        "main.py": """
            import a, b
            print(a.b.a.X)
            """})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1\n"


def test_constant_units_are_stored_as_values():
    """Issue #10 (cheaper units): `NAME = <constant>` is stored as the
    marshalled value and materialized by unmarshalling it, no code object;
    a computed or mutable value keeps its code."""
    from lazyexec.compile import build_plan

    source = (b"__lazy_module__ = True\nX = 3\nNAMES = ('a', 'b')\nS = 'hi'\nNEG = -1.5\nL = [1, 2]\n"
              b"T = (X, 2)\nA: int = 4\ndef f(): return X\n")
    plan = build_plan(source, "m.py", "m", False, None)
    kinds = {u[1][0]: type(u[0]).__name__ for u in plan.units if u[0] is not None}
    assert kinds == {"X": "tuple", "NAMES": "tuple", "S": "tuple", "NEG": "tuple", "L": "bytes", "T": "bytes",
                     "A": "bytes", "f": "tuple"}, kinds


def test_plain_functions_are_stored_as_their_own_code():
    """Issue 11 (per-unit cost, artifact format 10): a `def` with nothing
    evaluated at definition time is stored as ("function", marshal bytes of
    the function's code object); one with a decorator, a default, an
    annotation or a closure keeps its unit code."""
    import marshal

    from lazyexec.compile import build_plan

    source = (b"__lazy_module__ = True\nimport functools\ndef f(a, *b, **c): return a\nasync def g(): pass\n"
              b"def h(): yield 1\ndef d(a=1): return a\ndef n(a: int): return a\n"
              b"@functools.cache\ndef w(): return 1\n")
    plan = build_plan(source, "m.py", "m", False, None)
    units = {u[1][0]: u[0] for u in plan.units if u[0] is not None and u[1]}
    plain = {name for name, code in units.items() if isinstance(code, tuple) and code[0] == "function"}
    assert plain == {"f", "g", "h"}, units
    code = marshal.loads(units["f"][1])
    assert (code.co_name, code.co_filename, code.co_firstlineno) == ("f", "m.py", 3)
    assert all(isinstance(units[n], bytes) for n in ("d", "n", "w"))


def test_constant_values_keep_the_semantics_of_a_binding(tmp_path):
    r = program(tmp_path, {
        "mod.py": """
            __lazy_module__ = True
            X = 3
            Y = 'name'
            Z = (1, 2)
            W = 7
            def f(): return X + W
            """,
        "main.py": """
            import sys, lazyexec, mod
            print(lazyexec.is_pending(mod, "X"), lazyexec.is_pending(mod, "W"))
            mod.W = 70          # a later write wins over the pending constant
            print(mod.f(), mod.Y is sys.intern('name'), mod.Z, sorted(lazyexec.pending(mod)))
            """,
    })
    assert r.returncode == 0, r.stderr
    assert r.stdout == "True True\n73 True (1, 2) ['W']\n", r.stdout  # W's statement never ran


def test_plain_function_units_behave_as_their_definitions(tmp_path):
    """A function made from its stored code (no unit code run) is the one
    `def` would make: name, qualified name, module, globals, defaults,
    code flags, line numbers in tracebacks; a later write wins over it and a
    deleted one is not resurrected."""
    r = program(tmp_path, {
        "mod.py": """
            __lazy_module__ = True
            def plain(a, b):
                return a + b
            def gen():
                yield 1
            async def co():
                return 2
            def fails():
                raise ValueError("boom")
            def replaced():
                return "mine"
            def removed():
                return 1
            def uses():
                return plain(1, 2) + len(list(gen()))
            """,
        "main.py": """
            import asyncio, inspect, traceback, lazyexec, mod
            print(lazyexec.is_pending(mod, "plain"), lazyexec.is_pending(mod, "gen"))
            f = mod.plain
            print(f(1, 2), f.__name__, f.__qualname__, f.__module__, f.__globals__ is vars(mod), f.__defaults__,
                  f.__code__.co_firstlineno, inspect.isgeneratorfunction(mod.gen), asyncio.run(mod.co()), mod.uses())
            try:
                mod.fails()
            except ValueError as e:
                print(traceback.extract_tb(e.__traceback__)[-1].lineno)
            mod.replaced = lambda: "theirs"
            print(mod.replaced())
            exec("del removed", vars(mod))
            print(hasattr(mod, "removed"), mod.plain is f)
            """,
    })
    assert r.returncode == 0, r.stderr
    assert r.stdout == "True True\n3 plain plain mod True None 2 True 2 4\n9\ntheirs\nFalse True\n", r.stdout


def test_artifact_is_stored_and_a_corrupt_one_is_rebuilt_with_a_warning(tmp_path):
    files = {"mod.py": "__lazy_module__ = True\nA = 1\ndef f(): return A\n", "main.py": "import mod\nprint(mod.f())\n"}
    r = program(tmp_path, files)
    assert r.returncode == 0 and r.stdout == "1\n", r.stderr
    artifacts = list((tmp_path / "__pycache__").glob("mod.*.lzx"))
    assert len(artifacts) == 1
    data = artifacts[0].read_bytes()
    assert data[:4] == b"LZEX"
    artifacts[0].write_bytes(data[:60])  # truncated payload
    r = run(tmp_path, lazy=True)
    assert r.returncode == 0 and r.stdout == "1\n"
    assert "ignoring corrupt artifact" in r.stderr
    artifacts[0].write_bytes(b"garbage")
    r = run(tmp_path, lazy=True)
    assert r.returncode == 0 and r.stdout == "1\n" and "corrupt" in r.stderr
    r = run(tmp_path, lazy=True)  # rebuilt: quiet again
    assert r.returncode == 0 and r.stdout == "1\n" and r.stderr == ""


def test_a_bit_flipped_anywhere_in_an_artifacts_payload_is_refused_with_a_warning_never_run(tmp_path):
    """marshal reads a damaged code object without complaint, and running it
    can crash the interpreter or bind wrong names: the artifact's check
    (docs/artifact-format.md) refuses it first, so the module loads as
    eagerly, with one warning."""
    files = {"mod.py": "__lazy_module__ = True\nA = 1\nNAMES = ['alpha', 'beta']\n"
                       "def f(): return A + len(NAMES)\nclass C:\n    def g(self): return f() * 2\n",
             "main.py": "import mod\nprint(mod.f(), mod.C().g(), mod.NAMES)\n"}
    r = program(tmp_path, files)
    expected = "3 6 ['alpha', 'beta']\n"
    assert r.returncode == 0 and r.stdout == expected, r.stderr
    artifact = next((tmp_path / "__pycache__").glob("mod.*.lzx"))
    good = artifact.read_bytes()
    header = struct.calcsize(store.HEADER_FORMAT)
    for at in range(header, len(good), max(1, (len(good) - header) // 9)):
        bad = bytearray(good)
        bad[at] ^= 0x10
        artifact.write_bytes(bytes(bad))
        r = run(tmp_path, lazy=True)
        assert (r.returncode, r.stdout) == (0, expected), (at, r.stderr)
        assert "ignoring corrupt artifact" in r.stderr and "checksum mismatch" in r.stderr, (at, r.stderr)


def test_source_change_invalidates_the_artifact(tmp_path):
    r = program(tmp_path, {"mod.py": "__lazy_module__ = True\nA = 1\n", "main.py": "import mod\nprint(mod.A)\n"})
    assert r.stdout == "1\n"
    (tmp_path / "mod.py").write_text("__lazy_module__ = True\nA = 22\n")
    assert run(tmp_path, lazy=True).stdout == "22\n"


def test_off_switch(tmp_path):
    r = program(tmp_path, {
        "mod.py": "__lazy_module__ = True\nA = 1\n",
        "main.py": """
            import mod
            import lazyexec._lazyexec as core
            print(core.is_trapping(mod.__dict__))
            """}, env={"LAZYEXEC": "0"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "False\n"


def test_stats_at_exit(tmp_path):
    r = program(tmp_path, {
        "mod.py": "__lazy_module__ = True\nA = 1\nB = 2\ndef f(): return A\n",
        "main.py": "import mod\nprint(mod.f())\n"}, env={"LAZYEXEC_STATS": "1"})
    assert r.returncode == 0, r.stderr
    line = [l for l in r.stderr.splitlines() if l.startswith("mod ")][0].split()
    assert line[1:5] == ["4", "3", "2", "1"]  # units (the marker too), deferred, materialized, never used


def test_materialize_all_and_pending(tmp_path):
    r = program(tmp_path, {
        "mod.py": "__lazy_module__ = True\nimport json\nA = 1\ndef f(): return A, json\n",
        "main.py": """
            import lazyexec, mod
            print(lazyexec.pending(mod))
            assert "json" not in sys.modules
            lazyexec.materialize_all()
            print(lazyexec.pending(mod), "json" in sys.modules)
            """})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "['A', 'f', 'json']\n[] True\n"


def test_small_module_of_functions_loads_eagerly_unless_it_asks_for_laziness(tmp_path):
    """DESIGN (never slower than eager): a module whose deferred units are
    only function definitions and constants, in little code, costs more
    lazily than eagerly (a plan, a trapping namespace): in mode "all" it
    loads eagerly (compile.MIN_DEFERRED_BYTES). `__lazy_module__ = True`
    keeps it lazy; a class, an import or a computed value is worth deferring."""
    from lazyexec.compile import MIN_DEFERRED_BYTES

    big = "".join(f"def f{i}(a, b):\n    return [a * b + {i} for _ in range(a)]\n"
                  for i in range(MIN_DEFERRED_BYTES // 150))
    setup = program(tmp_path, {
        "pyproject.toml": "[tool.lazyexec]\nmode = 'all'\n",
        "small.py": "A = 1\nB = (1, 'x')\ndef f(): return A\ndef g(): return B\n",
        "computed.py": "import re\nP = re.compile('a+')\n",
        "marked.py": "__lazy_module__ = True\ndef f(): return 1\n",
        "withclass.py": "def f(): return 1\nclass K:\n    pass\n",
        "big.py": big,
        "app.py": """
            import lazyexec._lazyexec as core
            import small, computed, marked, withclass, big
            mods = (small, computed, marked, withclass, big)
            print([core.is_trapping(m.__dict__) for m in mods], small.f(), small.g(), big.f3(2, 3))
            """,
        "main.py": "",
    })
    assert setup.returncode == 0, setup.stderr
    import os
    import subprocess

    env = {**os.environ, "LAZYEXEC_BUILD": "inline", "LAZYEXEC_PROFILE": "0"}
    out = subprocess.run([sys.executable, "-m", "lazyexec", "run", "-m", "app"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env=env)
    assert (out.returncode, out.stdout) == (0, "[False, True, True, True, True] 1 (1, 'x') [9, 9]\n"), out.stderr


def test_run_dash_m_and_configuration_mode_all(tmp_path):
    setup = program(tmp_path, {
        "pyproject.toml": "[tool.lazyexec]\nmode = 'all'\ninclude = ['plain']\n",
        "plain.py": "A = 1\ndef f(): return A\nclass K:\n    pass\n",
        "app.py": """
            import sys
            import plain
            import lazyexec._lazyexec as core
            print(core.is_trapping(plain.__dict__), plain.f(), sys.argv[1:])
            """,
        "main.py": "",
    })
    assert setup.returncode == 0, setup.stderr  # the (empty) main.py ran under lazyexec
    import subprocess

    import os

    out = subprocess.run([sys.executable, "-m", "lazyexec", "run", "-m", "app", "x", "--flag"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, env={**os.environ, "LAZYEXEC_BUILD": "inline",
                                                                       "LAZYEXEC_PROFILE": "0"})
    assert out.returncode == 0, out.stderr
    assert out.stdout == "True 1 ['x', '--flag']\n"


def test_pth_activation_with_lazyexec_1(tmp_path):
    import subprocess

    site = tmp_path / "site"
    site.mkdir()
    r = subprocess.run([sys.executable, "-m", "lazyexec", "pth", "install", "--dir", str(site)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (tmp_path / "mod.py").write_text("__lazy_module__ = True\nA = 1\n")
    probe = ("import site, sys; site.addsitedir(sys.argv[1]); import mod, lazyexec._lazyexec as c; "
             "print(c.is_trapping(mod.__dict__))")
    base = {k: v for k, v in __import__("os").environ.items() if not k.startswith("LAZYEXEC")}
    base["LAZYEXEC_BUILD"] = "inline"
    on = subprocess.run([sys.executable, "-c", probe, str(site)], cwd=tmp_path, capture_output=True, text=True,
                        env={**base, "LAZYEXEC": "1"})
    off = subprocess.run([sys.executable, "-c", probe, str(site)], cwd=tmp_path, capture_output=True, text=True,
                         env=base)
    assert (on.stdout, off.stdout) == ("True\n", "False\n"), (on.stderr, off.stderr)
    r = subprocess.run([sys.executable, "-m", "lazyexec", "pth", "remove", "--dir", str(site)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and not (site / "00-lazyexec-activate.pth").exists()


def test_unit_wait_and_import_lock_deadlock_is_an_error_not_a_hang(tmp_path):
    """Thread 1 runs unit `import slow` of module a (and so waits for slow's
    module lock); thread 2, importing slow, needs that same unit. Eagerly
    importlib reports such cycles; lazily the waiter must get an error too."""
    r = program(tmp_path, {
        "a.py": """
            __lazy_module__ = True
            import slow
            __all__ = ["slow"]  # read: not a side-effect import
            """,
        "slow.py": """
            import threading, time
            import signals
            # (a top-level call through an imported name would keep `import
            # slow` eager: analyze/side_effects.py)
            started, sleep = signals.started, time.sleep
            started.set()
            sleep(0.5)
            import a
            a.slow  # waits for the unit thread 1 is running
            """,
        "signals.py": """
            import threading
            started = threading.Event()
            """,
        "main.py": """
            import threading
            import signals, a
            outcome = []
            def importer():
                try:
                    import slow
                    outcome.append("imported")
                except ImportError as e:
                    outcome.append("deadlock" if "deadlock" in str(e) else repr(e))
            t = threading.Thread(target=importer)
            t.start()
            signals.started.wait(10)
            try:
                a.slow  # runs `import slow`, blocked on slow's module lock held by the thread
            except Exception as e:
                outcome.append("main: " + type(e).__name__)
            t.join(30)
            assert not t.is_alive(), "hang"
            print(outcome[0])
            """})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "deadlock"


def test_submodule_probe_imports_only_while_an_import_under_the_package_is_deferred(tmp_path):
    """docs/differences.md, submodule attributes: the documented answer of
    `hasattr(pkg, "sub")` for an existing submodule nothing imported."""
    r = program(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "A = 1\n",
        "pkg/b.py": "B = 2\n",
        "other/__init__.py": "",
        "other/c.py": "C = 3\n",
        "mod.py": """
            __lazy_module__ = True
            import pkg.a
            def f():
                return pkg.a.A
            """,
        "main.py": """
            import mod, pkg, other
            print(hasattr(other, "c"), "other.c" in sys.modules)
            print(hasattr(pkg, "b"), "pkg.b" in sys.modules, "pkg.a" in sys.modules)
            print(mod.f(), hasattr(pkg, "__wrapped__"))
            """})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "False False\nTrue True False\n1 False\n"
