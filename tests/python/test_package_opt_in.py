"""Package-level opt-in (docs/package-opt-in.md): a distribution declares
itself lazy-safe in its entry points; `lazyexec compile --installed` indexes
the environment; the finder loads its modules lazily in mode "marked" with no
marker; never-lazy entries and lazyexec's never-lazy set win; a changed
site-packages directory makes the index stale.

The unit tests build fake installed distributions (a .dist-info directory and
module files) in a temporary directory; the end-to-end tests build the
example distribution (examples/lazydist, setuptools) into wheels once per
session and install them into throw-away venvs with pip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lazyexec import _lazyexec
from lazyexec.config import Config
from lazyexec.importer import _finder, distributions, installed_index

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "lazydist"


# --- fake installed distributions -----------------------------------------

def make_dist(site: Path, name: str, files: dict[str, str], entry_points: str | None, version: str = "1.0") -> None:
    """Install `files` (relative path -> source) into `site` as distribution
    `name`, with RECORD listing them and `entry_points` as entry_points.txt."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    for rel, text in files.items():
        p = site / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    record = [f"{rel},," for rel in files] + [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,",
                                              f"../../bin/{name}-tool,,"]
    if entry_points is not None:
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        record.append(f"{info.name}/entry_points.txt,,")
    (info / "RECORD").write_text("\n".join(record) + "\n")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAZYEXEC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def decl_of(site: Path, name: str):
    index, decls = distributions.build_index([str(site)])
    return {d.name: d for d in decls}[name]


PKG = {"pkg/__init__.py": "", "pkg/core.py": "", "pkg/sub/__init__.py": "", "pkg/sub/x.py": "", "pkg/reg.py": "",
       "pkgtool.py": ""}


def test_whole_distribution_opts_in_every_module_it_installs(tmp_path, cache):
    make_dist(tmp_path, "pkg", PKG, "[lazyexec]\nall-modules = lazy\n")
    d = decl_of(tmp_path, "pkg")
    assert d.lazy == ["pkg", "pkg.core", "pkg.reg", "pkg.sub", "pkg.sub.x", "pkgtool"]
    assert d.never == [] and d.problems == []


def test_named_package_covers_its_submodules_and_a_module_itself(tmp_path, cache):
    make_dist(tmp_path, "pkg", PKG, "[lazyexec]\npkg.sub = lazy\npkgtool = lazy\n")
    assert decl_of(tmp_path, "pkg").lazy == ["pkg.sub", "pkg.sub.x", "pkgtool"]


def test_never_entry_wins_over_lazy_and_reaches_the_finder(tmp_path, cache):
    # "*": the whole distribution too (setuptools warns about the name, but accepts it)
    make_dist(tmp_path, "pkg", PKG, "[lazyexec]\n* = lazy\npkg.sub = never\npkg.reg = never\n")
    d = decl_of(tmp_path, "pkg")
    assert d.lazy == ["pkg", "pkg.core", "pkgtool"]
    assert d.never == ["pkg.sub", "pkg.reg"]
    index, _ = distributions.build_index([str(tmp_path)])
    assert index[3] == ("pkg.reg", "pkg.sub")


def test_bad_entries_are_ignored_with_a_reason(tmp_path, cache):
    make_dist(tmp_path, "pkg", PKG, "[lazyexec]\npkg.core = maybe\nother.mod = never\nnot a name = lazy\n"
                                    "pkg.missing = lazy\npkg = lazy\n")
    d = decl_of(tmp_path, "pkg")
    assert d.lazy == ["pkg", "pkg.core", "pkg.reg", "pkg.sub", "pkg.sub.x"]
    assert d.never == []  # a distribution cannot turn another one's laziness off
    text = "\n".join(d.problems)
    assert "'pkg.core' = 'maybe': the value must be one of 'lazy', 'never'" in text
    assert "'other.mod': the distribution installs no such module" in text
    assert "'not a name': not a module name" in text
    assert "'pkg.missing': the distribution installs no such module" in text


def test_distributions_without_the_group_are_not_indexed(tmp_path, cache):
    make_dist(tmp_path, "plain", {"plain.py": ""}, "[console_scripts]\nplain = plain:main\n")
    make_dist(tmp_path, "bare", {"bare.py": ""}, None)
    index, decls = distributions.build_index([str(tmp_path)])
    assert decls == [] and index[2] == () and index[3] == ()


