"""Activation in C++ (issue #10, importer/boot.cpp): with its caches warm the
.pth line activates lazyexec without importing any Python module of
lazyexec's, and the result is the activation the Python layer would have
made: same policy, same usage profile, same errors (it declines and the
Python layer reports them)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import lazyexec
from test_build_policy import builder_nice_recorder, wait_builder_done

PROBE = """
import sys
finders = [getattr(f, "__name__", type(f).__name__) for f in sys.meta_path]
print("python layer:", "lazyexec" in sys.modules)
print("finder before PathFinder:", finders.index("Finder") + 1 == finders.index("PathFinder"))
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A venv that sees the stdlib and lazyexec (linked in), with the .pth file."""
    root = tmp_path_factory.mktemp("boot")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    py = root / "venv" / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    os.symlink(os.path.dirname(lazyexec.__file__), os.path.join(site, "lazyexec"))
    if sys.version_info < (3, 11):
        import tomli

        os.symlink(os.path.dirname(tomli.__file__), os.path.join(site, "tomli"))
    subprocess.run([str(py), "-m", "lazyexec", "pth", "install", "--dir", site], check=True, capture_output=True)
    return py


def run(py: Path, cwd: Path, code: str, *args, **extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"LAZYEXEC": "1", "LAZYEXEC_CACHE_DIR": str(cwd / "cache"), **extra})
    return subprocess.run([str(py), *args, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_warm_start_activates_without_the_python_layer(venv, tmp_path):
    cold = run(venv, tmp_path, PROBE)
    warm = run(venv, tmp_path, PROBE)
    # Even the first start after an install (no cache yet, no configuration
    # file) activates in C++: knowledge.toml's never_lazy list is read
    # without a TOML parser, and its cache written for the next start.
    assert cold.stdout == "python layer: False\nfinder before PathFinder: True\n", cold.stderr
    assert list((tmp_path / "cache").glob("never-lazy-*.marshal"))
    assert warm.stdout == "python layer: False\nfinder before PathFinder: True\n", warm.stderr
    timed = run(venv, tmp_path, "pass", "-X", "importtime")
    assert [line for line in timed.stderr.splitlines() if "lazyexec" in line] == []
    off = run(venv, tmp_path, PROBE, LAZYEXEC="0")
    assert "Finder" not in off.stdout and "python layer: False" in off.stdout


def test_booted_finder_claims_as_the_python_policy(venv, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\nnever = ["json.*", "=email"]\n'
                                             'exclude = ["http*"]\n')
    check = """
import sys, os, sysconfig
import lazyexec.importer as imp
from lazyexec.config import load
booted = imp._active
assert booted is not None and booted in sys.meta_path
policy = imp.Policy(load())
stdlib = sysconfig.get_paths()["stdlib"]
names = [n[:-3] for n in os.listdir(stdlib) if n.endswith(".py")]
names += ["json.decoder", "email", "email.utils", "http.client", "importlib.metadata"]
# The usage profile's modules (on 3.13 -c imports linecache, a small module
# of functions: nothing to defer, learned) are left to PathFinder by the
# finder, not by the policy.
known = imp._boot["known"]
for n in names:
    path = os.path.join(stdlib, *n.split(".")) + ".py"
    assert booted.claims(n, path) == (policy.claims(n, path) and n not in known), n
