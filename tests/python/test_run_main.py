"""`lazyexec run` gives the program the interpreter's own `__main__`
(src/lazyexec/cli/run.py): each program runs as `python ...` and as
`lazyexec run ...` (both `python -m lazyexec run` and the `lazyexec` console
script) and must print, exit and fail the same."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

LAZYEXEC_SCRIPT = Path(sys.executable).with_name("lazyexec")

OBSERVE = textwrap.dedent("""
    import builtins, sys, atexit
    import __main__
    g = dict(globals())
    print("keys", [k for k in g if k.startswith("__")])
    print("main", __name__, __main__ is sys.modules["__main__"], g.get("__package__"), repr(g.get("__spec__") and __spec__.name))
    print("file", g.get("__file__"), g.get("__cached__"), __builtins__ is builtins, __doc__)
    print("loader", type(__loader__).__name__, getattr(__loader__, "name", None), getattr(__loader__, "path", None))
    print("argv", sys.argv)
    print("path0", sys.path[0])
    atexit.register(lambda: print("at exit", hasattr(__main__, "__file__"), "__cached__" in vars(__main__)))
""")


def _env():
    e = dict(os.environ)
    e.pop("LAZYEXEC_CONFIG", None)
    e.pop("LAZYEXEC", None)
    return e


def run(args, cwd, env=None):
    e = _env()
    e.update(env or {})
    return subprocess.run(args, cwd=cwd, env=e, capture_output=True, text=True, timeout=120)


def both(tmp_path, target_args, env=None, console=True):
    """(eager, [lazy runs]) for `python TARGET...` and `lazyexec run TARGET...`."""
    eager = run([sys.executable, *target_args], tmp_path, env)
    lazy = [run([sys.executable, "-m", "lazyexec", "run", *target_args], tmp_path, env)]
    if console and LAZYEXEC_SCRIPT.exists():
        lazy.append(run([str(LAZYEXEC_SCRIPT), "run", *target_args], tmp_path, env))
    return eager, lazy


def same(eager, lazy_runs):
    for lazy in lazy_runs:
        assert (lazy.returncode, lazy.stdout, lazy.stderr) == (eager.returncode, eager.stdout, eager.stderr), \
            f"--- eager ({eager.returncode})\n{eager.stdout}{eager.stderr}\n--- lazy ({lazy.returncode})\n{lazy.stdout}{lazy.stderr}"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.mark.parametrize("given", ["prog.py", "./sub/../prog.py", "ABS"])
def test_script_main_argv_and_path(tmp_path, given):
    write(tmp_path / "prog.py", '"""the doc"""\n' + OBSERVE)
    (tmp_path / "sub").mkdir()
    target = str(tmp_path / "prog.py") if given == "ABS" else given
    same(*both(tmp_path, [target, "a", "--flag"]))


@pytest.mark.parametrize("target", [["prog.py", "a"], ["-m", "prog", "a"]], ids=["script", "module"])
def test_python_layer_runs_the_same_program(tmp_path, target):
    """With LAZYEXEC=0 the start-up extension declines and cli/run.py runs
    the program: the same `__main__`, argv and path as the C++ runner's."""
    write(tmp_path / "prog.py", '"""the doc"""\n' + OBSERVE)
    same(*both(tmp_path, target))
    same(*both(tmp_path, target, env={"LAZYEXEC": "0"}))


def test_symlinked_script_puts_its_real_directory_first(tmp_path):
    write(tmp_path / "real" / "prog.py", OBSERVE)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "prog").symlink_to(tmp_path / "real" / "prog.py")
    same(*both(tmp_path, ["bin/prog", "x"]))


def test_dash_m_package_main(tmp_path):
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "__main__.py", OBSERVE)
    write(tmp_path / "mod.py", OBSERVE)
    same(*both(tmp_path, ["-m", "pkg", "1", "2"]))
    same(*both(tmp_path, ["-m", "mod"]))


def test_directory_with_main(tmp_path):
    write(tmp_path / "app" / "__main__.py", OBSERVE)
    same(*both(tmp_path, ["app", "z"]))


def test_console_script_program_name(tmp_path):
    """click names the program from `__main__.__package__` (None for a
    script): `black --version` must not become `python -m black`."""
    bindir = tmp_path / "bin"
    write(bindir / "mytool", f"""
        #!{sys.executable}
        import os, sys, __main__
        name = os.path.basename(sys.argv[0]) if __main__.__package__ is None else "python -m " + __main__.__package__
        print(name, sys.argv[1:])
        sys.exit(0)
        """)
    (bindir / "mytool").chmod(0o755)
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    direct = run([str(bindir / "mytool"), "--version"], tmp_path, env)
    lazy = run([sys.executable, "-m", "lazyexec", "run", "mytool", "--version"], tmp_path, env)
    assert direct.stdout == "mytool ['--version']\n"
    same(direct, [lazy])


@pytest.mark.parametrize("code", ["sys.exit(0)", "sys.exit(3)", "sys.exit('bye')", "sys.exit(None)",
                                  "raise SystemExit(7)", "pass"])
def test_exit_status(tmp_path, code):
    write(tmp_path / "prog.py", f"import sys\nprint('out')\n{code}\n")
    same(*both(tmp_path, ["prog.py"]))
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "__main__.py", f"import sys\nprint('out')\n{code}\n")
    same(*both(tmp_path, ["-m", "pkg"], console=False))


UNCAUGHT = """
    import helper
    def main():
        helper.fail()
    try:
        {}["k"]
    except KeyError:
        main()
"""


