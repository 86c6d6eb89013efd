"""`lazyexec explain`: output, JSON schema, and bad input handled with a clear error."""

from __future__ import annotations

import json



def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_text_output_lists_every_statement_with_verdict_and_reason(tmp_path, run_cli):
    src = write(tmp_path / "mod.py", "import json\nX = json.dumps(1)\nprint(X)\n")
    r = run_cli("explain", src)
    assert r.returncode == 0, r.stderr
    assert "3 units, 1 lazy, 2 eager" in r.stdout
    assert "lazy: import deferred" in r.stdout
    assert "eager: calls json.dumps() at line 2 (json.dumps is not known pure)" in r.stdout
    assert "eager: expression statement runs for its effect" in r.stdout


def test_json_output_follows_the_documented_schema(tmp_path, run_cli):
    src = write(tmp_path / "mod.py", "A = 1\nB = A + 1\ndel A\n")
    r = run_cli("explain", src, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["schema"] == 1
    assert data["module"] == "mod"
    assert [u["verdict"] for u in data["units"]] == ["lazy", "lazy", "eager"]
    unit = data["units"][1]
    for key in ("id", "kind", "line", "end_line", "col", "lines", "statements", "part", "depth", "binds",
                "imports", "def_reads", "call_reads", "global_writes", "verdict", "reason", "message", "source"):
        assert key in unit, key
    assert unit["def_reads"] == ["A"]
    assert unit["source"] == "B = A + 1"
    assert data["forces"] == [{"before": 2, "units": [0, 1]}]


def test_module_name_target_without_importing_it(run_cli):
    r = run_cli("explain", "json.decoder", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["module"] == "json.decoder"
    assert data["file"].endswith("json/decoder.py")


def test_package_submodule_relative_imports_are_resolved(tmp_path, run_cli):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    write(pkg / "__init__.py", "")
    src = write(pkg / "mod.py", "from . import sibling\nfrom .other import x\n")
    data = json.loads(run_cli("explain", src, "--json").stdout)
    assert data["module"] == "pkg.mod"
    assert data["units"][0]["imports"] == ["pkg", "pkg.sibling"]
    assert data["units"][1]["imports"] == ["pkg.other", "pkg.other.x"]


def test_syntax_error_names_file_and_line_without_traceback(tmp_path, run_cli):
    src = write(tmp_path / "bad.py", "x = 1\ndef f(:\n    pass\n")
    r = run_cli("explain", src)
    assert r.returncode == 2
    assert r.stderr.startswith(f"{src}:2: SyntaxError:"), r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_missing_file_and_unknown_module(tmp_path, run_cli):
    r = run_cli("explain", tmp_path / "nope.py")
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("explain", "no_such_module_anywhere_xyz")
    assert r.returncode == 2 and "no module named 'no_such_module_anywhere_xyz'" in r.stderr


def test_null_bytes_and_bad_encoding_are_clear_errors(tmp_path, run_cli):
    src = tmp_path / "nul.py"
    src.write_bytes(b"x = 1\x00\n")
    r = run_cli("explain", src)
    assert r.returncode == 2 and "Traceback" not in r.stderr and str(src) in r.stderr
    bad = tmp_path / "enc.py"
    bad.write_bytes(b"# -*- coding: no-such-codec -*-\nx = 1\n")
    r = run_cli("explain", bad)
    assert r.returncode == 2 and "Traceback" not in r.stderr and str(bad) in r.stderr


def test_encoding_cookie_is_honoured(tmp_path, run_cli):
    src = write(tmp_path / "latin.py", "# -*- coding: latin-1 -*-\nNAME = 'café'\n", encoding="latin-1")
    r = run_cli("explain", src, "--json")
    assert r.returncode == 0, r.stderr
    unit = json.loads(r.stdout)["units"][0]
    assert unit["verdict"] == "lazy"
    assert unit["source"] == "NAME = 'café'"


def test_empty_file(tmp_path, run_cli):
    src = write(tmp_path / "empty.py", "")
    r = run_cli("explain", src, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["units"] == []


def test_one_megabyte_generated_module(tmp_path, run_cli):
    parts = []
    i = 0
    while sum(map(len, parts)) < 1_000_000:
        parts.append(f"def f{i}(a, b={i}):\n    return a + b + C{i % 7}\nC{i} = ({i}, 'x' * {i % 13})\n")
        i += 1
    src = write(tmp_path / "big.py", "".join(parts))
    r = run_cli("explain", src, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert len(data["units"]) == 2 * i
    # C0..C6 are read by functions only (call time): every unit stays lazy.
    assert all(u["verdict"] == "lazy" for u in data["units"])


def test_bad_configuration_is_reported_with_its_file(tmp_path, run_cli):
    write(tmp_path / "pyproject.toml", "[tool.lazyexec]\nmode = 'everything'\n")
    src = write(tmp_path / "m.py", "x = 1\n")
    r = run_cli("explain", src)
    assert r.returncode == 2
    assert "pyproject.toml: mode must be one of 'marked', 'all'" in r.stderr
    write(tmp_path / "pyproject.toml", "[tool.lazyexec]\npuer = ['x']\n")
    r = run_cli("explain", src)
    assert r.returncode == 2 and "unknown [tool.lazyexec] key(s): puer" in r.stderr
    write(tmp_path / "pyproject.toml", "[tool.lazyexec]\ndefer = 'functions'\n")
    r = run_cli("explain", src)
    assert r.returncode == 2 and "pyproject.toml: defer must be one of 'all', 'imports'" in r.stderr


def test_configuration_extends_the_knowledge_base(tmp_path, run_cli):
    src = write(tmp_path / "m.py", "import mylib\nX = mylib.make()\n")
    assert json.loads(run_cli("explain", src, "--json").stdout)["units"][1]["verdict"] == "eager"
    write(tmp_path / "pyproject.toml", "[tool.lazyexec]\npure = ['mylib.make']\n")
    assert json.loads(run_cli("explain", src, "--json").stdout)["units"][1]["verdict"] == "lazy"
    conf = write(tmp_path / "other.toml", "pure = ['mylib.*']\neager_imports = ['mylib']\n")
    data = json.loads(run_cli("explain", src, "--json", env={"LAZYEXEC_CONFIG": str(conf)}).stdout)
    assert data["units"][0]["reason"] == "never-lazy-import"
    assert data["units"][1]["verdict"] == "lazy"


def test_summary_census_over_a_tree(tmp_path, run_cli):
    write(tmp_path / "a.py", "import os\ndef f(): return os\nprint(1)\n")
    write(tmp_path / "b.py", "class C(object): pass\n")
    write(tmp_path / "broken.py", "def (:\n")
    r = run_cli("explain", "--summary", tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["modules"] == 2
    assert data["units"] == 4
    assert data["lazy"] == 3
    assert data["by_kind"]["def"] == {"units": 1, "lazy": 1, "lazy_percent": 100.0}
    assert data["eager_reasons"] == [["expression-statement", 1]]
    assert [f["file"] for f in data["failures"]] == [str(tmp_path / "broken.py")]
    text = run_cli("explain", "--summary", tmp_path).stdout
    assert "files that failed to parse: 1" in text and "most common reasons for eager" in text


def test_usage_errors(run_cli):
    assert run_cli("explain").returncode == 2
    assert run_cli("explain", "--stdlib").returncode == 2
    assert run_cli("explain", "--summary").returncode == 2
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("lazyexec ")


def test_settle_keys_are_checked(tmp_path, run_cli):
    src = write(tmp_path / "m.py", "x = 1\n")
    write(tmp_path / "pyproject.toml", "[tool.lazyexec]\nsettle_complete = 'yes'\n")
    r = run_cli("explain", src)
    assert r.returncode == 2 and "settle_complete must be true or false" in r.stderr
    write(tmp_path / "pyproject.toml", "[tool.lazyexec]\nsettle_threshold = -5\n")
    r = run_cli("explain", src)
    assert r.returncode == 2 and "settle_threshold must be a non-negative integer" in r.stderr


def test_parsed_configuration_is_cached_and_follows_edits(tmp_path):
    # Warm starts read the parsed table from a marshal cache instead of
    # parsing again; an edit (new mtime/size) is seen at once. The file is
    # read by the extension's TOML reader: tomllib is not loaded at all.
    import os
    import subprocess
    import sys

    conf = write(tmp_path / "c.toml", "pure = ['a.b']\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(LAZYEXEC_CONFIG=str(conf), XDG_CACHE_HOME=str(tmp_path / "cache"))
    probe = "import sys, lazyexec.config as c; print(c.load().pure, bool({'tomllib', 'tomli'} & set(sys.modules)))"

    def cache_stamp():
        found = list((tmp_path / "cache").rglob("config-*.marshal"))
        assert len(found) == 1, found
        return found[0].stat().st_mtime_ns

    first = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert first.stdout == "('a.b',) False\n", first.stderr
    written = cache_stamp()
    second = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert second.stdout == "('a.b',) False\n", second.stderr
    assert cache_stamp() == written  # read, not written again
    write(tmp_path / "c.toml", "pure = ['a.b', 'c.d']\n")
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert r.stdout == "('a.b', 'c.d') False\n", r.stderr
    assert cache_stamp() != written


def test_compile_stores_artifacts_ahead_of_time(tmp_path, run_cli):
    import os
    import subprocess
    import sys

    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    write(tree / "pkg" / "__init__.py", "__lazy_module__ = True\nfrom .mod import f\n__all__ = ['f']\n")
    write(tree / "pkg" / "mod.py", "__lazy_module__ = True\nimport json\ndef f():\n    return json.dumps(1)\n")
    write(tree / "plain.py", "X = 1\n")  # no marker: mode "marked" skips it, as the import hook would
    write(tree / "broken.py", "__lazy_module__ = True\ndef (:\n")
    # Written even with byte-code writing off, as compileall does.
    r = run_cli("compile", tree, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "lazyexec compile: 2 stored, 0 nothing to defer, 1 skipped, 1 unreadable or invalid"
    stored = sorted(p.name.split(".")[0] for p in tree.rglob("*.lzx"))
    assert stored == ["__init__", "mod"]
    before = {p: p.stat().st_mtime_ns for p in tree.rglob("*.lzx")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")}
    probe = "import lazyexec; lazyexec.activate(); import pkg; print(pkg.f(), lazyexec.is_pending(pkg.mod, 'json'))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=tree, env=env, capture_output=True, text=True)
    assert out.stdout == "1 False\n", out.stderr
    assert {p: p.stat().st_mtime_ns for p in tree.rglob("*.lzx")} == before  # used, not rebuilt
    assert run_cli("compile", tmp_path / "missing").returncode == 2


def test_compile_in_worker_processes_stores_what_one_process_stores(tmp_path, run_cli):
    # `-j N`, as compileall's: the same counts and the same artifacts.
    import struct

    import lazyexec.store as store

    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    write(tree / "pkg" / "__init__.py", "__lazy_module__ = True\nfrom .mod import f\n__all__ = ['f']\n")
    for i in range(6):
        write(tree / "pkg" / f"m{i}.py", f"__lazy_module__ = True\nimport json\nfrom . import mod\n"
                                         f"def g{i}():\n    return json.dumps({i})\n")
    write(tree / "pkg" / "mod.py", "__lazy_module__ = True\nimport json\ndef f():\n    return json.dumps(1)\n")
    write(tree / "broken.py", "__lazy_module__ = True\ndef (:\n")
    size = struct.calcsize(store.HEADER_FORMAT)
    runs = []
    for jobs in ("1", "2"):
        r = run_cli("compile", "-j", jobs, tree, env={"PYTHONDONTWRITEBYTECODE": "1"})
        assert r.returncode == 0, r.stderr
        assert r.stdout == "lazyexec compile: 8 stored, 0 nothing to defer, 0 skipped, 1 unreadable or invalid\n"
        found = {p.relative_to(tree): p.read_bytes()[size:] for p in tree.rglob("*.lzx")}
        for p in tree.rglob("*.lzx"):
            p.unlink()
        runs.append(found)
    assert len(runs[0]) == 8 and runs[0] == runs[1]
    assert run_cli("compile", "-j", "-1", tree).returncode == 2


def test_package_reading_its_own_submodule_attribute_at_definition_time(tmp_path, run_cli):
    # `from . import sub` in a package's __init__ where sub.py exists binds the
    # submodule: reading its attributes is reading a module's (pure).
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "sub.py").write_text("class Meta:\n    pass\n")
    (pkg / "__init__.py").write_text(
        "from . import sub, missing\n"
        "def meta() -> sub.Meta:\n    return None\n"
        "def other() -> missing.Meta:\n    return None\n")
    r = run_cli("explain", "--json", pkg / "__init__.py", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    verdicts = {u["line"]: (u["verdict"], u["reason"]) for u in json.loads(r.stdout)["units"] if u["kind"] == "def"}
    assert verdicts[2] == ("lazy", "def")
    assert verdicts[4] == ("eager", "impure-attribute")  # no pkg/missing.py: an attribute of pkg, unknown