print(len(names), booted.claims("json.decoder", "x.py"), booted.claims("email", "x.py"), booted.claims("csv", "x.py"))
"""
    run(venv, tmp_path, "pass")  # builds the caches
    # Booted in C++ (on 3.13 `-c` imports linecache, claimed in mode "all":
    # the Python layer loads with it, so ask the boot state, not sys.modules).
    r = run(venv, tmp_path, "import lazyexec._lazyexec as c; print(c.boot_state() is not None)")
    assert r.stdout == "True\n", r.stderr
    r = run(venv, tmp_path, check)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1:] == ["False", "False", "True"]


def test_booted_start_loads_lazily_and_keeps_the_usage_profile(venv, tmp_path):
    (tmp_path / "whole.py").write_text("__lazy_module__ = True\ndef a(): return 1\ndef b(): return 2\n")
    # Its pending class costs more to create than one unit's lazy bookkeeping: lazy again.
    (tmp_path / "partial.py").write_text("__lazy_module__ = True\ndef a(): return 3\n"
                                         "class Unused:\n    def m(self): return 4\n")
    main = ("import sys, whole, partial; print(whole.a(), whole.b(), partial.a(), sorted(m for m in "
            "('whole', 'partial') if type(sys.modules[m].__spec__.loader).__name__ == 'LazySourceLoader'))")
    outs = [run(venv, tmp_path, main, LAZYEXEC_BUILD="inline") for _ in range(4)]
    for r in outs:
        assert r.returncode == 0, r.stderr
    # Run 1 activates in Python (cold caches), the others in C++: both
    # record and honour the same profile (whole used whole: eager next time).
    assert [r.stdout for r in outs] == ["1 2 3 ['partial', 'whole']\n", "1 2 3 ['partial']\n",
                                        "1 2 3 ['partial']\n", "1 2 3 ['partial']\n"]


def test_configuration_errors_are_reported_by_the_python_layer(venv, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\n')
    assert run(venv, tmp_path, "pass").returncode == 0  # caches warm for a valid file
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\nmdoe = "x"\n')
    for _ in range(2):  # the cache now holds the bad table: still reported, every start
        r = run(venv, tmp_path, "import sys; print('lazyexec' in sys.modules)")
        assert r.returncode == 0
        assert "unknown [tool.lazyexec] key(s): mdoe" in r.stderr and r.stderr.count("RuntimeWarning") == 1


def test_damaged_profile_warns_once_through_the_python_layer(venv, tmp_path):
    (tmp_path / "m.py").write_text("__lazy_module__ = True\ndef a(): return 1\n")
    code = "import m; print(m.a())"
    assert run(venv, tmp_path, code, LAZYEXEC_BUILD="inline").stdout == "1\n"
    for p in (tmp_path / "cache" / "profiles").glob("*.profile"):
        p.write_bytes(b"\x00garbage")
    r = run(venv, tmp_path, code)
    assert r.stdout == "1\n" and r.stderr.count("damaged usage profile") == 1, r.stderr


def test_stale_pth_path_is_reported_by_site_and_the_program_runs(tmp_path):
    """A .pth whose extension path no longer exists (lazyexec removed or
    moved without `lazyexec pth install`): site names the .pth file and the
    error, the program runs eagerly."""
    from lazyexec.cli import pth

    line = pth.LINE.format(boot=pth.BOOT.format(so=str(tmp_path / "gone.so")))
    site = tmp_path / "site"
    site.mkdir()
    (site / pth.NAME).write_text(line)
    probe = ("import site, sys; site.addsitedir(sys.argv[1]); "
             "print([type(f).__name__ for f in sys.meta_path].count('Finder'), 6 * 7)")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")}, "LAZYEXEC": "1"}
    # -S: only the .pth above is processed (not the test interpreter's own).
    r = subprocess.run([sys.executable, "-S", "-c", probe, str(site)], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "0 42\n"), r.stderr
    assert str(site / pth.NAME) in r.stderr and "gone.so" in r.stderr, r.stderr


def test_pth_line_runs_the_start_once_though_site_reads_a_venv_s_pth_files_twice(tmp_path):
    """site runs a venv's .pth files twice (venv(), then main()): the line's
    guard is false once the start-up extension is in sys.modules, so the
    second run compiles and runs nothing; without LAZYEXEC=1 nothing runs."""
    from lazyexec.cli import pth

    stand_in = "(sys.modules.__setitem__('lazyexec._lazyexec_boot', sys), print('started'))"
    site = tmp_path / "site"
    site.mkdir()
    (site / pth.NAME).write_text(pth.LINE.format(boot=stand_in))
    probe = "import site, sys; site.addsitedir(sys.argv[1]); site.addsitedir(sys.argv[1]); print('ran')"
    for value, expected in (("1", "started\nran\n"), ("0", "ran\n"), (None, "ran\n")):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")}
        if value is not None:
            env["LAZYEXEC"] = value
        r = subprocess.run([sys.executable, "-S", "-c", probe, str(site)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
        assert (r.stdout, r.stderr) == (expected, ""), value


def test_start_up_extension_alone_when_nothing_loads_lazily(venv, tmp_path):
    """A start that claims no module maps the small start-up extension only
    (activation and the finder); the full one loads with the first claim."""
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\n')
    probe = "import sys; print(sorted(m for m in sys.modules if m.startswith('lazyexec')))\n"
    # Scripts, not -c: 3.13 imports linecache for -c (to show its source in
    # tracebacks), which mode "all" claims.
    (tmp_path / "nothing.py").write_text(probe)
    (tmp_path / "claims.py").write_text("import textwrap\n" + probe)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"LAZYEXEC": "1", "LAZYEXEC_CACHE_DIR": str(tmp_path / "cache")})

    def script(name, **extra):
        return subprocess.run([str(venv), name], cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True,
                              timeout=120)

    script("nothing.py")  # caches
    r = script("nothing.py")
    assert r.stdout == "['lazyexec._lazyexec_boot']\n", r.stderr
    # Modules the build stage itself loaded get their artifacts at the next starts.
    for _ in range(3):
        assert script("claims.py", LAZYEXEC_BUILD="inline").returncode == 0
    r = script("claims.py")
    assert r.stdout == "['lazyexec._lazyexec', 'lazyexec._lazyexec_boot']\n", r.stderr


def test_full_extension_that_cannot_load_warns_once_and_modules_load_eagerly(tmp_path):
    """The start-up extension loads the full one at the first claim; if that
    fails (a damaged install), one warning and every module loads eagerly."""
    root = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    py = root / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    import shutil

    shutil.copytree(os.path.dirname(lazyexec.__file__), site / "lazyexec",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if sys.version_info < (3, 11):
        import tomli

        os.symlink(os.path.dirname(tomli.__file__), site / "tomli")
    subprocess.run([str(py), "-m", "lazyexec", "pth", "install", "--dir", str(site)], check=True, capture_output=True)
    work = tmp_path / "work"
    work.mkdir()
    (work / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\n')
    program = "import textwrap; print(textwrap.dedent('  x'), type(textwrap.__spec__.loader).__name__)"
    assert run(py, work, program, LAZYEXEC_BUILD="inline").returncode == 0  # caches and artifacts
    full = next((site / "lazyexec").glob("_lazyexec.*.so"))
    # Damaged in place, its size and time kept: the artifacts stay current
    # (their key stamps the extension's), so the first claim must load it.
    st = full.stat()
    full.write_bytes(b"not an ELF file".ljust(st.st_size, b"\0"))
    os.utime(full, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = run(py, work, program)
    assert (r.returncode, r.stdout) == (0, "x SourceFileLoader\n"), r.stderr
    assert r.stderr.count("RuntimeWarning") == 1 and "cannot load" in r.stderr, r.stderr


WARM_PROGRAM = """
import sys, json, textwrap, shlex, logging.config
print(json.dumps(json.loads('{"a": [1, 2]}')), textwrap.dedent("  x"), shlex.quote("a b"))
print(sorted(m for m in ("json", "json.decoder", "textwrap", "shlex")
             if type(sys.modules[m].__spec__.loader).__name__ == "LazySourceLoader"))
