"""Real programs doing real work (formatting, linting, rendering, parsing,
building docs, testing) run eagerly and with the whole program lazy
(`mode = "all"`: stdlib, site-packages and the program), through `lazyexec
check`'s runner: same exit status, stdout and stderr (docs/check.md's
normalisation). A lazy-only assertion checks that laziness was real: modules
were loaded lazily.

The programs are Debian's packages (`tools/real-programs-deps.sh` installs
them), run on Debian's python3 (a venv over it included); on any other
interpreter, their PyPI releases at pinned versions (`pypi_programs.py`,
`make real-programs-pypi`: LAZYEXEC_REALPROGRAMS_PYPI names the directory
they are installed in).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from lazyexec.cli.check import Runner

sys.path.insert(0, str(Path(__file__).parent))
import pypi_programs  # noqa: E402

BAD_PY = '''\
import os, sys
def  add( a,b ) :
    unused = 1
    return a+b
class  Thing :
    def method(self, x = 1):
        return {'a':x, "b" : [1,2,3]}
print(add(1,2), Thing().method(), os.sep, sys.maxsize > 0)
'''

RST = '''\
Title
=====

Some *emphasis*, a `link <https://example.invalid>`_ and a list:

- one
- two

.. code-block:: python

   print("hello")
'''

CONF = '''\
project = "tiny"
extensions = []
html_theme = "alabaster"
'''

INDEX = RST + '''
.. toctree::

   page
'''

PAGE = '''\
Page
====

:ref:`genindex`
'''

TINY_TESTS = '''\
import pytest

@pytest.fixture
def value():
    return 41

def test_add(value):
    assert value + 1 == 42

@pytest.mark.parametrize("x", [1, 2, 3])
def test_param(x):
    assert x > 0

def test_fails():
    assert [1, 2] == [1, 3]

class TestGroup:
    def test_skip(self):
        pytest.skip("not today")
'''

YAML_ROUNDTRIP = '''\
import yaml
doc = yaml.safe_load("""
name: tiny
items: [1, 2.5, true, null, "x"]
nested: {a: {b: [c, d]}}
when: 2024-01-02
""")
print(doc)
print(yaml.safe_dump(doc, sort_keys=True))
print(yaml.dump({"k": [1, {"z": None}]}, default_flow_style=False))
'''

JINJA = '''\
import jinja2
env = jinja2.Environment(loader=jinja2.DictLoader({
    "base.html": "<h1>{% block title %}{% endblock %}</h1>{% block body %}{% endblock %}",
    "page.html": "{% extends 'base.html' %}{% block title %}{{ title|upper }}{% endblock %}"
                 "{% block body %}{% for i in items %}<li>{{ loop.index }}: {{ i|e }}</li>{% endfor %}{% endblock %}",
}), autoescape=True)
print(env.get_template("page.html").render(title="tiny", items=["a", "<b>", 3]))
print(jinja2.Template("{{ x|default('none') }} {{ y|join(',') }}").render(y=[1, 2]))
'''

# name: (command, importable module the program needs, files to create)
PROGRAMS = {
    "black-diff": (["black", "--diff", "--no-color", "bad.py"], "black", {"bad.py": BAD_PY}),
    "flake8": (["flake8", "bad.py"], "flake8", {"bad.py": BAD_PY}),
    "pygmentize-html": (["pygmentize", "-f", "html", "-l", "python", "-O", "full", "bad.py"], "pygments",
                        {"bad.py": BAD_PY}),
    "pylint": (["pylint", "--persistent=n", "--score=n", "bad.py"], "pylint", {"bad.py": BAD_PY}),
    "http-offline": (["http", "--offline", "--ignore-stdin", "POST", "example.invalid/x", "a=1", "b:=2"],
                     "httpie", {}),
    "pytest-tiny-suite": (["pytest", "-q", "-p", "no:cacheprovider", "tiny"], "pytest",
                          {"tiny/test_tiny.py": TINY_TESTS}),
    "sphinx-build-html": (["sphinx-build", "-q", "-E", "-b", "html", "docs", "out"], "sphinx",
                          {"docs/conf.py": CONF, "docs/index.rst": INDEX, "docs/page.rst": PAGE}),
    "rst2html": (["rst2html", "doc.rst"], "docutils", {"doc.rst": RST}),
    "markdown-it": (["markdown-it", "doc.md"], "markdown_it", {"doc.md": "# Title\n\n- *a*\n- `b`\n\n> quote\n"}),
    "yaml-roundtrip": (["yaml_roundtrip.py"], "yaml", {"yaml_roundtrip.py": YAML_ROUNDTRIP}),
    "jinja2-render": (["jinja_render.py"], "jinja2", {"jinja_render.py": JINJA}),
    "pydoc-text": (["pydoc3", "json"], "pydoc", {}),
    "chardetect": (["chardetect", "bad.py", "doc.rst"], "chardet", {"bad.py": BAD_PY, "doc.rst": RST}),
}


# The PyPI releases (make real-programs-pypi), or None: Debian's packages.
PYPI = os.environ.get("LAZYEXEC_REALPROGRAMS_PYPI") or None


def _resolve(command: str) -> str | None:
    """PyPI mode: the pinned release's script, else the interpreter's own
    (pydoc3). Else Debian's program first: pyenv's shims of the same name are
    shell scripts."""
    if command.endswith(".py"):
        return command
    if PYPI:
        for d in (Path(PYPI) / "bin", Path(sys.base_prefix) / "bin"):
            if (d / command).exists():
                return str(d / command)
        return None
    debian = Path("/usr/bin") / command
    return str(debian) if debian.exists() else shutil.which(command)


def _available(command: str, module: str) -> bool:
    if PYPI:  # importable by the runs (PYTHONPATH), not by this process
        from importlib.machinery import PathFinder  # `import importlib.x` here would make importlib local

        found = PathFinder.find_spec(module, [PYPI, *sys.path]) is not None
    else:
        found = importlib.util.find_spec(module) is not None
    return found and _resolve(command) is not None


# Debian's programs on the interpreter they are packaged for: elsewhere
# /usr/bin's scripts would run another interpreter's site-packages.
DEBIAN = sys.base_prefix == "/usr"


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_real_program_same_eagerly_and_lazily(name, tmp_path, monkeypatch):
    cmd, module, files = PROGRAMS[name]
    env = {}
    if PYPI:
        if name not in pypi_programs.installed(Path(PYPI)):
            pytest.skip(f"not in the set installed in {PYPI} (make real-programs-pypi REALPROGRAMS=all)")
        env["PYTHONPATH"] = PYPI
    elif not DEBIAN:
        pytest.skip("Debian's programs run on Debian's python3 (make real-programs); "
                    "PyPI's on any interpreter (make real-programs-pypi)")
    if not _available(cmd[0], module):
        pytest.skip(f"{cmd[0]} ({module}) not installed for {sys.executable} (tools/real-programs-deps.sh)")
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    cmd = [str(tmp_path / cmd[0]) if cmd[0].endswith(".py") else _resolve(cmd[0]), *cmd[1:]]
    config = tmp_path / "lazyexec.toml"
    config.write_text('mode = "all"\n')
    stats = tmp_path / "stats.jsonl"
    monkeypatch.chdir(tmp_path)
    env.update({"LAZYEXEC_CONFIG": str(config), "NO_COLOR": "1", "COLUMNS": "100", "PYTHONHASHSEED": "0"})
    runner = Runner(cmd, pth=False, timeout=240)
    assert runner.python is not None, "not recognised as a Python program"
    eager = runner.run(False, env)
    lazy = runner.run(True, {**env, "LAZYEXEC_STATS": "1", "LAZYEXEC_STATS_JSON": str(stats)})
    assert lazy.key() == eager.key(), (
        f"--- eager ({eager.code})\n{eager.stdout[-3000:]}{eager.stderr[-3000:]}\n"
        f"--- lazy ({lazy.code})\n{lazy.stdout[-3000:]}{lazy.stderr[-3000:]}\n"
        f"(find the module: lazyexec check -- {' '.join(cmd)}, with LAZYEXEC_CONFIG={config})")
    rows = [row for line in stats.read_text().splitlines() for row in json.loads(line)] if stats.exists() else []
    # Small programs (pydoc, chardetect) load about ten modules lazily on some interpreters.
    assert len(rows) >= 5, "hardly anything was loaded lazily"
    assert eager.stdout or eager.stderr or os.listdir(tmp_path), "the program did nothing"


def test_programs_do_real_work():
    """At least ten programs, and not `--version`."""
    assert len(PROGRAMS) >= 10
    assert not any("--version" in cmd for cmd, _, _ in PROGRAMS.values())


def test_every_program_has_its_pypi_pins():
    assert set(pypi_programs.PINS) == set(PROGRAMS)
    assert set(pypi_programs.CI) <= set(PROGRAMS)


# --- The same programs started by others: the .pth activation, warm --------
#
# `lazyexec run` above activates through the Python layer. A program started
# with LAZYEXEC=1 and lazyexec's .pth file activates in C++ and, once its
# artifacts exist, loads modules through the C++ loader and plan runner with
# no Python of lazyexec's (docs/startup.md): a first start (build =
# "background": eager, a detached builder stores the artifacts at exit), then
# the warm start, compared with eager. LAZYEXEC_BOOT_TRACE=1 makes a declined
# C++ activation a difference on stderr. CI runs a subset;
# LAZYEXEC_REALPROGRAMS_PTH=all (make real-programs) runs every program.
PTH_CI = ["black-diff", "flake8", "http-offline"]
PTH_PROGRAMS = list(PROGRAMS) if os.environ.get("LAZYEXEC_REALPROGRAMS_PTH") == "all" else PTH_CI


@pytest.fixture(scope="module")
def pth_python(tmp_path_factory) -> Path:
    """A venv over this interpreter's base with lazyexec's .pth file, seeing
    this interpreter's site-packages (Debian's programs, lazyexec) through a
    path file sorted before the activation line."""
    import site
    import subprocess

    if not (PYPI or DEBIAN):
        pytest.skip("Debian's programs run on Debian's python3 (make real-programs); "
                    "PyPI's on any interpreter (make real-programs-pypi)")
    root = tmp_path_factory.mktemp("pth")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    py = root / "venv" / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    Path(purelib, "0-realprograms-paths.pth").write_text("".join(d + "\n" for d in dirs))
    subprocess.run([str(py), "-m", "lazyexec", "pth", "install", "--dir", purelib], check=True, capture_output=True)
    return py


def _wait_for_builder(cache: Path, timeout: float = 600) -> None:
    """Until the detached builder has emptied the queue and let go of its lock."""
    import fcntl
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if (cache / "queue").is_dir() and any((cache / "queue").glob("*.job")):
            continue
        if not (cache / "build.lock").exists():
            return
        with open(cache / "build.lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                continue
    raise AssertionError(f"the artifact builder did not finish in {timeout:.0f} s")


@pytest.mark.parametrize("name", PTH_PROGRAMS)
def test_real_program_same_through_the_pth_activation_warm(name, pth_python, tmp_path, monkeypatch):
    cmd, module, files = PROGRAMS[name]
    env = {}
    if PYPI:
        if name not in pypi_programs.installed(Path(PYPI)):
            pytest.skip(f"not in the set installed in {PYPI} (make real-programs-pypi REALPROGRAMS=all)")
        env["PYTHONPATH"] = PYPI
    elif not DEBIAN:
        pytest.skip("Debian's programs run on Debian's python3 (make real-programs); "
                    "PyPI's on any interpreter (make real-programs-pypi)")
    if not _available(cmd[0], module):
        pytest.skip(f"{cmd[0]} ({module}) not installed for {sys.executable} (tools/real-programs-deps.sh)")
    for rel, text in files.items():
        p = tmp_path / "work" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (tmp_path / "work").mkdir(exist_ok=True)
    script = str(tmp_path / "work" / cmd[0]) if cmd[0].endswith(".py") else _resolve(cmd[0])
    config = tmp_path / "lazyexec.toml"
    config.write_text('mode = "all"\n')
    cache = tmp_path / "cache"
    monkeypatch.chdir(tmp_path / "work")
    env.update({"LAZYEXEC_CONFIG": str(config), "LAZYEXEC_CACHE_DIR": str(cache), "NO_COLOR": "1",
                "COLUMNS": "100", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"})
    # The venv's interpreter runs the program's script (its #! names another).
    runner = Runner([str(pth_python), script, *cmd[1:]], pth=True, timeout=240)
    eager = runner.run(False, env)
    first = runner.run(True, {**env, "LAZYEXEC_BUILD": "background", "LAZYEXEC_PROFILE": "1"})
    _wait_for_builder(cache)
    artifacts = list(cache.glob("*.lzx"))
    warm = runner.run(True, {**env, "LAZYEXEC_BUILD": "background", "LAZYEXEC_BOOT_TRACE": "1"})
    for label, run in (("first start", first), ("warm start", warm)):
        assert run.key() == eager.key(), (
            f"--- eager ({eager.code})\n{eager.stdout[-3000:]}{eager.stderr[-3000:]}\n"
            f"--- {label} through the .pth ({run.code})\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
    assert len(artifacts) >= 5, "the background builder stored hardly any artifact"
    assert eager.stdout or eager.stderr or os.listdir(tmp_path / "work"), "the program did nothing"