def test_uncaught_exception_traceback_has_no_lazyexec_frames(tmp_path):
    write(tmp_path / "helper.py", "def fail():\n    raise ValueError('boom')\n")
    write(tmp_path / "prog.py", UNCAUGHT)
    eager, lazy = both(tmp_path, ["prog.py"])
    assert eager.returncode == 1 and "ValueError: boom" in eager.stderr and "KeyError" in eager.stderr
    same(eager, lazy)
    assert "lazyexec" not in lazy[0].stderr
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "__main__.py", UNCAUGHT)
    same(*both(tmp_path, ["-m", "pkg"]))


def test_excepthook_set_by_the_program_sees_the_program_traceback(tmp_path):
    write(tmp_path / "prog.py", """
        import sys, traceback
        def hook(t, v, tb):
            print("hook", t.__name__, [f.name for f in traceback.extract_tb(tb)])
        sys.excepthook = hook
        def f():
            raise RuntimeError("x")
        f()
        """)
    same(*both(tmp_path, ["prog.py"]))


def test_syntax_error_in_script(tmp_path):
    write(tmp_path / "prog.py", "x = 1\ndef (:\n")
    same(*both(tmp_path, ["prog.py"]))


def test_keyboard_interrupt_exits_by_sigint(tmp_path):
    write(tmp_path / "prog.py", "import atexit\natexit.register(print, 'at exit')\nraise KeyboardInterrupt\n")
    eager, lazy = both(tmp_path, ["prog.py"])
    assert eager.returncode == -signal.SIGINT
    same(eager, lazy)


def test_run_imports_nothing_the_program_would_not(tmp_path):
    """`lazyexec run` is a start-up path (DESIGN "Never slower than eager"):
    beyond its own entry modules it loads no module the program itself would
    not (each would be eager, loaded before activation: `re` from a
    console-script wrapper, `shutil` for a command on PATH, `__future__`,
    `types`, `importlib.machinery`), and it activates in C++: neither the
    full extension nor the Python importer loads when nothing loads lazily."""
    assert LAZYEXEC_SCRIPT.exists(), "make setup installs the lazyexec command beside the interpreter"
    probe = "import sys\nprint(sorted(sys.modules))\n"
    write(tmp_path / "probe.py", probe)
    bindir = tmp_path / "bin"
    write(bindir / "probe-tool", f"#!{sys.executable}\n" + probe)
    (bindir / "probe-tool").chmod(0o755)
    env = {"LAZYEXEC_CACHE_DIR": str(tmp_path / "cache"), "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    # The command runs a script or command in C++ (src/native/cli/run.cpp):
    # of lazyexec's Python, only the package itself loads.
    own = {"lazyexec", "lazyexec._lazyexec_boot"}
    for target in (["probe.py"], ["probe-tool"], ["-m", "probe"]):
        eager = run([sys.executable, *(target if target[0] == "-m" else [str(tmp_path / "probe.py")])], tmp_path, env)
        run([str(LAZYEXEC_SCRIPT), "run", *target], tmp_path, env)  # the first start writes lazyexec's caches
        lazy = run([str(LAZYEXEC_SCRIPT), "run", *target], tmp_path, env)
        assert eager.returncode == 0 and lazy.returncode == 0, lazy.stderr
        extra = set(eval(lazy.stdout)) - set(eval(eager.stdout))
        assert extra <= own, sorted(extra - own)
        assert "lazyexec._lazyexec_boot" in extra  # activated in C++, the Python importer not loaded


def test_run_names_the_program_as_the_python_layer(tmp_path):
    """Activated in C++, `lazyexec run SCRIPT ARGS` reads and writes the usage
    profile the Python layer's activation names for it (the script's
    absolute path and the shape of its arguments)."""
    write(tmp_path / "probe.py", """
        import sys
        boot = sys.modules["lazyexec._lazyexec_boot"].boot_state()
        from lazyexec import config
        from lazyexec.importer import profile
        profile.load(config.load(), program=profile.os.path.abspath(sys.argv[0]) + profile.usage(sys.argv[1:]))
        print(boot is not None and boot["profile"] == profile._path)
        """)
    env = {"LAZYEXEC_CACHE_DIR": str(tmp_path / "cache")}
    run([sys.executable, "-m", "lazyexec", "run", "probe.py", "sub", "--opt=1", "x"], tmp_path, env)  # caches
    for cmd in ([sys.executable, "-m", "lazyexec", "run"], [str(LAZYEXEC_SCRIPT), "run"]):
        r = run([*cmd, "probe.py", "sub", "--opt=1", "x"], tmp_path, env)
        assert r.stdout == "True\n", r.stderr


@pytest.mark.parametrize("source", [b'# -*- coding: latin-1 -*-\nprint("caf\xe9", len("caf\xe9"))\n',
                                    b'\xef\xbb\xbfprint("after a BOM", "\xc3\xa9")\n',
                                    b'print(1)\nprint(2 +)\n',
                                    b'print(1)\n\0\nprint(2)\n'],
                         ids=["coding-cookie", "bom", "syntax-error", "nul-byte"])
def test_script_source_decoded_as_the_interpreter_decodes_it(tmp_path, source):
    """The script is parsed and run as the interpreter does it (run.cpp:
    PyRun_FileExFlags; the Python layer: compile_main, not builtins.compile()):
    its coding cookie, BOM, syntax errors and NUL bytes read the same (3.11's
    tokenizer stops at a NUL byte, 3.12's reports it)."""
    (tmp_path / "enc.py").write_bytes(source)
    eager, lazy = both(tmp_path, ["enc.py"])
    same(eager, lazy)