print(getattr(logging.config.DictConfigurator.configure, "_lazyexec_loggers", False))
print([m for m in sys.modules if m.split(".")[0] == "lazyexec"])
"""


def test_warm_start_loads_lazy_modules_without_the_python_layer(venv, tmp_path):
    """DESIGN "Never slower than eager": finder, loader, artifact reader and
    plan runner in C++; lazyexec's Python layer loads only for a cold module,
    a damaged artifact or a tool that records (LAZYEXEC_WHY, ...)."""
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\n')
    cold = run(venv, tmp_path, WARM_PROGRAM, LAZYEXEC_BUILD="inline", LAZYEXEC_PROFILE="0")
    # Modules the build stage itself had loaded (normally, not claimed: on
    # 3.10 its TOML parser too) get their artifacts at the next starts.
    for _ in range(3):
        run(venv, tmp_path, WARM_PROGRAM, LAZYEXEC_BUILD="inline", LAZYEXEC_PROFILE="0")
    warm = run(venv, tmp_path, WARM_PROGRAM, LAZYEXEC_PROFILE="0")
    eager = run(venv, tmp_path, WARM_PROGRAM, LAZYEXEC="0")
    assert cold.returncode == warm.returncode == eager.returncode == 0, (cold.stderr, warm.stderr)
    expected_first = eager.stdout.splitlines()[0]
    for r in (cold, warm):
        lines = r.stdout.splitlines()
        assert lines[0] == expected_first
        assert lines[1] == "['json', 'json.decoder', 'shlex', 'textwrap']", r.stdout
        assert lines[2] == "True", r.stdout  # logging's patch points (runtime/loggers.py)
    assert "'lazyexec.importer'" in cold.stdout.splitlines()[3]  # the cold start built the artifacts
    # Warm: the two extensions only (the start-up one, the full one at the first claim).
    assert warm.stdout.splitlines()[3] == "['lazyexec._lazyexec_boot', 'lazyexec._lazyexec']", warm.stdout
    timed = run(venv, tmp_path, "import json, textwrap; json.dumps(1)", "-X", "importtime", LAZYEXEC_PROFILE="0")
    assert [line for line in timed.stderr.splitlines() if "lazyexec" in line] == [], timed.stderr


def test_booted_artifact_key_is_the_python_layers(venv, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\nnever = ["json.*"]\npure = ["x.y"]\n')
    check = """
