"""Third-party projects' own test suites, eagerly and lazily, compared case by
case (issue #12).

Each project's sdist (pinned version, from PyPI through pip) is unpacked under
build/thirdparty/; its tests run with pytest from the source tree, eagerly
(`python -m pytest`) and lazily with the whole program lazy (`mode = "all"`:
the project, pytest, the stdlib), in one or both lazy modes:

- `run`: `python -m lazyexec run -m pytest` with inline builds (the Python
  layer activates; every module is analysed as it loads);
- `pth`: `python -m pytest` with `LAZYEXEC=1` in a venv that has lazyexec's
  `.pth` file, warm: a first start (build = "background": eager, the detached
  builder stores artifacts at exit) and then the measured start, which
  activates in C++ (`_lazyexec.boot()`) and loads modules through the C++
  loader and plan runner with no Python of lazyexec's (docs/startup.md).

The JUnit XML outcomes (passed / failed / error / skipped) are compared per
test case, and a small pytest plugin (`-p thirdparty_probe`, every run)
reports how many modules loaded lazily and whether the `pth` run booted in
C++. Exit status 1 if any case differs or a lazy run loaded nothing lazily.

    python tools/thirdparty/run.py [--only NAME ...] [--modes run pth] [--json FILE]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "build" / "thirdparty"
HERE = Path(__file__).resolve().parent
VENV_TAG = Path(sys.prefix).name


class Project(NamedTuple):
    pypi: str
    version: str
    tests: list          # test paths inside the sdist
    extra: list = []     # extra pytest arguments
    roots: list = ["."]  # import roots inside the sdist (PYTHONPATH)
    deps: list = []      # (PyPI name, version, import root): other sdists on PYTHONPATH after ours
    env: dict = {}
    # (PyPI name, version): binary wheels (a compiled dependency such as
    # rpds-py), installed per interpreter, on PYTHONPATH after the deps.
    wheels: list = []


MARKUPSAFE = ("MarkupSafe", "2.1.5", "src")  # its C speed-ups are not built: the pure fallback
FREEZEGUN = ("freezegun", "1.5.1", ".")
SOUPSIEVE = ("soupsieve", "2.5", ".")
PYTZ = ("pytz", "2024.1", ".")
URLLIB3 = ("urllib3", "2.2.2", "src")
SIX = ("six", "1.16.0", ".")
PYTEST_MOCK = ("pytest-mock", "3.14.0", "src")  # a plugin on PYTHONPATH: `-p pytest_mock` registers it
PYTEST_ASYNCIO = ("pytest_asyncio", "0.21.2", ".")  # `-p pytest_asyncio`; pytest 9 rejects 0.21 (errors alike)
# One that pytest 9 takes (1.3 supports pytest 8.2 to 9); typing_extensions
# for its TypeIs below 3.13.
PYTEST_ASYNCIO_1 = [("pytest_asyncio", "1.3.0", "."), ("typing_extensions", "4.12.2", "src")]
# freezegun imports dateutil (which imports six): pyenv's 3.12/3.13 lack both.
FREEZEGUN_DEPS = [FREEZEGUN, ("python-dateutil", "2.9.0.post0", "src"), SIX]
# Suites written for an older pytest whose configuration turns warnings into
# errors: pytest's deprecations of their hooks and marks stay warnings.
OLD_PYTEST = ["-W", "ignore::pytest.PytestDeprecationWarning", "-W", "ignore::pytest.PytestUnknownMarkWarning"]

# Pure-Python projects whose suites run offline in about a minute. The
# interpreter's own site-packages (pytest, hypothesis, ...) supply the rest;
# a compiled dependency comes as a wheel (`wheels`).
PROJECTS = {
    "six": Project("six", "1.16.0", ["test_six.py"]),
    "toolz": Project("toolz", "0.12.0", ["toolz/tests"]),
    "more-itertools": Project("more-itertools", "10.1.0", ["tests"]),
    # test_diagram needs railroad-diagrams, not installed
    "pyparsing": Project("pyparsing", "3.1.1", ["tests"], ["--ignore=tests/test_diagram.py"]),
    "attrs": Project("attrs", "23.1.0", ["tests"], ["--ignore=tests/test_mypy.yml"], ["src"]),
    # pytest 9 deprecates parametrize iterators, an error in their configurations.
    "click": Project("click", "8.1.7", ["tests"], [*OLD_PYTEST], ["src"]),
    "markupsafe": Project(*MARKUPSAFE[:2], ["tests"], [], ["src"]),
    "jinja2": Project("jinja2", "3.1.4", ["tests"], [], ["src"], [MARKUPSAFE]),
    "packaging": Project("packaging", "24.1", ["tests"], [], ["src"], [("pretend", "1.0.9", ".")]),
    "idna": Project("idna", "3.7", ["tests"]),
    "pluggy": Project("pluggy", "1.5.0", ["testing"], [], ["src"]),
    # six: pyenv's 3.12/3.13 site-packages lack it, and dateutil imports it at
    # the top of most modules (eagerly 12 collection errors, lazily 11: a
    # deferred `from six import ...` fails at first use, docs/differences.md).
    "python-dateutil": Project("python-dateutil", "2.9.0.post0", ["tests"], [*OLD_PYTEST], ["src"],
                               [FREEZEGUN, SIX]),
    "sqlparse": Project("sqlparse", "0.5.0", ["tests"]),
    "cachetools": Project("cachetools", "5.3.3", ["tests"], [], ["src"]),
    "decorator": Project("decorator", "5.1.1", ["src/tests/test.py"], [], ["src"]),
    "itsdangerous": Project("itsdangerous", "2.2.0", ["tests"], [*OLD_PYTEST], ["src"], FREEZEGUN_DEPS),
    # Its conftest's pytest_ignore_collect(path) is gone in pytest 9 (a
    # registration error): it only skips other Pythons' _pyN modules (none here but _py3).
    "boltons": Project("boltons", "24.0.0", ["tests"], [*OLD_PYTEST, "--noconftest"]),
    "typing_extensions": Project("typing_extensions", "4.12.2", ["src/test_typing_extensions.py"], [], ["src"]),
    # Its conftest (pytest_pycollect_makemodule(path), gone in pytest 9) skips
    # the modules for older Pythons than 3.8 (this sdist has none).
    "wrapt": Project("wrapt", "1.16.0", ["tests"], [*OLD_PYTEST, "--noconftest"], ["src"], [],
                     {"WRAPT_DISABLE_EXTENSIONS": "1"}),
    "tabulate": Project("tabulate", "0.9.0", ["test"]),
    # dateutil and six: pyenv's 3.13 lacks them (every test module failed to import).
    "freezegun": Project(*FREEZEGUN[:2], ["tests"], [], ["."], FREEZEGUN_DEPS[1:]),
    "pyflakes": Project("pyflakes", "3.2.0", ["pyflakes/test"]),
    "tomlkit": Project("tomlkit", "0.12.5", ["tests"]),
    "beautifulsoup4": Project("beautifulsoup4", "4.12.3", ["bs4/tests"], [], ["."], [SOUPSIEVE]),
    "soupsieve": Project(*SOUPSIEVE[:2], ["tests"], [], ["."], [("beautifulsoup4", "4.12.3", ".")]),
    "mako": Project("Mako", "1.3.5", ["test"], [], ["."], [MARKUPSAFE]),
    "parso": Project("parso", "0.8.4", ["test"]),
    "simplejson": Project("simplejson", "3.19.2", ["simplejson/tests"]),  # C speed-ups not built: pure
    "pycparser": Project("pycparser", "2.22", ["tests"]),
    "astroid": Project("astroid", "3.2.4", ["tests"]),
    "pyasn1": Project("pyasn1", "0.6.0", ["tests"]),
    "marshmallow": Project("marshmallow", "3.21.3", ["tests"], [], ["src", "."], [PYTZ, ("simplejson", "3.19.2", ".")]),
    "pytz": Project("pytz", "2024.1", ["pytz/tests"]),
    # Names as the sdist file spells them (the archive is found by a case-sensitive glob).
    # test_legacy.py turns warnings into errors when imported: collected last, as
    # its own runner (unittest discover) meets it after the rest. test_apis.py
    # imports yaml, which pyenv's 3.12/3.13 lack (a collection error stopped the
    # whole session, eagerly as lazily): PyYAML's pure-Python package.
    "markdown": Project("Markdown", "3.6", ["tests/test_apis.py", "tests/test_extensions.py", "tests/test_meta.py",
                                            "tests/test_syntax", "tests/test_legacy.py"], [], ["."],
                        [("PyYAML", "6.0.1", "lib")]),
    "docutils": Project("docutils", "0.21.2", ["test"]),
    # tests/contrast needs wcag-contrast-ratio (not installed)
    "pygments": Project("pygments", "2.18.0", ["tests"], ["--ignore=tests/contrast"]),
    # Its conftest and tests/test_cli.py read _pytest.monkeypatch.notset, gone in
    # pytest 9 (every case errored, eagerly as lazily): pytest9_compat gives it back.
    "flask": Project("flask", "3.0.3", ["tests"], ["-p", "pytest9_compat"], ["src"],
                     [("werkzeug", "3.0.3", "src"), ("jinja2", "3.1.4", "src"), MARKUPSAFE,
                      ("itsdangerous", "2.2.0", "src"), ("click", "8.1.7", "src"), ("blinker", "1.8.2", "src")]),
    "jmespath": Project("jmespath", "1.0.1", ["tests"]),
    "mpmath": Project("mpmath", "1.3.0", ["mpmath/tests"]),
    # Its sdist lacks the repository's testing/ package (support code and data
    # files) that eight of its eleven test modules import: every module errored
    # at collection, eagerly as lazily, and nothing ran. The three that need none.
    "pycodestyle": Project("pycodestyle", "2.12.0", ["tests/test_parser.py", "tests/test_pycodestyle.py",
                                                     "tests/test_util.py"]),
    "xmltodict": Project("xmltodict", "0.13.0", ["tests"]),
    "colorama": Project("colorama", "0.4.6", ["colorama/tests"]),
    "webencodings": Project("webencodings", "0.5.1", ["webencodings/tests.py"]),
    "babel": Project("babel", "2.15.0", ["tests"], [], ["."], [*FREEZEGUN_DEPS, PYTZ]),
    # The unit tests that need no server (pytest-httpbin is not installed: its fixtures error alike).
    "requests": Project("requests", "2.32.3", ["tests/test_utils.py", "tests/test_structures.py",
                                               "tests/test_hooks.py", "tests/test_help.py", "tests/test_packages.py"],
                        [], ["src"], [URLLIB3, ("idna", "3.7", "."), ("certifi", "2024.7.4", "."),
                                      ("charset-normalizer", "3.3.2", ".")]),
    "chardet": Project("chardet", "5.2.0", ["test.py"]),
    "networkx": Project("networkx", "3.2.1", ["networkx"]),
    # Their configurations ask for pytest-cov's options (not installed): addopts replaced.
    "wcwidth": Project("wcwidth", "0.2.13", ["tests"], ["-o", "addopts="]),
    "semver": Project("semver", "3.0.2", ["tests"], ["-o", "addopts=--import-mode=importlib"], ["src"]),
    "pathspec": Project("pathspec", "0.12.1", ["tests"]),
    "isodate": Project("isodate", "0.6.1", ["src/isodate/tests"], [], ["src"], [SIX]),
    "webcolors": Project("webcolors", "1.13", ["tests"], [], ["src"]),
    # Import cycles (sympy.matrices.expressions, sympy.core) and a whole
    # package imported at first use: a subset that runs in a minute.
    "sympy": Project("sympy", "1.12", ["sympy/core/tests/test_basic.py", "sympy/core/tests/test_sympify.py",
                                       "sympy/core/tests/test_singleton.py", "sympy/multipledispatch/tests",
                                       "sympy/printing/tests/test_str.py",
                                       "sympy/matrices/expressions/tests/test_inverse.py",
                                       "sympy/matrices/expressions/tests/test_matpow.py"],
                     [], ["."], [("mpmath", "1.3.0", ".")]),
    # Pure Python (its Cython speed-ups are not built); sqlite only. typing_extensions:
    # pyenv's 3.12/3.13 lack it (its conftest failed to import, eagerly as lazily).
    "sqlalchemy": Project("SQLAlchemy", "2.0.31", ["test/base", "test/orm/declarative", "test/ext/test_hybrid.py",
                                                   "test/sql/test_metadata.py"], [*OLD_PYTEST], ["lib"],
                          [("typing_extensions", "4.12.2", "src")]),
    "h11": Project("h11", "0.14.0", ["h11/tests"]),
    "sniffio": Project("sniffio", "1.3.1", ["sniffio/_tests"]),
    # Its tests import one another as top-level modules and run code at import
    # (its runner runs each file as a script): four files fail to import under
    # pytest's capture, eagerly as lazily, and the rest runs.
    "dill": Project("dill", "0.3.8", ["dill/tests"], ["-s", "--continue-on-collection-errors"], [".", "dill/tests"]),
    "zope.interface": Project("zope.interface", "6.4.post2", ["src/zope/interface"], [], ["src"], [], {"PURE_PYTHON": "1"}),
    "msgpack": Project("msgpack", "1.0.8", ["test"], [], ["."], [], {"MSGPACK_PUREPYTHON": "1"}),
    "charset-normalizer": Project("charset-normalizer", "3.3.2", ["tests"], ["-o", "addopts="]),
    # Deselected: test_leak counts gc.get_objects() around two gc.collect()
    # calls, which counts definitions run at first use (docs/differences.md;
    # eagerly it fails too when test_istr.py runs alone). test_circular_imports
    # starts `python -I`, which ignores PYTHONPATH: 5 fail, eagerly as lazily.
    "multidict": Project("multidict", "6.0.5", ["tests"], ["-o", "addopts=", "-m", "not c_extension",
                                                         "--deselect=tests/test_istr.py::test_leak"], ["."], [],
                         {"MULTIDICT_NO_EXTENSIONS": "1"}),
    # Its conftest needs pytest-xprocess and ephemeral-port-reserve (not
    # installed), for the dev-server tests left out here. Deselected: a module
    # whose import fails eagerly (`from b import bb` of a broken `b.bb`)
    # imports lazily and fails at first use (DESIGN's accepted difference,
    # docs/differences.md): `import_string("a.aa")` raised eagerly, not lazily.
    "werkzeug": Project("werkzeug", "3.0.3", ["tests"],
                        ["--noconftest", "--ignore=tests/test_serving.py", "--ignore=tests/test_debug.py",
                         "--ignore=tests/middleware/test_http_proxy.py",
                         "--deselect=tests/test_utils.py::test_import_string_provides_traceback"], ["src"],
                        [MARKUPSAFE]),
    "arrow": Project("arrow", "1.3.0", ["tests"], ["-o", "addopts=", "-p", "pytest_mock"], ["."],
                     [("python-dateutil", "2.9.0.post0", "src"), SIX, PYTZ, ("simplejson", "3.19.2", "."),
                      PYTEST_MOCK]),
    "platformdirs": Project("platformdirs", "4.2.2", ["tests"], ["-p", "pytest_mock"], ["src"],
                            [PYTEST_MOCK, ("appdirs", "1.4.4", ".")]),
    # test_virtualenv needs virtualenv (not installed). Its async cases need
    # pytest-asyncio (without it 43 failed, eagerly as lazily).
    "filelock": Project("filelock", "3.15.4", ["tests"], ["-p", "pytest_mock", "-p", "pytest_asyncio",
                                                          "--ignore=tests/test_virtualenv.py"],
                        ["src"], [PYTEST_MOCK, *PYTEST_ASYNCIO_1]),
    "structlog": Project("structlog", "24.2.0", ["tests"], ["-p", "pytest_asyncio"], ["src", "."],
                         [("pretend", "1.0.9", "."), *FREEZEGUN_DEPS, ("simplejson", "3.19.2", "."),
                          PYTEST_ASYNCIO]),
    # Left out: the preconf converters' tests (bson, cbor2, msgpack, orjson,
    # ujson, PyYAML: not all installed) and immutables' (a C extension).
    # FAST: its own hypothesis profile of 10 examples (4 minutes instead of 20 s otherwise).
    "cattrs": Project("cattrs", "23.2.3", ["tests"], ["-o", "addopts=", "--ignore=tests/test_preconf.py",
                                                      "--ignore=tests/test_unstructure_collections.py"], ["src"],
                      [("attrs", "23.1.0", "src")], {"FAST": "1"}),
    "yarl": Project("yarl", "1.9.4", ["tests"], ["-o", "addopts="], ["."],
                    [("multidict", "6.0.5", "."), ("idna", "3.7", ".")],
                    {"YARL_NO_EXTENSIONS": "1", "MULTIDICT_NO_EXTENSIONS": "1"}),
    # 2.1.0: 2.0.1 predates 3.13's bytecode (112 of 199 cases failed on 3.13,
    # eagerly as lazily). Its tests' module-level `tester` object asserts in its
    # __getattr__ unless pytest itself asks, and pytest 9 asks through
    # inspect.unwrap (`tester` matches the default "test" prefix): test_main.py
    # failed to collect, eagerly as lazily, unless only test_* is collected.
    "executing": Project("executing", "2.1.0", ["tests"], ["-o", "python_functions=test_*"], ["."],
                         [("asttokens", "2.4.1", "."), ("littleutils", "0.2.4", "."), SIX]),
    # test_typing needs pytest-mypy-plugins (not installed).
    "traitlets": Project("traitlets", "5.14.3", ["tests"], ["--ignore=tests/test_typing.py"]),
    # test_nearley needs js2py (not installed): it raises ImportError to skip itself.
    "lark": Project("lark", "1.1.9", ["tests"], ["--ignore=tests/test_nearley"]),
    # test_tornado needs tornado (not installed).
    "tenacity": Project("tenacity", "8.5.0", ["tests"], ["--ignore=tests/test_tornado.py"]),
    "hyperframe": Project("hyperframe", "6.0.1", ["test"], [], ["src"]),
    "h2": Project("h2", "4.1.0", ["test"], [], ["src"], [("hpack", "4.0.0", "src"), ("hyperframe", "6.0.1", "src")]),
    # Its suite's subtests need pytest-subtests (not installed): 296 cases error alike.
    "referencing": Project("referencing", "0.35.1", ["referencing/tests"], [], ["."], [],
                           {}, [("rpds-py", "0.19.1")]),
    # test_cli reads jsonschema's installed metadata (none: it runs from the sdist).
    "jsonschema": Project("jsonschema", "4.23.0", ["jsonschema/tests"], ["--ignore=jsonschema/tests/test_cli.py"], ["."],
                          [("referencing", "0.35.1", "."), ("jsonschema_specifications", "2023.12.1", ".")],
                          {}, [("rpds-py", "0.19.1")]),
    # The pure-Python layer over pydantic-core's wheel; the modules whose tests
    # need no other plugin or optional package (pytest-examples, faker, ...).
    "pydantic": Project("pydantic", "2.8.2", [f"tests/test_{m}.py" for m in (
                            "main", "types", "validators", "fields", "dataclasses", "generics", "forward_ref",
                            "edge_cases", "utils", "config", "computed_fields", "discriminated_union",
                            "root_model", "type_adapter", "validate_call", "serialize", "aliases", "json")],
                        ["-o", "addopts=", "-p", "pytest_mock"], ["."],
                        [("annotated-types", "0.7.0", "."), ("typing_extensions", "4.12.2", "src"),
                         ("dirty-equals", "0.8.0", "."), PYTEST_MOCK], {}, [("pydantic-core", "2.20.1")]),
    # An import hook that instruments modules as they load (test_importhook).
    "typeguard": Project("typeguard", "4.3.0", ["tests"], ["-p", "pytester"], ["src"],
                         [("typing_extensions", "4.12.2", "src")]),
    # Its configuration sets asyncio_mode: pytest-asyncio's plugin, named.
    "blinker": Project("blinker", "1.8.2", ["tests"], ["-p", "pytest_asyncio"], ["src"],
                       [PYTEST_ASYNCIO]),
    "funcy": Project("funcy", "2.0", ["tests"], [], ["."], [("whatever", "0.7", ".")]),
    # Its async cases need anyio's pytest plugin (an entry point, found through
    # the egg-info in anyio's sdist) and trio; its conftest serves the
    # live-server cases with uvicorn on 127.0.0.1:8000 (one interpreter at a
    # time) and makes certificates with trustme over cryptography's wheel.
    # brotli is not installed and there is no DNS: 26-28 cases (expected
    # Accept-Encoding headers with "br", example.org) fail, eagerly as lazily.
    "httpx": Project("httpx", "0.27.0", ["tests"], [], ["."],
                     [("httpcore", "1.0.5", "."), ("anyio", "4.4.0", "src"), ("sniffio", "1.3.1", "."),
                      ("h11", "0.14.0", "."), ("idna", "3.7", "."), ("certifi", "2024.7.4", "."),
                      ("chardet", "5.2.0", "."), ("trustme", "1.1.0", "src"), ("uvicorn", "0.30.1", "."),
                      ("click", "8.1.7", "src"), ("trio", "0.26.2", "src"), ("outcome", "1.3.0.post0", "src"),
                      ("sortedcontainers", "2.4.0", "."), ("attrs", "23.1.0", "src"), ("rich", "13.7.1", "."),
                      ("markdown-it-py", "3.0.0", "."), ("mdurl", "0.1.2", "src"), ("pygments", "2.18.0", "."),
                      ("socksio", "1.0.0", "."), ("h2", "4.1.0", "src"), ("hpack", "4.0.0", "src"),
                      ("hyperframe", "6.0.1", "src"), ("pycparser", "2.22", ".")],
                     {}, [("cryptography", "43.0.0"), ("cffi", "1.17.0")]),
    "pyrsistent": Project("pyrsistent", "0.20.0", ["tests"], ["--ignore=tests/memory_profiling.py"], ["."], [],
                          {"PYRSISTENT_NO_C_EXTENSION": "1"}),
    "prompt_toolkit": Project("prompt_toolkit", "3.0.47", ["tests"], [], ["src"], [("wcwidth", "0.2.13", ".")]),
    # 6.0.2: its legacy tests come with a pytest collector (6.0.1's need their
    # own runner). lib/ is the pure-Python package (the _yaml C ext is not built).
    "pyyaml": Project("pyyaml", "6.0.2", ["tests/legacy_tests"], [], ["lib"]),
    "asttokens": Project("asttokens", "2.4.1", ["tests"], [], ["."], [SIX, ("astroid", "3.2.4", ".")]),
    "pure_eval": Project("pure_eval", "0.2.3", ["tests"]),
    "exceptiongroup": Project("exceptiongroup", "1.2.2", ["tests"], [], ["src"]),
    "inflect": Project("inflect", "7.3.1", ["tests", "inflect"], [], ["."],
                       [("more-itertools", "10.1.0", "."), ("typeguard", "4.3.0", "src"),
                        ("typing_extensions", "4.12.2", "src")]),
    "mistune": Project("mistune", "3.0.2", ["tests"], [], ["src", "."]),
    # 59 cases error alike: the locales they set (en_US.UTF-8, de_DE.UTF-8) are not installed.
    "natsort": Project("natsort", "8.4.0", ["tests"], ["-p", "pytest_mock"], ["."], [PYTEST_MOCK]),
    # test_valid_tests and test_invalid_tests fail alike: the sdist lacks the toml-test data.
    "toml": Project("toml", "0.10.2", ["tests"]),
    # Three cases fail alike: the sdist's test_data has its localtime symlinks as plain files.
    "tzlocal": Project("tzlocal", "5.2", ["tests"], ["-p", "pytest_mock"], ["."], [PYTEST_MOCK]),
    # Its conftest's pytest_collect_file(path, parent) is gone in pytest 9 (a
    # registration error): without it the data-file cases (tree construction,
    # tokenizer, sanitizer) are not collected. test_meta imports mock (not
    # installed). chardet: for test_chardet. Two encoding cases fail alike (a
    # test-data page whose script writes its meta charset: windows-1252 found).
    "html5lib": Project("html5lib", "1.1", ["html5lib/tests"], ["--noconftest",
                                                               "--ignore=html5lib/tests/test_meta.py"], ["."],
                        [SIX, ("webencodings", "0.5.1", "."), ("chardet", "5.2.0", ".")]),
    # Deselected: distlib.resources.finder() looks its finder up by the
    # exact type of the package's loader (`_finder_registry.get(type(loader))`),
    # and a lazily loaded package's loader is lazyexec's LazySourceLoader, a
    # SourceFileLoader subclass (docs/differences.md, the row "A lazily loaded
    # module's `__loader__` ..."): "Unable to locate finder for 'foofoo'" in
    # both modes. Three cases fail alike: test_json and test_package_data (no
    # network), test_is_writable (run as root).
    "distlib": Project("distlib", "0.3.8", ["tests"], [
        *(f"--deselect=tests/test_resources.py::FileResourceTestCase::test_{t}" for t in (
            "existing_resource", "nonexistent_resource", "contents", "root_resources", "nested", "iterator")),
        "--deselect=tests/test_resources.py::CacheTestCase::test_filepath"]),
}

# Who runs what: the lazy modes a run compares with eager.
MODES = ("run", "pth")


def fetch(pypi: str, version: str) -> Path:
    """The unpacked sdist (downloaded once)."""
    WORK.mkdir(parents=True, exist_ok=True)
    base = f"{pypi}-{version}"
    src = WORK / base
    if src.is_dir():
        return src
    pattern = pypi.replace("-", "[-_]").replace(".", "[._]")
    archive = next(WORK.glob(f"{pattern}-{version}.tar.gz"), None)
    if archive is None:
        # Only the project from source: its build backend (hatch-vcs, ...)
        # from wheels (`--no-binary :all:` built those from source too, for
        # minutes per sdist).
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", pypi,
                        f"{pypi}=={version}", "-d", str(WORK)], check=True)
        archive = next(WORK.glob(f"{pattern}-{version}.tar.gz"))
    with tarfile.open(archive) as t:
        t.extractall(WORK, filter="data") if hasattr(tarfile, "data_filter") else t.extractall(WORK)
    wanted = base.lower().replace("_", "-").replace(".", "-")
    return next(p for p in WORK.iterdir()
                if p.is_dir() and p.name.lower().replace("_", "-").replace(".", "-") == wanted)


def wheel(pypi: str, version: str) -> Path:
    """The directory a binary wheel is installed in for this interpreter (once)."""
    target = WORK / "wheels" / VENV_TAG / f"{pypi}-{version}"
    if not target.is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--only-binary", ":all:",
                        "--target", str(target), f"{pypi}=={version}"], check=True)
    return target


# Test ids made of the time or an address (marshmallow parametrizes with
# datetime.now()) differ between any two runs: normalised, as `lazyexec check`
# normalises output (docs/check.md).
_VOLATILE = re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b|\b0x[0-9a-fA-F]{6,}\b")


def outcomes(xml_path: Path) -> dict[str, str]:
    out = {}
    if not xml_path.exists():
        return out
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError:
        return out
    for case in root.iter("testcase"):
        key = _VOLATILE.sub("<VOLATILE>", f"{case.get('classname')}::{case.get('name')}")
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = "failed" if child.tag == "failure" else child.tag
                break
        out[key] = kind
    return out


def pth_python() -> Path:
    """An interpreter whose site-packages has lazyexec's .pth file: a venv
    over this interpreter's base, seeing this interpreter's site-packages
    (a path file sorted before the activation line, so that the Python layer
    can be imported when boot() declines)."""
    venv = WORK / f"pth-{Path(sys.prefix).name}"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    # "0-" sorts before "00-lazyexec-activate.pth" ('-' < '0').
    Path(purelib, "0-thirdparty-paths.pth").write_text("".join(d + "\n" for d in dirs))
    subprocess.run([str(py), "-m", "lazyexec", "pth", "install", "--dir", purelib], check=True, capture_output=True)
    return py


def wait_for_builder(cache: Path, timeout: float = 900) -> None:
    """Until the detached builder has emptied the queue and let go of its lock."""
    deadline = time.monotonic() + timeout
    time.sleep(0.5)
    while time.monotonic() < deadline:
        queued = list((cache / "queue").glob("*.job")) if (cache / "queue").is_dir() else []
        held = False
        lock = cache / "build.lock"
        if lock.exists():
            with open(lock, "a") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(f, fcntl.LOCK_UN)
                except OSError:
                    held = True
        if not queued and not held:
            return
        time.sleep(1)
    print(f"  warning: the artifact builder did not finish in {timeout:.0f} s")


def pin_rootdir(src: Path) -> None:
    """An sdist without a pytest configuration of its own gets an empty
    pytest.ini: pytest would otherwise walk up to lazyexec's pyproject.toml
    and take its options and rootdir (Markdown's suite then stopped at a
    collection warning)."""
    checks = [("pytest.ini", ""), (".pytest.ini", ""), ("pyproject.toml", "[tool.pytest.ini_options]"),
              ("tox.ini", "[pytest]"), ("setup.cfg", "[tool:pytest]")]
    for name, section in checks:
        f = src / name
        if f.is_file() and section in f.read_text(encoding="utf-8", errors="replace"):
            return
    (src / "pytest.ini").write_text("[pytest]\n")


class Run(NamedTuple):
    cases: dict
    seconds: float
    code: int
    tail: str
    probe: dict


def run_suite(src: Path, project: Project, pythonpath: str, mode: str, cache: Path,
              python: str | None = None, tag: str | None = None, extra_env: dict | None = None) -> Run:
    # Per interpreter (venv): several interpreters may run the same sdist at once.
    tag = f"{tag or mode}-{VENV_TAG}"
    xml = src / f"junit-{tag}.xml"
    xml.unlink(missing_ok=True)
    probe = src / f"probe-{tag}.json"
    probe.unlink(missing_ok=True)
    config = src / "lazyexec-all.toml"
    if not config.exists() or config.read_text() != 'mode = "all"\n':
        # Written once: a new mtime makes the parse cache stale, and boot() declines.
        config.write_text('mode = "all"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") or k == "LAZYEXEC_BOOT_TRACE"}
    # The probe plugin (tools/thirdparty/thirdparty_probe.py) is found through PYTHONPATH.
    env["PYTHONPATH"] = os.pathsep.join([pythonpath, str(HERE)])
    env["PYTHONHASHSEED"] = "0"
    # Nothing written beside the sources or the stdlib: .pyc files and
    # artifacts go to the cache directory only (docs/startup.md).
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["THIRDPARTY_PROBE"] = str(probe)
    env.update(project.env)
    head = [python or sys.executable, "-m", "pytest"]
    if mode == "eager":
        env["LAZYEXEC"] = "0"
    elif mode == "run":
        env.update(LAZYEXEC_CONFIG=str(config), LAZYEXEC_BUILD="inline", LAZYEXEC_PROFILE="0",
                   LAZYEXEC_CACHE_DIR=str(cache))
        head = [sys.executable, "-m", "lazyexec", "run", "-m", "pytest"]
    else:  # pth: the interpreter's own start, activated by the .pth line
        env.update(LAZYEXEC="1", LAZYEXEC_CONFIG=str(config), LAZYEXEC_CACHE_DIR=str(cache))
    env.update(extra_env or {})
    cmd = [*head, "-q", "-p", "no:cacheprovider", "-p", "thirdparty_probe", f"--junitxml={xml}",
           *project.extra, *project.tests]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, timeout=1800)
        code, tail = proc.returncode, proc.stdout[-3000:] + proc.stderr[-3000:]
    except subprocess.TimeoutExpired as e:
        code, tail = -1, f"timed out after {e.timeout} s"
    seconds = time.perf_counter() - start
    try:
        found = json.loads(probe.read_text())
    except (OSError, ValueError):
        found = {}
    return Run(outcomes(xml), seconds, code, tail, found)


def compare(name: str, version: str, eager: Run, lazy: Run, mode: str) -> tuple[bool, dict]:
    differ = sorted(k for k in set(eager.cases) | set(lazy.cases) if eager.cases.get(k) != lazy.cases.get(k))
    counts = {k: sum(1 for v in lazy.cases.values() if v == k) for k in ("passed", "failed", "error", "skipped")}
    lazily = lazy.probe.get("lazy_modules", 0)
    booted = lazy.probe.get("booted_in_cpp")
    ok = bool(eager.cases) and not differ and eager.code == lazy.code and lazily > 0
    if mode == "pth" and booted is False:
        ok = False
    how = f", booted in C++: {booted}" if mode == "pth" else ""
    if os.environ.get("THIRDPARTY_DEBUG"):
        print(lazy.tail)
    print(f"  {mode}: {len(lazy.cases)} cases {counts}, exit {lazy.code}, {lazily} modules lazily{how}; "
          f"{'same' if ok else f'{len(differ)} differ'} ({lazy.seconds:.1f} s)")
    for k in differ[:20]:
        print(f"    {k}: eager {eager.cases.get(k, 'absent')}, {mode} {lazy.cases.get(k, 'absent')}")
    if not ok:
        print(f"    {mode} run tail:\n{lazy.tail}")
    return ok, {"cases": len(lazy.cases), "outcomes": counts, "differ": differ, "exit": lazy.code,
                "seconds": lazy.seconds, "lazy_modules": lazily, "booted_in_cpp": booted}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", help="project names (default: all)")
    p.add_argument("--modes", nargs="*", choices=MODES, default=list(MODES), help="lazy modes (default: all)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    names = args.only or list(PROJECTS)
    unknown = [n for n in names if n not in PROJECTS]
    if unknown:
        p.error(f"unknown project(s): {' '.join(unknown)} (known: {' '.join(PROJECTS)})")
    python_pth = str(pth_python()) if "pth" in args.modes else None
    results, bad = {}, 0
    for name in names:
        project = PROJECTS[name]
        src = fetch(project.pypi, project.version)
        pin_rootdir(src)
        roots = [str(src / r) for r in project.roots]
        roots += [str(fetch(pypi, version) / root) for pypi, version, root in project.deps]
        roots += [str(wheel(pypi, version)) for pypi, version in project.wheels]
        pythonpath = os.pathsep.join(roots)
        cache = WORK / "cache" / VENV_TAG / name  # the pth mode's: its first start is eager
        shutil.rmtree(cache, ignore_errors=True)
        eager = run_suite(src, project, pythonpath, "eager", cache)
        counts = {k: sum(1 for v in eager.cases.values() if v == k) for k in ("passed", "failed", "error", "skipped")}
        print(f"{name} {project.version}: {len(eager.cases)} cases eagerly {counts}, exit {eager.code} "
              f"({eager.seconds:.1f} s)")
        if not eager.cases:
            print(f"  no results eagerly:\n{eager.tail}")
        entry = {"version": project.version, "cases": len(eager.cases), "eager": counts, "exit": eager.code,
                 "seconds": eager.seconds, "modes": {}}
        for mode in args.modes:
            if mode == "pth":
                # First start: eager, the detached builder stores the artifacts at exit.
                first = run_suite(src, project, pythonpath, "pth", cache, python_pth, tag="pth-first",
                                  extra_env={"LAZYEXEC_BUILD": "background"})
                wait_for_builder(cache)
                lazy = run_suite(src, project, pythonpath, "pth", cache, python_pth)
                entry["first_start_seconds"] = first.seconds
            else:
                # Inline builds; the stdlib's and pytest's artifacts are shared by the projects.
                lazy = run_suite(src, project, pythonpath, mode, WORK / "cache-run" / VENV_TAG)
            ok, entry["modes"][mode] = compare(name, project.version, eager, lazy, mode)
            bad += not ok
        results[name] = entry
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