def write_and_read(site: Path):
    index, _ = distributions.build_index([str(site)])
    distributions.write_index(index)
    return installed_index()


def test_index_round_trip_and_idempotent(tmp_path, cache):
    site = tmp_path / "site"
    make_dist(site, "pkg", PKG, "[lazyexec]\nall-modules = lazy\npkg.reg = never\n")
    opted, never = write_and_read(site)
    # pkg.sub (every module below it lazy) as a prefix; pkg (pkg.reg is never) module by module.
    assert opted == ((str(site), ("pkg", "pkg.core", "pkg.sub", "pkg.sub.*", "pkgtool")),)
    assert never == ("pkg.reg",)
    first = Path(distributions.write_index(distributions.build_index([str(site)])[0])).read_bytes()
    second = Path(distributions.write_index(distributions.build_index([str(site)])[0])).read_bytes()
    assert first == second


def test_a_wholly_lazy_package_is_one_prefix_entry_unless_another_distribution_installs_below_it(tmp_path, cache):
    site = tmp_path / "site"
    make_dist(site, "pkg", PKG, "[lazyexec]\nall-modules = lazy\n")
    assert write_and_read(site)[0] == ((str(site), ("pkg", "pkg.*", "pkgtool")),)
    make_dist(site, "pkg-extra", {"pkg/sub/extra.py": ""}, None)  # not opted in, adds a module below pkg.sub
    assert write_and_read(site)[0] == ((str(site), ("pkg", "pkg.core", "pkg.reg", "pkg.sub", "pkg.sub.x",
                                                    "pkgtool")),)
    f = _finder(Config(), (), installed_index())
    assert f.claims("pkg.sub.x", str(site / "pkg" / "sub" / "x.py"))
    assert not f.claims("pkg.sub.extra", str(site / "pkg" / "sub" / "extra.py"))


def test_finder_prefix_entries_cover_the_modules_below_a_package(tmp_path):
    site = tmp_path / "site"
    f = _finder(Config(), (), (((str(site), ("pkg", "pkg.sub.*")),), ()))
    assert f.claims("pkg.sub.deep.x", str(site / "pkg" / "sub" / "deep" / "x.py"))
    assert f.claims("pkg.sub.x", str(site / "pkg" / "sub" / "x.py"))
    assert not f.claims("pkg.sub", str(site / "pkg" / "sub" / "__init__.py"))  # "pkg.sub.*" is below it only
    assert not f.claims("pkg.subx", str(site / "pkg" / "subx.py"))
    assert not f.claims("pkg.other", str(site / "pkg" / "other.py"))