import lazyexec._lazyexec as c
booted = c.boot_state()
from lazyexec import importer, store
from lazyexec.config import load
config = importer.with_installed(load(), importer.installed_index())
print(booted is not None, booted["key"] == store.key_for(store.knowledge_hash(config)))
"""
    run(venv, tmp_path, "pass")  # builds the caches
    r = run(venv, tmp_path, check)
    assert r.stdout == "True True\n", r.stderr


def test_warm_start_learns_the_usage_profile_at_exit(venv, tmp_path):
    """A start activated in C++ that used a module whole records it at exit
    (the comparison in C++; the Python layer loads only to write)."""
    # Unused, its class would cost more to create than the lazy bookkeeping.
    (tmp_path / "whole.py").write_text("__lazy_module__ = True\ndef a(): return 1\ndef b(): return 2\n"
                                       "class K:\n    pass\n")
    probe = ("import os, sys, whole; print(type(whole.__spec__.loader).__name__); "
             "print(whole.a() + whole.b() if os.environ.get('HEAVY') and whole.K else 0)")
    light = run(venv, tmp_path, probe, LAZYEXEC_BUILD="inline")  # cold: Python activation, nothing used
    heavy = [run(venv, tmp_path, probe, HEAVY="1") for _ in range(3)]
    assert light.stdout == "LazySourceLoader\n0\n", light.stderr
    # The first warm run uses `whole` entirely and learns it; the next ones
    # load it eagerly.
    assert [r.stdout for r in heavy] == ["LazySourceLoader\n3\n", "SourceFileLoader\n3\n", "SourceFileLoader\n3\n"], \
        [r.stderr for r in heavy]


def test_inline_builds_get_the_python_loader_when_claimed(venv, tmp_path):
    """Every module of an inline build is handed to the Python layer's loader
    when the finder claims it, before the module exists, so that the build
    stage's own imports (`__future__`, ...) never meet a half-initialised
    module; a module with a current artifact gets the C++ loader."""
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\n')
    prefix = {"PYTHONPYCACHEPREFIX": str(tmp_path / "pyc")}  # no artifact beside a .pyc from other runs
    assert run(venv, tmp_path, "pass", LAZYEXEC_BUILD="off", **prefix).returncode == 0  # caches warm
    program = ("import dataclasses, inspect; print(inspect.getmodule(dataclasses.dataclass).__name__, "
               "type(dataclasses.__spec__.loader).__mro__[1].__name__)")
    first = run(venv, tmp_path, program, LAZYEXEC_BUILD="inline", LAZYEXEC_PROFILE="0", **prefix)
    assert (first.returncode, first.stdout) == (0, "dataclasses LazySourceLoader\n"), first.stderr
    warm = run(venv, tmp_path, program, LAZYEXEC_BUILD="off", LAZYEXEC_PROFILE="0", **prefix)
    assert (warm.returncode, warm.stdout) == (0, "dataclasses SourceFileLoader\n"), warm.stderr


@pytest.mark.parametrize("build", ["background", "off"])
def test_cold_modules_load_as_eagerly_without_the_python_layer(venv, tmp_path, build):
    """A claimed module without an artifact (a first start) loads through
    importlib's own SourceFileLoader, as eagerly, and no Python module of
    lazyexec's is imported for it (importer/cold_start.cpp); with build
    "background" it is queued for the builder at exit, and the next start
    is lazy; with "off" nothing is queued."""
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\n')
    cache = tmp_path / "cache"
    env = {"PYTHONPYCACHEPREFIX": str(tmp_path / "pyc"), "LAZYEXEC_CACHE_DIR": str(cache), "LAZYEXEC_PROFILE": "0"}
    assert run(venv, tmp_path, "pass", LAZYEXEC_BUILD="off", **env).returncode == 0  # parse caches warm
    program = ("import sys, dataclasses; print(type(dataclasses.__spec__.loader).__name__, "
               "sorted(m for m in sys.modules if m.startswith('lazyexec') and not m.startswith('lazyexec._lazyexec')))")
    first = run(venv, tmp_path, program, LAZYEXEC_BUILD=build, **env)
    assert (first.returncode, first.stdout, first.stderr) == (0, "SourceFileLoader []\n", "")
    wait_builder_done(cache)
    second = run(venv, tmp_path, "import dataclasses, sys; print(type(dataclasses.__spec__.loader).__name__)",
                 LAZYEXEC_BUILD="off", **env)
    expected = "LazySourceLoader\n" if build == "background" else "SourceFileLoader\n"
    assert (second.returncode, second.stdout) == (0, expected), second.stderr
    # Under -O the job and its builder are of that level: the next -O start is lazy too.
    program = "import sys, dataclasses; print(type(dataclasses.__spec__.loader).__name__, __debug__)"
    first = run(venv, tmp_path, program, "-O", LAZYEXEC_BUILD=build, **env)
    assert (first.returncode, first.stdout) == (0, "SourceFileLoader False\n"), first.stderr
    wait_builder_done(cache)
    second = run(venv, tmp_path, program, "-O", LAZYEXEC_BUILD="off", **env)
    assert (second.returncode, second.stdout) == (0, expected.replace("\n", " False\n")), second.stderr


def test_a_first_start_never_loads_the_full_extension(venv, tmp_path):
    """A claimed module whose artifact is absent takes the cold path in the
    start-up extension itself (boot.cpp first_claim reads only artifact
    headers): the full extension (the runtime, analyzer and compiler, most of
    the code) is not loaded by a start that has nothing lazy to run. A start
    that mixes both keeps one list of cold modules: those the full extension
    meets after it loaded are queued in the same job, and are lazy next."""
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\n')
    cache = tmp_path / "cache"
    env = {"PYTHONPYCACHEPREFIX": str(tmp_path / "pyc"), "LAZYEXEC_PROFILE": "0"}
    assert run(venv, tmp_path, "pass", LAZYEXEC_BUILD="off", **env).returncode == 0  # parse caches warm
    loaded = "sorted(m for m in sys.modules if m.split('.')[0] == 'lazyexec')"
    first = run(venv, tmp_path, f"import sys, dataclasses; print(type(dataclasses.__spec__.loader).__name__, {loaded})",
                **env)
    assert (first.returncode, first.stdout, first.stderr) == (0, "SourceFileLoader ['lazyexec._lazyexec_boot']\n", "")
    wait_builder_done(cache)
    # dataclasses is lazy now; `fresh` has no artifact yet, and is claimed
    # after the full extension loaded for dataclasses.
    (tmp_path / "fresh.py").write_text("def f():\n    return 1\n")
    program = ("import sys, dataclasses, fresh; print(type(dataclasses.__spec__.loader).__name__, "
               f"type(fresh.__spec__.loader).__name__, fresh.f(), {loaded})")
    mixed = run(venv, tmp_path, program, **env)
    assert (mixed.returncode, mixed.stderr) == (0, ""), mixed.stderr
    assert mixed.stdout == ("LazySourceLoader SourceFileLoader 1 ['lazyexec._lazyexec', 'lazyexec._lazyexec_boot']\n")
    wait_builder_done(cache)
    again = run(venv, tmp_path, program, **env)
    assert again.stdout.startswith("LazySourceLoader LazySourceLoader 1 "), again.stderr


PYPROJECT = """\
[project]
name = "app"
dependencies = ["requests>=2", 'attrs']
authors = [{name = "A. Person", email = "a@example.org"}]

[project.urls]
"Home page" = "https://example.org"

[tool.other]
nested.key = 0x10

