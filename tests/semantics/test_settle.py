"""Settling (issue #4): the namespace becomes an exact dict again, nothing a
program can reach goes missing, and it is safe under threads."""

from __future__ import annotations

import textwrap

from harness import Case, run, write

MOD = """
__lazy_module__ = True
import json
BASE = 10
def helper(x):
    return x + BASE
def api(x):
    return helper(x) * 2
def unused():
    return json.dumps([1])
class Shape:
    sides = BASE
    def area(self):
        return helper(self.sides)
"""


def program(tmp_path, main: str, env=None, mod=MOD):
    write(Case("t", {"mod.py": textwrap.dedent(mod).lstrip(), "main.py": textwrap.dedent(main).lstrip()}, 0), tmp_path)
    return run(tmp_path, lazy=True, env_extra=env)


def test_settle_on_request_keeps_everything_reachable(tmp_path):
    r = program(tmp_path, """
        import lazyexec, mod
        print(mod.api(1))
        # ModuleType's own descriptor, without completing it (while a pending
        # unit reads a module global, mod's class is lazyexec's subclass)
        namespace = type(lazyexec).__dict__["__dict__"].__get__
        assert type(namespace(mod)) is not dict
        lazyexec.settle(mod)
        assert type(namespace(mod)) is dict
        print(mod.api(2), mod.Shape().area())
        # still pending after settling, reached through the module: runs with its closure
        assert lazyexec.is_pending(mod, "unused")
        print(mod.unused())
        s = [s for s in lazyexec.stats() if s["module"] == "mod"][0]
        print(s["settled"], s["settle_reason"])
        """, env={"LAZYEXEC_SETTLE": "never"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "22\n24 20\n[1]\nTrue requested: lazyexec.settle()\n"


def test_settles_when_nothing_is_pending(tmp_path):
    r = program(tmp_path, """
        import lazyexec, mod
        lazyexec.materialize_all(mod)
        print(type(mod.__dict__) is dict, lazyexec.stats()[0]["settle_reason"])
        """)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "True complete: nothing pending\n"


def test_settles_when_hot(tmp_path):
    r = program(tmp_path, """
        import lazyexec, mod
        assert type(mod.__dict__) is not dict
        for i in range(2000):
            mod.api(i)
        s = lazyexec.stats()[0]
        print(type(mod.__dict__) is dict, s["settle_reason"], s["settle_forced"] >= 0, mod.Shape().area())
        """, env={"LAZYEXEC_SETTLE": "500"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "True hot: trap lookups passed settle_threshold True 20\n"


HOT_THEN_INSPECT = """
    import types, lazyexec, mod
    namespace = types.ModuleType.__dict__["__dict__"].__get__  # without completing it
    for i in range(2000):
        mod.api(i)
    print(type(namespace(mod)) is dict, lazyexec.pending(mod), "__getattr__" in namespace(mod),
          type(mod) is types.ModuleType, type(mod).__name__)
    print(sorted(k for k in vars(mod) if not k.startswith("__")), lazyexec.pending(mod),
          type(mod) is types.ModuleType, "__getattr__" in namespace(mod))
    """


def test_hot_module_completes_and_drops_its_hooks(tmp_path):
    # A module settled because it is hot runs what is still pending and loses
    # lazyexec's __getattr__: CPython then specializes `mod.attr` again.
    r = program(tmp_path, HOT_THEN_INSPECT, env={"LAZYEXEC_SETTLE": "500"})
    assert r.returncode == 0, r.stderr
    names = "['BASE', 'Shape', 'api', 'helper', 'json', 'unused']"
    assert r.stdout == f"True [] False True module\n{names} [] True False\n"


def test_hot_module_completing_gives_modules_class_back_once(tmp_path):
    # The hot settle runs the pending units; the last one completing the
    # module gave its class back from a nested call, and the outer call then
    # did it again with ModuleType itself: one reference of ModuleType lost
    # per such module (3.10-3.11, where static types are not immortal), until
    # a long sympy run freed ModuleType and crashed (session 16).
    r = program(tmp_path, """
        import sys, types, mod
        before = sys.getrefcount(types.ModuleType)
        for i in range(2000):
            mod.api(i)
        print(type(mod) is types.ModuleType, sys.getrefcount(types.ModuleType) - before)
        """, env={"LAZYEXEC_SETTLE": "500"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "True 0\n"


def test_hot_module_keeps_pending_units_without_settle_complete(tmp_path):
    # settle_complete = false: pending units stay, reachable by attribute; the
    # module's class completes the namespace when it is read as a whole.
    r = program(tmp_path, HOT_THEN_INSPECT, env={"LAZYEXEC_SETTLE": "500", "LAZYEXEC_SETTLE_COMPLETE": "0"})
    assert r.returncode == 0, r.stderr
    names = "['BASE', 'Shape', 'api', 'helper', 'json', 'unused']"
    assert r.stdout == f"True ['Shape', 'json', 'unused'] True False module\n{names} [] True False\n"


def test_never_mode_stays_trapped(tmp_path):
    r = program(tmp_path, """
        import lazyexec, mod
        for i in range(30000):
            mod.api(i)
        lazyexec.materialize_all(mod)
        print(type(mod.__dict__) is dict)
        """, env={"LAZYEXEC_SETTLE": "never"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "False\n"


def test_threads_hammer_functions_while_the_module_settles(tmp_path):
    mod = MOD + "\n" + "\n".join(f"def f{i}(x):\n    return helper(x) + len([{i}])" for i in range(100))
    r = program(tmp_path, """
        import threading, lazyexec, mod
        stop = threading.Event()
        errors = []
        def hammer(k):
            try:
                while not stop.is_set():
                    for i in range(100):
                        assert getattr(mod, f"f{i}")(k) == k + 10 + 1
            except BaseException as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(16)]
        for t in threads: t.start()
        import time
        time.sleep(0.3)
        lazyexec.settle(mod)
        time.sleep(0.3)
        stop.set()
        for t in threads: t.join(30)
        assert not any(t.is_alive() for t in threads)
        print(errors, type(mod.__dict__) is dict)
        """, env={"LAZYEXEC_SETTLE": "never", "PYTHONDEVMODE": "1"}, mod=mod)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[] True\n"
