"""The import hook's one-call artifact lookup (`_lazyexec.load_plan`) finds
exactly what `store.load()` finds, at the same locations: beside the .pyc
(importlib's cache_from_source: PYTHONPYCACHEPREFIX, -O) or in the cache
directory, in the order byte-code writing decides; damaged artifacts are
reported, stale ones ignored."""

import os
import sys

import pytest

from lazyexec import _lazyexec, store

KEY = b"0123456789abcdef"
PLAN = store.Plan([(None, ("x",), (), "m.py:1", ())], [("run", compile("x = 1", "m.py", "exec"), 1)])


@pytest.fixture
def source(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("x = 1\n")
    return p


def lookup(path, cache, off=False):
    return _lazyexec.load_plan(str(path), KEY, store.PYTHON_MAGIC, store.FORMAT, str(cache), off)


def save_at(where, source):
    st = os.stat(source)
    data = store.encode(PLAN, st.st_mtime_ns, st.st_size, KEY)
    os.makedirs(os.path.dirname(where), exist_ok=True)
    with open(where, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("off", [False, True])
@pytest.mark.parametrize("where", ["near", "cache"])
def test_found_where_store_looks(source, tmp_path, monkeypatch, off, where):
    cache = tmp_path / "cache"
    monkeypatch.setenv("LAZYEXEC_CACHE_DIR", str(cache))
    monkeypatch.setattr(sys, "dont_write_bytecode", off)
    near, fallback = store.artifact_path(str(source), KEY), store.fallback_path(str(source), KEY)
    save_at(near if where == "near" else fallback, source)
    st = os.stat(source)
    mtime_ns, size, payload, problems = lookup(source, cache, off)
    assert (mtime_ns, size, problems) == (st.st_mtime_ns, st.st_size, [])
    assert payload is not None and payload[0] == PLAN.units
    assert store.load(str(source), st.st_mtime_ns, st.st_size, KEY).units == PLAN.units


def test_relative_source_path_names_the_same_cache_file(source, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("LAZYEXEC_CACHE_DIR", str(cache))
    save_at(store.fallback_path(str(source), KEY), source)  # keyed on the absolute path
    monkeypatch.chdir(tmp_path)
    assert lookup("m.py", cache, True)[2] is not None


def test_missing_stale_and_damaged(source, tmp_path):
    cache = tmp_path / "cache"
    assert lookup(tmp_path / "gone.py", cache) is None
    assert lookup(source, cache)[2:] == (None, [])
    near = store.artifact_path(str(source), KEY)
    save_at(near, source)
    source.write_text("x = 2  # changed: the artifact is stale\n")
    assert lookup(source, cache)[2:] == (None, [])
    with open(near, "r+b") as f:
        f.seek(0)
        f.write(b"JUNK")
    payload, problems = lookup(source, cache)[2:]
    assert payload is None and [p for p, _ in problems] == [near]


def test_pycache_prefix_is_honoured(source, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "prefix"))
    near = store.artifact_path(str(source), KEY)
    assert near.startswith(str(tmp_path / "prefix"))
    save_at(near, source)
    assert lookup(source, tmp_path / "cache")[2] is not None


CACHE_PATHS = ["/usr/lib/python3/x.py", "/a//b.py", "//root.py", "/top.py", "rel/mod.py", "mod.py", "./m.py",
               "/p/noext", "/p/.hidden", "/p/a.b.py", "/p/pkg/__init__.py", "/p/x.pyw", "/dir.d/é.py"]


def test_cache_from_source_is_importlibs():
    """The artifact reader names the .pyc beside which artifacts live as
    importlib does, in C++ (a Python call per module was 1% of a warm start)."""
    import importlib.util

    for path in CACHE_PATHS:
        assert _lazyexec.cache_from_source(path) == importlib.util.cache_from_source(path), path


@pytest.mark.parametrize("flags", [["-O"], ["-OO"], ["-X", "pycache_prefix=/tmp/prefix"]])
def test_cache_from_source_follows_optimize_and_the_prefix(flags):
    import subprocess

    # (importlib itself fails on some paths under a prefix: the same error.)
    probe = ("import sys, importlib.util; from lazyexec import _lazyexec\n"
             "def outcome(f, p):\n"
             "    try:\n        return f(p)\n"
             "    except Exception as e:\n        return type(e).__name__\n"
             f"paths = {CACHE_PATHS!r}\n"
             "print(all(outcome(_lazyexec.cache_from_source, p) == outcome(importlib.util.cache_from_source, p) "
             "for p in paths))")
    r = subprocess.run([sys.executable, *flags, "-c", probe], capture_output=True, text=True)
    assert r.stdout == "True\n", r.stderr