[tool.lazyexec]
mode = "all"  # everything
never = [
    "json.*",
]
"""


def test_a_configuration_file_without_a_parse_cache_is_read_in_cpp(venv, tmp_path):
    """The first start after an install or an edit of pyproject.toml reads
    the configuration with the extension's TOML reader (importer/toml.cpp)
    and writes the parse cache the Python layer reads: no tomllib, no Python
    module of lazyexec's. A file that reader leaves to tomllib (a date) is
    parsed by the Python layer as before."""
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    env = {"PYTHONPYCACHEPREFIX": str(tmp_path / "pyc"), "LAZYEXEC_PROFILE": "0"}
    program = ("import sys, dataclasses; print(type(dataclasses.__spec__.loader).__name__, "
               "bool({'tomllib', 'tomli'} & set(sys.modules)), "
               "sorted(m for m in sys.modules if m.split('.')[0] == 'lazyexec'))")
    first = run(venv, tmp_path, program, **env)
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout == "SourceFileLoader False ['lazyexec._lazyexec_boot']\n"
    check = ("try:\n    import tomllib\nexcept ImportError:\n    import tomli as tomllib\n"
             "from lazyexec import config; p = 'pyproject.toml'; "
             "print(config._toml_load(p) == tomllib.load(open(p, 'rb')), config.load().never)")
    r = run(venv, tmp_path, check, LAZYEXEC="0", **env)
    assert r.stdout == "True ('json.*',)\n", r.stderr
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.replace('[tool.other]', '[tool.other]\nreleased = 2026-12-01'))
    dated = run(venv, tmp_path, program, **env)
    assert (dated.returncode, dated.stderr) == (0, ""), dated.stderr
    assert dated.stdout.split()[1] == "True", dated.stdout  # tomllib read it


def test_a_first_start_with_a_configuration_file_is_handed_back_to_cpp(venv, tmp_path):
    """No parse cache at all (a first start after an install) and a
    configuration file: the Python layer parses it (tomllib) and writes its
    cache, then the C++ activation takes the start, so that modules without
    an artifact take the C++ cold path (no Python loader per module); the
    next start is lazy and activates without the Python layer."""
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\n')
    env = {"PYTHONPYCACHEPREFIX": str(tmp_path / "pyc"), "LAZYEXEC_PROFILE": "0"}
    program = ("import sys, dataclasses; from lazyexec import importer; "
               "print(type(dataclasses.__spec__.loader).__name__, importer._boot is not None, "
               "sum(type(f).__name__ == 'Finder' for f in sys.meta_path))")
    first = run(venv, tmp_path, program, **env)
    assert (first.returncode, first.stdout, first.stderr) == (0, "SourceFileLoader True 1\n", "")
    wait_builder_done(tmp_path / "cache")
    second = run(venv, tmp_path, "import sys, dataclasses; print(type(dataclasses.__spec__.loader).__name__, "
                 "'lazyexec.importer' in sys.modules)", **env)
    assert (second.returncode, second.stdout) == (0, "LazySourceLoader False\n"), second.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "sometimes"\n')
    r = run(venv, bad, "import dataclasses; print(type(dataclasses.__spec__.loader).__name__)", **env)
    assert (r.returncode, r.stdout) == (0, "SourceFileLoader\n") and r.stderr.count("lazy loading is off") == 1, r.stderr


def test_unwritable_queue_warns_once_and_the_program_ends_as_eagerly(venv, tmp_path):
    """The cold path's job cannot be written (the queue is a file, which
    stops root too): one warning at exit, the same output and exit status,
    no builder, and the modules keep loading eagerly."""
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\n')
    env = {"PYTHONPYCACHEPREFIX": str(tmp_path / "pyc"), "LAZYEXEC_PROFILE": "0"}
    assert run(venv, tmp_path, "pass", LAZYEXEC_BUILD="off", **env).returncode == 0  # parse caches warm
    (tmp_path / "cache" / "queue").write_text("not a directory")
    program = "import dataclasses, sys; print(type(dataclasses.__spec__.loader).__name__); sys.exit(3)"
    r = run(venv, tmp_path, program, **env)
    assert (r.returncode, r.stdout) == (3, "SourceFileLoader\n"), r.stderr
    assert r.stderr.count("RuntimeWarning") == 1 and "is not writable" in r.stderr, r.stderr
    assert not list((tmp_path / "cache").glob("*.lzx"))


def test_damaged_artifact_under_the_booted_loader_warns_once_and_loads_eagerly(venv, tmp_path):
    (tmp_path / "mod.py").write_text("__lazy_module__ = True\ndef f(): return 42\nX = [1, 2]\n")
    program = "import mod, sys; print(mod.f(), mod.X, type(mod.__spec__.loader).__name__)"
    for _ in range(2):  # caches and the artifact
        assert run(venv, tmp_path, program, LAZYEXEC_BUILD="inline", LAZYEXEC_PROFILE="0").returncode == 0
    artifacts = list((tmp_path / "__pycache__").glob("mod.*.lzx"))
    assert len(artifacts) == 1
    artifacts[0].write_bytes(artifacts[0].read_bytes()[:60])  # truncated
    r = run(venv, tmp_path, program, LAZYEXEC_BUILD="off", LAZYEXEC_PROFILE="0")
    assert (r.returncode, r.stdout) == (0, "42 [1, 2] LazySourceLoader\n"), r.stderr
    assert r.stderr.count("ignoring corrupt artifact") == 1, r.stderr


def test_logging_loaded_before_the_runtime_is_patched_when_it_loads(venv, tmp_path):
    """logging imported before any module is claimed (mode "marked": the
    stdlib is not lazy) does not load the full extension; when a lazy
    module is claimed later, logging gets its patch points then, so
    dictConfig still sees that module's deferred getLogger (DESIGN rule 2)."""
    # (Its unused class keeps it lazy in the usage profile.)
    (tmp_path / "mod.py").write_text("__lazy_module__ = True\nimport logging\nlog = logging.getLogger('mod.x')\n"
                                     "def f(): return 1\nclass Unused:\n    pass\n")
    program = """
import sys, logging, logging.config
before = sorted(m for m in sys.modules if m.startswith("lazyexec"))
import mod
logging.config.dictConfig({"version": 1, "disable_existing_loggers": True})
print(before, getattr(logging.config.DictConfigurator.configure, "_lazyexec_loggers", False), mod.log.disabled)
"""
    for _ in range(2):  # caches and the artifact
        assert run(venv, tmp_path, program, LAZYEXEC_BUILD="inline").returncode == 0
    r = run(venv, tmp_path, program)
    eager = run(venv, tmp_path, program, LAZYEXEC="0")
    assert (r.returncode, r.stdout) == (0, "['lazyexec._lazyexec_boot'] True True\n"), r.stderr
    assert eager.stdout.split("] ", 1)[1] == "False True\n"