def test_index_is_stale_once_site_packages_changes(tmp_path, cache):
    site = tmp_path / "site"
    make_dist(site, "pkg", PKG, "[lazyexec]\nall-modules = lazy\n")
    assert write_and_read(site)[0]
    st = os.stat(site)
    os.utime(site, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # what an install or removal does
    assert installed_index() == ((), ())
    assert installed_index(check=False)[0]  # the plan builder's view: what the finder was given
    assert write_and_read(site)[0]  # `compile --installed` again: in force again


@pytest.mark.parametrize("damage", [b"", b"\x00garbage", b"\xe9\x03\x00\x00"])
def test_damaged_or_foreign_index_is_no_index(tmp_path, cache, damage):
    site = tmp_path / "site"
    make_dist(site, "pkg", PKG, "[lazyexec]\nall-modules = lazy\n")
    write_and_read(site)
    from lazyexec.importer import installed_index_path

    Path(installed_index_path()).write_bytes(damage)
    assert installed_index() == ((), ())


# --- the finder's matcher --------------------------------------------------

def finder_for(site: Path, config: Config = Config(), never=()):
    names = ("pkg", "pkg.core", "pip", "pip._internal", "setuptools", "lazyexec", "lazyexec.runtime")
    return _finder(config, (), (((str(site), names),), tuple(never)))


def test_finder_claims_opted_modules_without_marker_only_from_their_directory(tmp_path):
    site = tmp_path / "site"
    f = finder_for(site)
    assert f.claims("pkg.core", str(site / "pkg" / "core.py"))
    assert f.claims("pkg", str(site / "pkg" / "__init__.py"))
    # A same-named module found elsewhere on sys.path (shadowing) is not the
    # distribution's: no marker, not claimed. Nor is a module not listed.
    elsewhere = tmp_path / "app" / "pkg"
    elsewhere.mkdir(parents=True)
    (elsewhere / "core.py").write_text("X = 1\n")
    assert not f.claims("pkg.core", str(elsewhere / "core.py"))
    assert not f.claims("pkg.other", str(site / "pkg" / "other.py"))
    assert not f.claims("pkg.core", str(tmp_path / "site2" / "pkg" / "core.py"))


def test_never_lazy_set_wins_over_a_distribution_opt_in(tmp_path):
    """pip, setuptools and lazyexec are never lazy, whatever a distribution declares."""
    site = tmp_path / "site"
    f = finder_for(site)
    for name in ("pip", "pip._internal", "setuptools", "lazyexec", "lazyexec.runtime"):
        assert not f.claims(name, str(site / name.replace(".", "/") / "__init__.py")), name
    g = finder_for(site, never=("pkg.core",))
    assert not g.claims("pkg.core", str(site / "pkg" / "core.py"))
    assert g.claims("pkg", str(site / "pkg" / "__init__.py"))


def test_configuration_exclude_and_never_win_over_a_distribution_opt_in(tmp_path):
    site = tmp_path / "site"
    assert not finder_for(site, Config(exclude=("pkg.core",))).claims("pkg.core", str(site / "pkg" / "core.py"))
    assert not finder_for(site, Config(never=("pkg",))).claims("pkg.core", str(site / "pkg" / "core.py"))
    assert not finder_for(site, Config(include=("other.*",))).claims("pkg.core", str(site / "pkg" / "core.py"))


def test_finder_rejects_a_malformed_opted_argument():
    with pytest.raises(TypeError):
        _lazyexec.Finder(False, [], [], [], [], None, None, ["not a pair"])
    with pytest.raises(TypeError):
        _lazyexec.Finder(False, [], [], [], [], None, None, [("/dir", [1])])


# --- end to end: the example distribution in a venv ------------------------

def _backend_env() -> dict:
    """setuptools for the offline build: the interpreter's own when it can
    build wheels, else the copy `make setup` keeps in $VENV/backend (not on
    sys.path: its .pth files do not reach other tests)."""
    env = dict(os.environ)
    backend = os.path.join(sys.prefix, "backend")
    if os.path.isdir(backend):
        env["PYTHONPATH"] = backend + os.pathsep + env.get("PYTHONPATH", "")
    return env


BUILD = ("import os, sys; os.chdir(sys.argv[1]); from setuptools import build_meta; "
         "print(build_meta.build_wheel(sys.argv[2]))")


@pytest.fixture(scope="session")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """The example distribution as released (1.0) and a 2.0 whose modules
    say so, built once per session by setuptools' PEP 517 hook (what `pip
    wheel --no-build-isolation` calls, without pip's start-up), offline, both
    at once, in copies: the build writes into its source tree."""
    jobs = {}
    for version in ("1.0", "2.0"):
        root = tmp_path_factory.mktemp(f"lazydist-{version}")
        src = root / "src"
        shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        if version != "1.0":
            for p in [src / "pyproject.toml", *sorted((src / "src" / "lazydist").glob("*.py"))]:
                p.write_text(p.read_text().replace('"1.0"', f'"{version}"'))
        jobs[version] = (root / "dist", subprocess.Popen(
            [sys.executable, "-c", BUILD, str(src), str(root / "dist")], env=_backend_env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    out = {}
    for version, (dist, proc) in jobs.items():
        log = proc.communicate()[0]
        assert proc.returncode == 0, (f"building the example needs setuptools>=70.1 (or setuptools and wheel): "
                                      f"`make setup` installs it into $VENV/backend\n{log}")
        (out[version],) = dist.glob("*.whl")
    return out


class Venv:
    """A throw-away venv (no pip of its own) that sees this lazyexec through
    a .pth file; distributions are installed into it by this interpreter's
    pip (`pip --python`)."""

    def __init__(self, root: Path, template: "Venv | None" = None):
        self.root = root
        if template is not None:  # a copy: no pip run (the venv's paths are relative to its site dir)
            shutil.copytree(template.root / "venv", root / "venv", symlinks=True)
        else:
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
        self.python = str(root / "venv" / "bin" / "python")
        self.site = Path(self.run_py("import site; print(site.getsitepackages()[0])").strip())
        import lazyexec

        # Sorted before `lazyexec pth install`'s 00-lazyexec-activate.pth.
        (self.site / "0-lazyexec-under-test.pth").write_text(str(Path(lazyexec.__file__).parent.parent) + "\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("LAZYEXEC", "PYTHONPATH"))}
        # No background builder, no usage profile: each run loads what the
        # artifacts `compile --installed` stored, lazily, run after run.
        self.env.update(LAZYEXEC_CACHE_DIR=str(root / "cache"), LAZYEXEC_BUILD="off", LAZYEXEC_PROFILE="0")

    def run_py(self, code: str, *args, env=None, check=True) -> str:
        proc = subprocess.run([self.python, "-c", code, *args], capture_output=True, text=True,
                              env=env or getattr(self, "env", None), cwd=self.root)
        assert not check or proc.returncode == 0, proc.stderr
        return proc.stdout

    def install(self, wheel: Path) -> None:
        proc = subprocess.run([sys.executable, "-m", "pip", "--python", self.python, "install", "-q", "--no-deps",
                               "--no-index", str(wheel)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def lazyexec(self, *args, check=True) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.python, "-m", "lazyexec", *args], capture_output=True, text=True, env=self.env,
                              cwd=self.root)
        assert not check or proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def program(self, name: str, code: str) -> str:
        path = self.root / name
        path.write_text(textwrap.dedent(code))
        return str(path)

    def eager(self, script: str, *args) -> str:
        proc = subprocess.run([self.python, script, *args], capture_output=True, text=True, env=self.env,
                              cwd=self.root)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def lazy(self, script: str, *args) -> str:
        return self.lazyexec("run", script, *args).stdout


@pytest.fixture(scope="session")
def venv_with_1_0(tmp_path_factory, wheels) -> Venv:
    v = Venv(tmp_path_factory.mktemp("template"))
    v.install(wheels["1.0"])
    return v


@pytest.fixture
def venv(tmp_path, venv_with_1_0) -> Venv:
    """A venv with the example's 1.0 installed (by pip, once per session)."""
    return Venv(tmp_path, template=venv_with_1_0)


# What a program observes of the example (the same eagerly and lazily), and,
# lazily, what is still pending.
OBSERVE = """
import json, sys
import lazydist
plugins_at_import = "lazydist.plugins" in sys.modules
import lazydist.plugins, lazydist.shapes
seen = {
    "plugins loaded by import lazydist": plugins_at_import,
    "describe": lazydist.describe(lazydist.Circle(2.0)),
    "square": lazydist.Square(3).area(),
    "registry": lazydist.plugins.REGISTRY,
}
modules = sorted(m for m in sys.modules if m.startswith("lazydist"))
pending = {}
lazily_loaded = [m for m in ("lazydist", "lazydist.shapes", "lazydist.colors", "lazydist.plugins")
                 if m in sys.modules and type(sys.modules[m].__spec__.loader).__name__ == "LazySourceLoader"]
if lazily_loaded:
    import lazyexec
    for m in lazily_loaded:
        pending[m] = sorted(lazyexec.pending(sys.modules[m]))
print(json.dumps({"seen": seen, "pending": pending, "modules": modules}))
"""


def test_installed_distribution_loads_lazily_without_markers(venv):
    script = venv.program("observe.py", OBSERVE)
    eager = json.loads(venv.eager(script))
    before = json.loads(venv.lazy(script))
    assert before["seen"] == eager["seen"]
    assert before["pending"] == {}  # no index yet: mode "marked", no marker, nothing lazy

    out = venv.lazyexec("compile", "--installed").stdout
    assert "lazyexec-example-lazydist 1.0" in out and "3 of 4 modules lazy, never: lazydist.plugins" in out
    lazy = json.loads(venv.lazy(script))
    assert lazy["seen"] == eager["seen"]  # differential: the program observes the same
    # Laziness is real: names never used are still pending, in modules no marker selected.
    assert "colors" in lazy["pending"]["lazydist"] and "Square" not in lazy["pending"]["lazydist"]
    assert {"UNIT_NAMES", "release"} <= set(lazy["pending"]["lazydist.shapes"])
    # The never entry: registered at import, nothing deferred, and the
    # package's import of it is not deferred either (checked in "seen").
    assert lazy["pending"].get("lazydist.plugins", []) == []
    assert lazy["seen"]["registry"] == ["builtin-shapes"] and lazy["seen"]["plugins loaded by import lazydist"]
    assert "REGISTRY" not in lazy["pending"]["lazydist"]
    # The deferred `from lazydist import colors` never ran: the module was never loaded.
    assert "lazydist.colors" in eager["modules"] and "lazydist.colors" not in lazy["modules"]


def test_pth_activation_honours_the_index(venv):
    """A program started by others: `.pth` activation with LAZYEXEC=1 (the
    C++ boot path reads the index too)."""
    script = venv.program("observe.py", OBSERVE)
    venv.lazyexec("pth", "install", "--dir", str(venv.site))
    env = dict(venv.env, LAZYEXEC="1")

    def run() -> dict:
        proc = subprocess.run([venv.python, script], env=env, capture_output=True, text=True, check=True,
                              cwd=venv.root)
        assert proc.stderr == ""
        return json.loads(proc.stdout)

    eager = json.loads(venv.eager(script))
    assert run()["pending"] == {}  # no index: nothing lazy in mode "marked"
    venv.lazyexec("compile", "--installed")
    lazy = run()
    assert lazy["seen"] == eager["seen"]
    assert "colors" in lazy["pending"]["lazydist"] and lazy["pending"].get("lazydist.plugins", []) == []
    (venv.site / "new_module.py").write_text("X = 1\n")  # stale: as without the opt-in
    stale = run()
    assert stale["pending"] == {} and stale["seen"] == eager["seen"]
    marked = venv.program("marked_mod.py", "__lazy_module__ = True\nimport json\n")
    check = "import marked_mod, lazyexec; print(lazyexec.is_pending(marked_mod, 'json'))"
    inline = dict(env, LAZYEXEC_BUILD="inline")  # no artifact yet: build it at import
    assert subprocess.run([venv.python, "-c", check], env=inline, capture_output=True, text=True, check=True,
                          cwd=venv.root).stdout.strip() == "True"  # activation still on: markers honoured


def test_installing_anything_makes_the_index_stale_until_compiled_again(venv, wheels, tmp_path):
    script = venv.program("observe.py", OBSERVE)
    venv.lazyexec("compile", "--installed")
    assert json.loads(venv.lazy(script))["pending"]["lazydist"]
    other = tmp_path / "other"
    make_dist(other, "unrelated", {"unrelated.py": "X = 1\n"}, None)
    shutil.copytree(other, venv.site, dirs_exist_ok=True)  # as an installer would add it
    assert json.loads(venv.lazy(script))["pending"] == {}  # stale: eager, as without opt-in
    explained = venv.lazyexec("explain", "lazydist.shapes").stdout.splitlines()[1]
    assert "index of installed distributions is stale" in explained
    venv.lazyexec("compile", "--installed")
    assert json.loads(venv.lazy(script))["pending"]["lazydist"]


def test_a_program_that_finds_the_index_stale_has_it_rebuilt_after_it_exits(venv):
    script = venv.program("observe.py", OBSERVE)
    venv.lazyexec("compile", "--installed")
    (venv.site / "new_module.py").write_text("X = 1\n")  # an install: the index is stale
    fresh = "from lazyexec.importer.distributions import read_details; print(read_details()[1])"
    assert venv.run_py(fresh).strip() == "False"
    off = venv.lazyexec("run", script).stdout  # LAZYEXEC_BUILD=off: no background work at all
    assert json.loads(off)["pending"] == {} and venv.run_py(fresh).strip() == "False"
    background = dict(venv.env, LAZYEXEC_BUILD="background")
    out = subprocess.run([venv.python, "-m", "lazyexec", "run", script], env=background, capture_output=True,
                         text=True, check=True, cwd=venv.root).stdout
    assert json.loads(out)["pending"] == {}  # this run: stale, nothing from the index
    import time

    deadline = time.monotonic() + 120  # the detached re-indexer runs at low priority on a busy machine
    while venv.run_py(fresh).strip() != "True":
        assert time.monotonic() < deadline, "the index was not rebuilt after the program exited"
        time.sleep(0.2)
    assert json.loads(venv.lazy(script))["pending"]["lazydist"]


def test_compile_of_a_site_packages_directory_includes_opted_in_modules(venv):
    venv.lazyexec("compile", "--installed")
    relative = os.path.relpath(venv.site, venv.root)  # as typed: the index holds absolute directories
    out = venv.lazyexec("compile", relative).stdout
    assert "lazyexec compile: 3 stored" in out, out


def test_explain_says_why_each_module_is_selected(venv):
    venv.lazyexec("compile", "--installed")
    marked = venv.program("marked_mod.py", "__lazy_module__ = True\nimport json\n")
    unmarked = venv.program("plain_mod.py", "import json\n")
    lines = {t: venv.lazyexec("explain", t).stdout.splitlines()[1]
             for t in ("lazydist.shapes", "lazydist.plugins", "pip", marked, unmarked)}
    assert lines["lazydist.shapes"] == ("selected: distribution lazyexec-example-lazydist 1.0 opted in "
                                        "(entry points [lazyexec]: the whole distribution; installed index)")
    assert lines["lazydist.plugins"] == ("not selected: never lazy (distribution lazyexec-example-lazydist 1.0 "
                                         "declares it `never`)")
    assert lines["pip"] == "not selected: never lazy (lazyexec's built-in never-lazy set)"
    assert lines[marked] == "selected: marker `__lazy_module__ = True`"
    assert lines[unmarked].startswith("not selected: mode \"marked\", no `__lazy_module__ = True` marker")
    config = venv.program("lazy.toml", 'mode = "all"\nexclude = ["lazydist.colors"]\n')
    env = dict(venv.env, LAZYEXEC_CONFIG=config)
    data = json.loads(subprocess.run([venv.python, "-m", "lazyexec", "explain", "--json", unmarked], env=env,
                                     capture_output=True, text=True, check=True, cwd=venv.root).stdout)
    assert data["selected"] and data["selection"] == f'selected: configuration mode = "all" ({config})'
    data = json.loads(subprocess.run([venv.python, "-m", "lazyexec", "explain", "--json", "lazydist.colors"], env=env,
                                     capture_output=True, text=True, check=True, cwd=venv.root).stdout)
    assert not data["selected"] and data["selection"].startswith("not selected: configuration include/exclude")


# A program that upgrades the example while it runs, as an installer or a
# plugin manager would: v1's modules are loaded (some names pending), the
# wheel of 2.0 is installed over them, then the program uses what it holds.
UPGRADE = """
import json, subprocess, sys
import lazydist, lazydist.shapes
materialize = sys.argv[1] == "materialize"
if materialize:
    import lazyexec
    lazyexec.materialize_all()   # what a tool does before it changes files it runs from (eagerly: nothing)
subprocess.run([sys.argv[2], "-m", "pip", "--python", sys.executable, "install", "-q", "--no-deps", "--no-index",
                sys.argv[3]], check=True, stdout=subprocess.DEVNULL)
print(json.dumps({
    "shapes": lazydist.shapes.release(),
    "version": lazydist.VERSION,
    "describe": lazydist.describe(lazydist.Square(2)),
    "colors": lazydist.colors.release(),
    "new import": __import__("importlib").import_module("lazydist.plugins").__file__.endswith("plugins.py"),
}))
"""


def test_modules_already_loaded_keep_their_code_when_a_new_wheel_is_installed(tmp_path, venv_with_1_0, wheels):
    def run(mode: str, how: str) -> dict:
        venv = Venv(tmp_path / f"{mode}-{how}", template=venv_with_1_0)  # 1.0 installed
        script = venv.program("upgrade.py", UPGRADE)
        if how == "lazy":
            venv.lazyexec("compile", "--installed")
        out = (venv.eager if how == "eager" else venv.lazy)(script, mode, sys.executable, str(wheels["2.0"]))
        return json.loads(out)

    eager = run("plain", "eager")
    assert eager["shapes"] == "shapes 1.0" and eager["version"] == "1.0" and eager["colors"] == "colors 1.0"
    lazy = run("plain", "lazy")
    # Units still pending when 2.0 was installed run the code they were
    # loaded with (the plan in memory), not the new files: the same as eager.
    assert lazy["shapes"] == eager["shapes"]
    assert lazy["version"] == eager["version"] and lazy["describe"] == eager["describe"]
    # The documented hazard (pip's incident): an import the analysis deferred
    # runs only now, and loads the module from the new files. Tools that
    # change files they run from call lazyexec.materialize_all() first.
    assert lazy["colors"] == "colors 2.0"
    # After lazyexec.materialize_all(), the program holds what eager held.
    assert run("materialize", "lazy") == eager
