"""`lazyexec check -- CMD`: same / different, normalisation, bisection to the
module whose laziness makes the difference (src/lazyexec/cli/check.py,
docs/check.md)."""

from __future__ import annotations

import sys
import textwrap

from lazyexec.cli.check import normalise


def files(root, spec: dict):
    for name, text in spec.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))


def test_normalisation_rule():
    assert normalise("took 0.25s, 12 ms, 3.5 seconds at <object at 0x7f12ab34cd>") == \
        "took <TIME>, <TIME>, <TIME> at <object at 0xADDR>"
    assert normalise("12:03:04.123 started") == "<CLOCK> started"
    assert normalise("3 files, 10 lines") == "3 files, 10 lines"  # counts stay


def test_same_program(tmp_path, run_cli):
    files(tmp_path, {
        "lib.py": """
            __lazy_module__ = True
            import json
            def dump(x):
                return json.dumps(x)
            """,
        "main.py": """
            import time, lib
            print(lib.dump({"a": 1}), object(), time.perf_counter(), "s")
            """,
    })
    r = run_cli("check", "--", "main.py", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "same: exit status 0" in r.stdout


def test_difference_is_traced_to_the_module(tmp_path, run_cli):
    """A deferred import's own top-level output (rule 7's accepted
    difference) makes eager and lazy runs differ: check names the module
    whose laziness causes it, among several lazily loaded ones."""
    spec = {
        "noisy.py": """
            print("noisy imported")
            X = 1
            """,
        "main.py": """
            import a, b, c, d, culprit
            print(a.f() + b.f() + c.f() + d.f())
            """,
        "culprit.py": """
            __lazy_module__ = True
            import noisy
            def f():
                return noisy.X
            """,
    }
    for name in "abcd":
        spec[f"{name}.py"] = """
            __lazy_module__ = True
            import json
            def f():
                return len(json.dumps(1))
            """
    files(tmp_path, spec)
    r = run_cli("check", "--", "main.py", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "DIFFERENT" in out and "-noisy imported" in out
    assert "5 module(s) loaded lazily" in out
    assert "responsible module" in out and "    culprit:" in out
    assert 'exclude = ["culprit"]' in out
    r = run_cli("check", "--no-bisect", "--", sys.executable, "main.py", cwd=tmp_path)
    assert r.returncode == 1 and "responsible" not in r.stdout


def test_exit_status_difference_and_no_lazy_module(tmp_path, run_cli):
    files(tmp_path, {"main.py": "import os, sys\nsys.exit(0 if os.environ.get('LAZYEXEC') == '0' else 4)\n"})
    r = run_cli("check", "--", "main.py", cwd=tmp_path)
    assert r.returncode == 1
    assert "exit status: eager 0, lazy 4" in r.stdout
    assert "no module was loaded lazily" in r.stdout


def test_nondeterministic_output_is_not_blamed_on_laziness(tmp_path, run_cli):
    files(tmp_path, {"main.py": "import os\nprint(os.urandom(8).hex())\n"})
    r = run_cli("check", "--", "main.py", cwd=tmp_path)
    assert r.returncode == 3 and "not comparable" in r.stdout


# A first lazy start that is slow (inline builds of every module it loads:
# `pydoc -k` imports every package on sys.path) is run again before anything
# is blamed; one that times out again is not comparable, not a difference, and
# nothing is bisected. The program stands in for the builds: its first lazy
# run leaves a mark and waits past the timeout.
SLOW_FIRST_LAZY_RUN = """
    import os, sys, time
    lazy = "lazyexec" in sys.modules
    if lazy and (os.environ.get("ALWAYS") or not os.path.exists("built")):
        open("built", "w").close()
        time.sleep(60)
    print("done")
    """


def test_a_lazy_run_that_times_out_is_run_again(tmp_path, run_cli):
    files(tmp_path, {"main.py": SLOW_FIRST_LAZY_RUN})
    r = run_cli("check", "--timeout", "5", "--", "main.py", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "timed out after 5 s; again" in r.stdout and "same: exit status 0" in r.stdout


def test_a_lazy_run_that_times_out_twice_is_not_comparable(tmp_path, run_cli, monkeypatch):
    files(tmp_path, {"main.py": SLOW_FIRST_LAZY_RUN})
    monkeypatch.setenv("ALWAYS", "1")
    r = run_cli("check", "--timeout", "5", "--", "main.py", cwd=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "not comparable: the lazy run timed out twice" in r.stdout and "responsible" not in r.stdout


def test_usage_errors(tmp_path, run_cli):
    assert run_cli("check", cwd=tmp_path).returncode == 2
    r = run_cli("check", "--", "no-such-command-anywhere", cwd=tmp_path)
    assert r.returncode == 2 and "no such command" in r.stderr
    assert run_cli("check", "--help", cwd=tmp_path).returncode == 0