def test_inspect_loaded_after_a_lazy_module_imports_only_its_patch(venv, tmp_path):
    """inspect loaded on a warm start after a lazy module gets its patch
    point (getmodule finds what deferred imports would have loaded) from
    lazyexec.inspect_patch alone: the runtime's Python layer
    (lazyexec.runtime, its module_class and eager_modules) stays unloaded
    until a getmodule miss needs the import closure."""
    (tmp_path / "mod.py").write_text("__lazy_module__ = True\nimport json\ndef f(): return 1\nclass Unused:\n    pass\n")
    program = """
import sys, mod, inspect
print(sorted(m for m in sys.modules if m.startswith("lazyexec")), inspect.getmodule.__name__,
      getattr(inspect.getmodule, "_lazyexec_eager_modules", False), inspect.getmodule(mod.f) is mod)
"""
    for _ in range(2):  # caches and the artifact
        assert run(venv, tmp_path, program, LAZYEXEC_BUILD="inline").returncode == 0
    r = run(venv, tmp_path, program)
    assert (r.returncode, r.stdout) == (
        0, "['lazyexec', 'lazyexec._lazyexec', 'lazyexec._lazyexec_boot', 'lazyexec.inspect_patch'] getmodule True True\n"
    ), r.stderr

IMAGE_APP = {
    "shop/__init__.py": "__lazy_module__ = True\nimport json\nVERSION = '1.0'\n\ndef version():\n    return VERSION\n",
    "shop/cart.py": ("__lazy_module__ = True\nimport decimal\n\nclass Cart:\n    def __init__(self):\n"
                     "        self.items = []\n    def add(self, price):\n        self.items.append(decimal.Decimal(price))\n"
                     "        return self\n    def total(self):\n        return sum(self.items)\n"),
}
IMAGE_PROBE = """
import sys, shop, shop.cart
print(type(shop.__loader__).__name__, shop.cart.Cart().add('1.5').total(), shop.version())
print(sorted(m for m in sys.modules if m.startswith('lazyexec') and m.count('.') and not m.endswith('_lazyexec')
             and not m.endswith('_lazyexec_boot')))
"""


