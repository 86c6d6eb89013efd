"""knowledge.toml's never_lazy list as activation reads it without a TOML
parser (analyze/knowledge.cpp never_lazy_entries): the same list tomllib
reads, or None (the caller parses) for anything outside its simple form."""

import os
import sys

import pytest

from lazyexec import _lazyexec
from lazyexec.importer import KNOWLEDGE_FILE

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli")


def test_the_shipped_knowledge_base_reads_as_tomllib_reads_it():
    with open(KNOWLEDGE_FILE, "rb") as f:
        raw = f.read()
    entries = _lazyexec.never_lazy_entries(raw)
    assert entries is not None and len(entries) > 10
    assert entries == tomllib.loads(raw.decode())["never_lazy"]


@pytest.mark.parametrize("text", [
    'version = 1\nnever_lazy = ["a", "b.c"]\n[x]\ny = 1\n',
    "never_lazy = [\n  'a',  # why\n  # more\n  \"b\",\n]\n",
    'never_lazy=["a"] # trailing\n',
    "never_lazy = []\n",
])
def test_simple_forms_read_as_tomllib(text):
    assert _lazyexec.never_lazy_entries(text.encode()) == tomllib.loads(text)["never_lazy"]


@pytest.mark.parametrize("text", [
    '[table]\nnever_lazy = ["a"]\n',          # not the top-level key
    'never_lazy = ["a\\u0062"]\n',            # an escape: the parser's job
    'never_lazy = ["a" "b"]\n',               # no comma (invalid TOML)
    'never_lazy = ["a"] x = 1\n',             # more on the line
    'never_lazy = """a"""\n',                 # not an array
    'never_lazy = ["""a"""]\n',               # a multi-line string
    'never_lazy_extra = ["a"]\n',
    'never_lazy = ["a",\n',                   # unterminated
    'x = 1\n',
])
def test_anything_else_is_left_to_the_parser(text):
    assert _lazyexec.never_lazy_entries(text.encode()) is None


def test_the_booted_cache_equals_the_python_layers(tmp_path):
    """A first start after an install (no never-lazy cache) activates in C++
    and writes the cache the Python layer would have written."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")}
    booted, python = tmp_path / "booted", tmp_path / "python"
    code = ("import sys; from lazyexec import _lazyexec_boot as b; "
            "print(b.boot() is not None, 'lazyexec.importer' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], env={**env, "LAZYEXEC_CACHE_DIR": str(booted)},
                       capture_output=True, text=True)
    assert r.stdout == "True False\n", r.stderr
    code = "from lazyexec import importer; importer._kb_never_lazy()"
    subprocess.run([sys.executable, "-c", code], env={**env, "LAZYEXEC_CACHE_DIR": str(python)}, check=True)
    [a] = booted.glob("never-lazy-*.marshal")
    [b] = python.glob("never-lazy-*.marshal")
    import marshal

    assert a.name == b.name and marshal.loads(a.read_bytes()) == marshal.loads(b.read_bytes())
