"""The pattern cache (runtime/patterns.cpp, store/patterns.py): regular
expressions a program compiled are rebuilt from its table on later starts.
Differential: the same program eagerly and lazily, cold and warm, observes
the same patterns, matches, warnings, errors and tracebacks; lazy-only: the
warm start answered from the table."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys

import pytest

from test_boot import run, venv  # noqa: F401 - the module-scoped venv fixture
from test_build_policy import wait_builder_done

from lazyexec.store import patterns

PROGRAM = r'''
import re, sys, warnings
cases = [
    (r"(?P<word>\w+)\s+(\d+)", 0), (rb"[a-f0-9]{2,}", 0), (r"(?i)stra\u00dfe", 0), (r"a.b", re.S | re.M),
    (r"x  # comment\n y", re.X), (r"(?P<a>x)(?P=a)|(?:y)(z)?", 0), (r"[^\W\d_]+", re.I | re.A),
    (rb"(?L)\w+", 0), (r"\bfoo\b", re.I), (r"^$", 0), ("", 0),
]
for p, f in cases:
    c = re.compile(p, f)
    text = "STRASSE Stra\u00dfe word 12 a\nb xx zz foo" if isinstance(p, str) else b"zz0af word"
    m = c.search(text)
    print(repr(c), c.flags, c.groups, dict(c.groupindex), m and m.groups(), c.findall(text))
print(re.sub(r"(\d+)", r"<\1>", "a1b22"), re.split(r"[,;]", "a,b;c"), re.fullmatch(r"\w+", "abc").span())
scanner = re.Scanner([(r"\d+", lambda s, t: int(t)), (r"\s+", None)])
print(scanner.scan("1 22 333"))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    re.compile("[[a]")
    print([(w.category.__name__, str(w.message)) for w in caught])
try:
    re.compile("(?P<n>a)(?P<n>b)")
except re.error as e:
    print("error", e, e.pos)
re.compile(r"a|b", re.DEBUG)
compiler = getattr(re, "_compiler", None) or sys.modules["sre_compile"]
print(compiler.compile.__name__, compiler.compile.__module__)
print("stats", getattr(compiler.compile, "_lazyexec_patterns", None), file=sys.stderr)
'''


def stats(stderr: str):
    line = [x for x in stderr.splitlines() if x.startswith("stats ")]
    assert line, stderr
    return eval(line[-1][len("stats "):])


def without_stats(stderr: str) -> list:
    return [x for x in stderr.splitlines() if not x.startswith("stats ")]


@pytest.mark.parametrize("mode", ["marked", "all"])
def test_a_program_compiles_the_same_patterns_cold_and_warm(venv, tmp_path, mode):  # noqa: F811
    """In mode "all" re and its compiler load lazily themselves."""
    if mode == "all":
        (tmp_path / "pyproject.toml").write_text('[tool.lazyexec]\nmode = "all"\n')
    cache = tmp_path / "cache"
    eager = run(venv, tmp_path, PROGRAM, LAZYEXEC="0")
    assert eager.returncode == 0, eager.stderr
    assert stats(eager.stderr) is None
    cold = run(venv, tmp_path, PROGRAM)
    wait_builder_done(cache)
    assert list((cache / "profiles").glob("*.patterns"))
    warm = run(venv, tmp_path, PROGRAM)
    for r in (cold, warm):
        assert (r.returncode, r.stdout) == (0, eager.stdout), r.stderr
        assert without_stats(r.stderr) == without_stats(eager.stderr)
    assert stats(cold.stderr)["hits"] == 0 and stats(cold.stderr)["misses"] > 10
    # Every pattern that compiles cleanly came from the table; the one that
    # warns is compiled again (and warns), the DEBUG one and the error too.
    warm_stats = stats(warm.stderr)
    assert warm_stats["hits"] > 10 and warm_stats["misses"] == 0, warm.stderr
    assert "FutureWarning" in warm.stdout and "error redefinition of group name" in warm.stdout


@pytest.mark.parametrize("activation", ["environment", "run", "python layer"])
def test_an_image_serving_re_s_compiler_still_answers_from_the_table(venv, tmp_path, activation):  # noqa: F811
    """An image holding re and logging (LAZYEXEC_IMAGE with the .pth start,
    or `lazyexec run --image`, activated in C++ or, when a recording tool is
    on, by the Python layer): the image's finder, ahead of lazyexec's,
    serves them, and still runs lazyexec's patch points (the pattern
    cache's, logging's), so a warm start compiles from the table as without
    an image."""
    names = ["re", "logging"] + (["re._compiler", "re._parser", "re._constants", "re._casefix"]
                                 if sys.version_info >= (3, 11) else ["sre_compile", "sre_parse", "sre_constants"])
    image = tmp_path / "re.lzi"
    built = subprocess.run([str(venv), "-m", "lazyexec", "image", "build", "-q", "-o", str(image), *names],
                           cwd=tmp_path, capture_output=True, text=True,
                           env={**{k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")},
                                "LAZYEXEC_CACHE_DIR": str(tmp_path / "cache")})
    assert built.returncode == 0, built.stderr
    probe = PROGRAM + (
        "\nimport logging\n"
        "print('served', type(compiler.__loader__).__name__, type(logging.__loader__).__name__, file=sys.stderr)\n")
    eager = run(venv, tmp_path, probe, LAZYEXEC="0")
    assert eager.returncode == 0, eager.stderr
    cache = tmp_path / "cache"
    (tmp_path / "probe.py").write_text(probe)

    def lazily():
        if activation != "run":
            stats_on = {"LAZYEXEC_STATS": "1"} if activation == "python layer" else {}
            return run(venv, tmp_path, probe, LAZYEXEC_IMAGE=str(image), **stats_on)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") and k != "PYTHONDONTWRITEBYTECODE"}
        return subprocess.run([str(venv), "-m", "lazyexec", "run", "--image", str(image), "probe.py"], cwd=tmp_path,
                              env={**env, "LAZYEXEC_CACHE_DIR": str(cache)}, capture_output=True, text=True,
                              timeout=120)

    cold = lazily()
    wait_builder_done(cache)
    warm = lazily()
    for r in (cold, warm):
        assert (r.returncode, r.stdout) == (0, eager.stdout), r.stderr
        assert "served ImageLoader ImageLoader" in r.stderr
    assert stats(cold.stderr)["misses"] > 10
    warm_stats = stats(warm.stderr)
    assert warm_stats["hits"] > 10 and warm_stats["misses"] == 0, warm.stderr


def test_a_bad_pattern_s_traceback_is_the_eager_one(venv, tmp_path):  # noqa: F811
    program = "import re\nre.compile('ok')\nre.compile('(')\n"
    eager = run(venv, tmp_path, program, LAZYEXEC="0")
    run(venv, tmp_path, program)
    wait_builder_done(tmp_path / "cache")
    warm = run(venv, tmp_path, program)
    assert eager.returncode == warm.returncode == 1
    assert warm.stderr == eager.stderr
    assert "missing ), unterminated subpattern" in eager.stderr


@pytest.mark.parametrize("damage", ["garbage", "foreign", "bad entry", "flipped literal", "older lazyexec"])
def test_a_damaged_or_foreign_table_loses_nothing(venv, tmp_path, damage):  # noqa: F811
    cache = tmp_path / "cache"
    eager = run(venv, tmp_path, PROGRAM, LAZYEXEC="0")
    run(venv, tmp_path, PROGRAM)
    wait_builder_done(cache)
    [table] = (cache / "profiles").glob("*.patterns")
    raw = table.read_bytes()
    data = patterns.unpack(raw)
    assert data is not None and data["version"] == patterns.VERSION
    if damage == "garbage":
        table.write_bytes(b"\x00garbage")
    elif damage == "foreign":
        data["python"] = "2.7.18 (another interpreter)"
        table.write_bytes(patterns.pack(data))
    elif damage == "bad entry":  # every entry's code cut short: _sre refuses it, the compiler compiles
        data["patterns"] = {k: (v[0], v[1][:-4] + b"\xff\xff\xff\x7f", *v[2:]) if v else v
                            for k, v in data["patterns"].items()}
        table.write_bytes(patterns.pack(data))
    elif damage == "flipped literal":
        # One bit of one code word: it may still compile, into a pattern that
        # matches other text. The check refuses the whole table.
        key, entry = next((k, v) for k, v in data["patterns"].items() if v and len(v[1]) >= 16)
        at = raw.index(entry[1]) + 12
        table.write_bytes(raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1:])
    else:  # version 1: no check, marshal data from the first byte
        data["version"] = 1
        table.write_bytes(marshal.dumps(data))
    damaged = run(venv, tmp_path, PROGRAM)
    assert (damaged.returncode, damaged.stdout) == (0, eager.stdout), damaged.stderr
    assert stats(damaged.stderr)["hits"] == 0
    warnings = [x for x in damaged.stderr.splitlines() if "pattern cache" in x]
    assert len(warnings) == (1 if damage in ("garbage", "flipped literal") else 0), damaged.stderr
    wait_builder_done(cache)
    again = run(venv, tmp_path, PROGRAM)
    assert (again.returncode, again.stdout) == (0, eager.stdout), again.stderr
    # Rewritten by the builder from the patterns the damaged run compiled.
    assert stats(again.stderr)["hits"] > 10 and "pattern cache" not in again.stderr


def test_the_cache_is_off_without_a_usage_profile_or_when_asked(venv, tmp_path):  # noqa: F811
    probe = "import re, types; print(type(re.compile.__globals__['_compiler'].compile).__name__)" \
        if sys.version_info >= (3, 11) else "import re, sre_compile; print(type(sre_compile.compile).__name__)"
    assert run(venv, tmp_path, probe).stdout == "PatternCache\n"
    assert run(venv, tmp_path, probe, LAZYEXEC_PATTERNS="0").stdout == "function\n"
    assert run(venv, tmp_path, probe, LAZYEXEC_PROFILE="0").stdout == "function\n"


def test_the_builder_keeps_only_what_rebuilds_the_compiler_s_pattern():
    import re

    kept = patterns.entry(r"(?P<a>\w)(b)?", int(re.I))
    flags, code, groups, groupindex, indexgroup = kept
    import _sre

    rebuilt = _sre.compile(r"(?P<a>\w)(b)?", flags, list(memoryview(code).cast("I")), groups, dict(groupindex),
                           indexgroup)
    assert rebuilt == re.compile(r"(?P<a>\w)(b)?", re.I) and rebuilt.groupindex == {"a": 1}
    assert patterns.entry("[[a]", 0) is None  # warns at compile time
    assert patterns.entry("(", 0) is None  # an error
    assert patterns.entry("a", re.DEBUG) is None  # prints
    assert patterns.entry(42, 0) is None


def test_a_job_of_another_interpreter_writes_nothing(tmp_path):
    path = tmp_path / "p.patterns"
    assert patterns.build({"version": 3, "python": "other", "patterns_file": str(path), "patterns": [("a", 0)]}) == 0
    assert not path.exists()
    assert patterns.build({"version": 3, "python": sys.version, "patterns_file": str(path),
                           "patterns": [(False, 0, "a"), (False, 0, "[[a]"), (True, 0, "a")]}) == 2
    table = patterns.read(str(path))
    assert table[(False, 0, "[[a]")] is None and table[(False, 0, "a")] is not None
    assert (True, 0, "a") not in table  # a key whose kind is not its pattern's: dropped


def test_str_and_bytes_patterns_of_equal_hash_are_never_compared(venv, tmp_path):  # noqa: F811
    """hash("ab+") == hash(b"ab+"): under -b comparing them warns (a line on
    stderr), under -bb it raises. The table's keys put the kind first, as
    re's own cache does."""
    program = "import re; print(re.compile('ab+').pattern, repr(re.compile(b'ab+').pattern))"
    eager = run(venv, tmp_path, program, "-b", LAZYEXEC="0")
    run(venv, tmp_path, program, "-b")
    wait_builder_done(tmp_path / "cache")
    warm = run(venv, tmp_path, program, "-b")
    assert (warm.returncode, warm.stdout, warm.stderr) == (0, eager.stdout, eager.stderr) == (0, "ab+ b'ab+'\n", "")