def build_image_app(venv: Path, tmp_path: Path) -> Path:
    """IMAGE_APP written to tmp_path and its package built into an image."""
    for name, text in IMAGE_APP.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    image = tmp_path / "app.lzi"
    built = subprocess.run([str(venv), "-m", "lazyexec", "image", "build", "-q", "-o", str(image), "shop"],
                           cwd=tmp_path, capture_output=True, text=True,
                           env={**{k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")},
                                "LAZYEXEC_CACHE_DIR": str(tmp_path / "cache")})
    assert built.returncode == 0, built.stderr
    return image


def test_an_image_given_by_the_environment_is_served_from_the_cpp_start(venv, tmp_path):
    """LAZYEXEC_IMAGE with the .pth start: the image's finder is installed
    in C++ (no decline, no Python module of lazyexec's); the program prints
    what it prints eagerly. A damaged image: the Python layer says why, and
    modules import normally."""
    image = build_image_app(venv, tmp_path)
    eager = run(venv, tmp_path, IMAGE_PROBE, LAZYEXEC="0")
    run(venv, tmp_path, "pass", LAZYEXEC_IMAGE=str(image))  # caches warm
    served = run(venv, tmp_path, IMAGE_PROBE, LAZYEXEC_IMAGE=str(image), LAZYEXEC_BOOT_TRACE="1",
                 LAZYEXEC_PROFILE="0")
    assert served.stderr == ""  # not declined
    assert served.stdout.splitlines() == ["ImageLoader 1.5 1.0", "[]"]
    assert eager.stdout.splitlines() == ["SourceFileLoader 1.5 1.0", "[]"], eager.stderr
    damaged = tmp_path / "damaged.lzi"
    damaged.write_bytes(image.read_bytes()[:100])
    r = run(venv, tmp_path, IMAGE_PROBE, LAZYEXEC_IMAGE=str(damaged), LAZYEXEC_PROFILE="0")
    assert r.returncode == 0 and r.stdout.splitlines()[0] != "ImageLoader 1.5 1.0", r.stderr
    assert r.stdout.splitlines()[0].endswith("1.5 1.0")
    assert r.stderr.count("lazyexec: ignoring image") == 1 and str(damaged) in r.stderr and "Traceback" not in r.stderr


def test_an_image_served_from_the_cpp_start_teaches_the_usage_profile(venv, tmp_path):
    """With LAZYEXEC_IMAGE and the .pth start, modules come from the image's
    finder, not lazyexec's loader; the usage profile still learns what the
    run used whole (it was written only once a module went through lazyexec's
    loader, so a run served wholly from an image never learned anything)."""
    import marshal

    image = build_image_app(venv, tmp_path)
    run(venv, tmp_path, "pass", LAZYEXEC_IMAGE=str(image), LAZYEXEC_PROFILE="0")  # caches warm
    served = run(venv, tmp_path, IMAGE_PROBE, LAZYEXEC_IMAGE=str(image))
    assert served.stdout.splitlines() == ["ImageLoader 1.5 1.0", "[]"], served.stderr
    profiles = list((tmp_path / "cache" / "profiles").glob("*.profile"))
    assert len(profiles) == 1, served.stderr
    learned = marshal.loads(profiles[0].read_bytes())["eager"]
    assert "shop.cart" in learned  # every name of it used
    again = run(venv, tmp_path, IMAGE_PROBE, LAZYEXEC_IMAGE=str(image))
    assert again.stdout == served.stdout, again.stderr


def test_marker_verdicts_are_read_once_per_source_in_mode_marked(venv, tmp_path):
    """Mode "marked" (the default): whether a module opts in is read from
    its source once and remembered beside the program's usage profile,
    stamped with the file's mtime and size; later starts stat the file
    instead of reading it (issue 10: every import read its source at every
    start). What loads lazily is the same on every start."""
    (tmp_path / "opted.py").write_text("__lazy_module__ = True\ndef a(): return 1\nclass K:\n    pass\n")
    (tmp_path / "plain.py").write_text("def b(): return 2\n# padding so the marked copy fits in the same size\n")
    main = ("import sys, opted, plain; print(opted.a(), plain.b(), sorted(m for m in ('opted', 'plain') "
            "if type(sys.modules[m].__spec__.loader).__name__ == 'LazySourceLoader'))")
    outs = [run(venv, tmp_path, main, LAZYEXEC_BUILD="inline") for _ in range(3)]
    assert [r.stdout for r in outs] == ["1 2 ['opted']\n"] * 3, [r.stderr for r in outs]
    [marks] = (tmp_path / "cache" / "profiles").glob("*.marks")
    written = marks.stat().st_mtime_ns
    # A start that learns nothing new does not write them again.
    assert run(venv, tmp_path, main).stdout == "1 2 ['opted']\n"
    assert marks.stat().st_mtime_ns == written
    # The remembered verdict answers while the file's stamp is the same...
    plain = tmp_path / "plain.py"
    st = plain.stat()
    plain.write_text("__lazy_module__ = True\ndef b(): return 2\n".ljust(st.st_size - 1) + "\n")
    os.utime(plain, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert run(venv, tmp_path, main).stdout == "1 2 ['opted']\n"
    # ...and a changed file is read again (claimed; built inline, so that it
    # loads lazily now: a claimed module without an artifact loads eagerly).
    os.utime(plain, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert run(venv, tmp_path, main, LAZYEXEC_BUILD="inline").stdout == "1 2 ['opted', 'plain']\n"
    # With the usage profile off nothing is remembered.
    off = tmp_path / "off"
    off.mkdir()
    (off / "opted.py").write_text((tmp_path / "opted.py").read_text())
    (off / "plain.py").write_text("def b(): return 2\n")
    r = run(venv, off, main, LAZYEXEC_PROFILE="0", LAZYEXEC_BUILD="inline")  # claimed: lazy at once
    assert r.stdout == "1 2 ['opted']\n", r.stderr
    assert list((off / "cache").rglob("*.marks")) == []


def test_a_missing_top_level_module_is_remembered_by_the_usage_profile(venv, tmp_path):
    """A top-level module PathFinder did not find is kept in the usage
    profile: the next start leaves it to PathFinder at once instead of
    searching sys.path for it twice (the finder, then PathFinder). Made
    since, it imports (eagerly, as any module the profile names)."""
    (tmp_path / "used.py").write_text("__lazy_module__ = True\ndef a(): return 1\nclass K:\n    pass\n")
    main = ("import used\ntry:\n    import probe_not_there\nexcept ImportError as e:\n    print('missing', e.name)\n"
            "else:\n    print('found', type(probe_not_there.__spec__.loader).__name__)\nprint(used.a())")
    outs = [run(venv, tmp_path, main, LAZYEXEC_BUILD="inline") for _ in range(3)]
    assert [r.stdout for r in outs] == ["missing probe_not_there\n1\n"] * 3, [r.stderr for r in outs]
    import marshal

    [profile] = (tmp_path / "cache" / "profiles").glob("*.profile")
    assert "probe_not_there" in marshal.loads(profile.read_bytes())["eager"]
    (tmp_path / "probe_not_there.py").write_text("__lazy_module__ = True\nX = 1\n")
    r = run(venv, tmp_path, main)
    assert r.stdout == "found SourceFileLoader\n1\n", r.stderr


def test_a_package_binding_its_own_submodule_loads_no_python_module_of_lazyexec(venv, tmp_path):
    """A package whose pending `from .main import main` binds the name of
    its own submodule (unittest's) gets the "binders" class from the C++
    runtime: a warm start importing it, and then the submodule, loads no
    Python module of lazyexec's (runtime/module_class.py and the packages
    above it were imported from disk for it), and the package keeps the
    function, as eagerly."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("__lazy_module__ = True\nfrom .main import main\n"
                                                  "def unused(): return 0\n")
    (tmp_path / "pkg" / "main.py").write_text("def main():\n    return 'the function'\n")
    program = ("import sys, pkg, pkg.main\n"
               "print(sorted(m for m in sys.modules if m.startswith('lazyexec')), pkg.main(), "
               "type(pkg).__name__)\n")
    for _ in range(2):  # caches and the artifact
        assert run(venv, tmp_path, program, LAZYEXEC_BUILD="inline", LAZYEXEC_PROFILE="0").returncode == 0
    r = run(venv, tmp_path, program, LAZYEXEC_PROFILE="0")
    eager = run(venv, tmp_path, program, LAZYEXEC="0")
    loaded = "['lazyexec._lazyexec', 'lazyexec._lazyexec_boot']"
    assert (r.returncode, r.stdout) == (0, f"{loaded} the function module\n"), r.stderr
    assert eager.stdout.split("] ", 1)[1] == "the function module\n"


def test_builder_started_from_cpp_runs_at_low_priority_from_its_start(venv, tmp_path):
    """As test_build_policy's test for the Python layer: the builder that
    importer/cold_start.cpp starts at exit already runs at its nice value
    during its own interpreter start (recorded by a sitecustomize in it)."""
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\n')
    hook, record = builder_nice_recorder(tmp_path)
    cache = tmp_path / "cache"
    env = {"PYTHONPYCACHEPREFIX": str(tmp_path / "pyc"), "LAZYEXEC_CACHE_DIR": str(cache), "LAZYEXEC_PROFILE": "0"}
    assert run(venv, tmp_path, "pass", LAZYEXEC_BUILD="off", **env).returncode == 0  # parse caches warm
    own = os.getpriority(os.PRIO_PROCESS, 0)
    first = run(venv, tmp_path, "import dataclasses, sys; print('lazyexec.importer' in sys.modules)",
                PYTHONPATH=str(hook), NICE_RECORD=str(record), **env)
    assert (first.returncode, first.stdout, first.stderr) == (0, "False\n", "")
    wait_builder_done(cache)
    assert record.read_text().split() == [str(min(own + 10, 19))]


def test_a_builder_that_cannot_start_costs_one_line_and_keeps_the_job(venv, tmp_path):
    """The builder is spawned from a thread of its own at exit (its exec
    overlaps the program's finalization). When the spawn fails (here: the
    program's environment is too large for execve), the program's output
    and exit status are untouched, stderr gets one line, and the queued job
    waits for the next start's builder, which builds it."""
    (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\n')
    cache = tmp_path / "cache"
    env = {"PYTHONPYCACHEPREFIX": str(tmp_path / "pyc"), "LAZYEXEC_CACHE_DIR": str(cache), "LAZYEXEC_PROFILE": "0"}
    assert run(venv, tmp_path, "pass", LAZYEXEC_BUILD="off", **env).returncode == 0  # parse caches warm
    failed = run(venv, tmp_path, "import os, dataclasses; os.environ['BIG'] = 'x' * 300_000; print('done')", **env)
    assert (failed.returncode, failed.stdout) == (0, "done\n")
    assert failed.stderr.startswith("lazyexec: cannot start the artifact builder ("), failed.stderr
    assert failed.stderr.count("\n") == 1, failed.stderr
    assert list((cache / "queue").glob("*.job")), "the job is kept for the next builder"
    probe = "import dataclasses; print(type(dataclasses.__spec__.loader).__name__)"
    cold = run(venv, tmp_path, probe, **env)  # starts a builder, which takes both jobs
    assert (cold.returncode, cold.stdout, cold.stderr) == (0, "SourceFileLoader\n", "")
    wait_builder_done(cache)
    lazy = run(venv, tmp_path, probe, **env)
    assert (lazy.returncode, lazy.stdout) == (0, "LazySourceLoader\n"), lazy.stderr


def test_a_program_run_on_another_file_starts_with_the_profile_it_learned(venv, tmp_path):
    """A file or other value given as the first argument is not part of the
    program's usage shape (`black a.py`, `black b.py`): the profile learned on
    one file serves the next. A word (a subcommand) still is: `prog sub` has
    its own. Both activations (C++ here, Python in test_usage_profile) agree."""
    (tmp_path / "whole.py").write_text("__lazy_module__ = True\ndef a(): return 1\ndef b(): return 2\n"
                                       "class K:\n    pass\n")
    (tmp_path / "prog.py").write_text("import sys, whole\nprint(whole.a() + whole.b() if whole.K else 0, "
                                      "type(whole.__spec__.loader).__name__, 'lazyexec' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(LAZYEXEC="1", LAZYEXEC_CACHE_DIR=str(tmp_path / "cache"), LAZYEXEC_BUILD="inline")

    def prog(*args):
        r = subprocess.run([str(venv), "prog.py", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout

    # Cold: the Python layer activates, builds, and learns `whole` used whole.
    assert prog("one.txt") == "3 LazySourceLoader True\n"
    # Warm, in C++: the same profile for the same file and for another.
    assert prog("one.txt") == "3 SourceFileLoader False\n"
    assert prog("dir/two.py") == "3 SourceFileLoader False\n"
    # A subcommand is a shape of its own (lazy again; with inline builds a
    # claimed module brings the Python layer), read back in C++ next time.
    assert prog("sub").startswith("3 LazySourceLoader ")
    assert prog("sub") == "3 SourceFileLoader False\n"
