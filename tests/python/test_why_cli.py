"""`lazyexec why`: each module a run loads with the chain that caused it."""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAM = {
    "pkg/__init__.py": "",
    "pkg/a.py": "import pkg.b\ndef use():\n    return pkg.b.VALUE\n",
    "pkg/b.py": "VALUE = 1\n",
    # (its fallback binds a name the import does not: the guard stays eager, pkg.d loads at import)
    "pkg/c.py": "try:\n    import pkg.d\nexcept ImportError:\n    d = None\nprint('side effect')\ndef helper():\n    return 1\n"
                "class Helper:\n    pass\n",  # (a class: a module of small functions alone loads eagerly)
    "pkg/d.py": "X = 2\n",
    "pkg/e.py": "Y = 3\n",
    "main.py": "import pkg.a\nimport pkg.c\ndef later():\n    import pkg.e\npkg.a.use()\nlater()\n",
    "pyproject.toml": '[tool.lazyexec]\nmode = "all"\ninclude = ["pkg*"]\n',
}
# Artifacts are built inline and written, and no usage profile makes a
# module used whole eager next time: the recorded run is lazy.
WARM = {"PYTHONDONTWRITEBYTECODE": "", "LAZYEXEC_BUILD": "inline", "LAZYEXEC_PROFILE": "0"}


def make(tmp_path):
    for name, text in PROGRAM.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def record(tmp_path, run_cli, *extra):
    make(tmp_path)
    assert run_cli("run", "main.py", env=WARM).returncode == 0
    r = run_cli("why", "--json", *extra, "--", "main.py", env=WARM)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r


def test_each_cause_is_classified_with_its_chain(tmp_path, run_cli):
    report, r = record(tmp_path, run_cli)
    assert "side effect" in r.stderr  # the program's output goes to stderr, the report to stdout
    mods = {m["module"]: m for m in report["modules"]}
    assert {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.e"} <= set(mods)
    # pkg.b: the lazy `import pkg.b` of pkg.a ran on the first use of `pkg`, in use(), called by main.py:5.
    b = mods["pkg.b"]["cause"]
    assert (b["kind"], b["module"], b["trigger"]) == ("unit", "pkg.a", "pkg")
    assert b["where"].endswith("a.py:1")
    # (the script's code carries its absolute path, as with `python main.py`)
    assert mods["pkg.b"]["chain"][0].split(" ")[0].endswith("/main.py:5")
    assert "in use()" in mods["pkg.b"]["chain"][1]
    # pkg.d: an eager statement (a try statement) of a lazily loaded module.
    d = mods["pkg.d"]["cause"]
    assert (d["kind"], d["module"], d["verdict"]) == ("top", "pkg.c", "eager")
    assert d["reason"] == "eager statement: compound-statement" and d["where"].endswith("c.py:2")
    # pkg.e: an import inside a function.
    e = mods["pkg.e"]["cause"]
    assert (e["kind"], e["function"]) == ("call", "later") and e["where"].endswith("/main.py:4")
    assert mods["pkg.a"]["cause"]["reason"] == "the program's main script (runs eagerly)"
    assert mods["pkg.a"]["lazy"] and mods["pkg.c"]["lazy"]
    reasons = {s["reason"]: s["modules"] for s in report["by_reason"]}
    assert reasons["lazy unit materialized on first use of a name"] >= 1
    assert all(m["seconds"] >= m["self_seconds"] >= 0 for m in report["modules"])


def test_text_and_picture(tmp_path, run_cli):
    make(tmp_path)
    assert run_cli("run", "main.py", env=WARM).returncode == 0
    r = run_cli("why", "--html", tmp_path / "why.html", "--", "main.py", env=WARM)
    assert r.returncode == 0, r.stderr
    assert "By reason" in r.stdout and "lazy unit" in r.stdout
    assert "first use of `pkg`" in r.stdout
    page = (tmp_path / "why.html").read_text()
    assert page.startswith("<!doctype html>") and "pkg.b" in page and "<details" in page


def test_record_from_an_environment_switch_then_explained(tmp_path, run_cli):
    make(tmp_path)
    out = tmp_path / "rec.json"
    r = run_cli("run", "main.py", env={**WARM, "LAZYEXEC_WHY": str(out)})
    assert r.returncode == 0, r.stderr
    raw = json.loads(out.read_text())
    assert raw["schema"] == 1 and any(m["module"] == "pkg.b" for m in raw["modules"])
    r = run_cli("why", "--json", "--load", out)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["loaded"] == len(raw["modules"])


def test_bad_record_gives_a_clear_error(tmp_path, run_cli):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    r = run_cli("why", "--load", bad)
    assert r.returncode == 2 and "not a lazyexec why record" in r.stderr
    r = run_cli("why")
    assert r.returncode == 2 and "usage" in r.stderr


def test_switch_off_patches_nothing(tmp_path):
    code = ("import sys, lazyexec; before = sys.modules['_frozen_importlib']._load_unlocked; lazyexec.activate(); "
            "assert sys.modules['_frozen_importlib']._load_unlocked is before; "
            "assert 'lazyexec.runtime.why' not in sys.modules; print('ok')")
    import os

    env = {k: v for k, v in os.environ.items() if k != "LAZYEXEC_WHY"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.stdout.strip() == "ok", r.stderr


FORCED = {
    "fpkg/__init__.py": "",
    "fpkg/dep.py": "VALUE = 1\n",
    # `import fpkg.dep` is lazy; the eager decorated class reads `fpkg` when
    # it is defined, so the plan forces the import just before it.
    "fpkg/mod.py": ("import fpkg.dep\n\n"
                    "def register(cls):\n    print('registered', cls.__name__)\n    return cls\n\n"
                    "@register\nclass Uses:\n    value = fpkg.dep.VALUE\n"),
    "fmain.py": "import fpkg.mod\n",
    "pyproject.toml": '[tool.lazyexec]\nmode = "all"\ninclude = ["fpkg*"]\n',
}


def test_a_forced_unit_names_the_eager_statement_it_ran_before(tmp_path, run_cli):
    for name, text in FORCED.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    assert run_cli("run", "fmain.py", env=WARM).returncode == 0
    r = run_cli("why", "--json", "--", "fmain.py", env=WARM)
    assert r.returncode == 0, r.stderr
    mods = {m["module"]: m for m in json.loads(r.stdout)["modules"]}
    c = mods["fpkg.dep"]["cause"]
    assert (c["kind"], c["module"], c["trigger"]) == ("unit", "fpkg.mod", "")
    assert c["reason"] == "lazy unit forced before an eager statement: impure-decorator"
    assert c["forced_before"]["line"] == 7 and c["forced_before"]["code"] == "impure-decorator"
    assert "forced before the eager statement at line 7" in c["message"]
    r = run_cli("why", "--", "fmain.py", env=WARM)
    assert "lazy unit forced before an eager statement: impure-decorator" in r.stdout


def test_a_module_loaded_whole_says_why(tmp_path, run_cli):
    # pkg.a's `import pkg.b` runs because pkg.a itself loads whole: without an
    # artifact yet (the cold path), when policy leaves it to the normal
    # machinery (`never`), or when the usage profile saw it used whole.
    make(tmp_path)
    (tmp_path / "pkg/a.py").write_text("import pkg.b\ndef use():\n    return pkg.b.VALUE\n"
                                       "def other():\n    return 2\n")

    def cause(env, config=None):
        if config is not None:
            (tmp_path / "pyproject.toml").write_text(config)
        r = run_cli("why", "--json", "--", "main.py", env=env)
        assert r.returncode == 0, r.stderr
        mods = {m["module"]: m for m in json.loads(r.stdout)["modules"]}
        assert mods["pkg.b"]["cause"]["module"] == "pkg.a"
        return mods["pkg.b"]["cause"]["reason"]

    cold = {"PYTHONDONTWRITEBYTECODE": "", "LAZYEXEC_BUILD": "background", "LAZYEXEC_PROFILE": "0",
            "LAZYEXEC_CACHE_DIR": str(tmp_path / "cache-cold")}
    assert cause(cold).startswith("module loaded eagerly: no artifact yet")
    excluded = dict(WARM, LAZYEXEC_CACHE_DIR=str(tmp_path / "cache-excluded"))
    assert cause(excluded, PROGRAM["pyproject.toml"] + 'exclude = ["pkg.a"]\n').startswith(
        "module loaded eagerly: not claimed by policy")
    # (the never-lazy set is a module-wide reason the analysis gives itself)
    assert cause(excluded, PROGRAM["pyproject.toml"] + 'never = ["pkg.a"]\n') == \
        "module eager as a whole: never-lazy-module"
    # The usage profile: pkg.a used whole (both functions called) in runs
    # that learn it; the next run loads it whole.
    (tmp_path / "pyproject.toml").write_text(PROGRAM["pyproject.toml"])
    (tmp_path / "main.py").write_text("import pkg.a\npkg.a.use()\npkg.a.other()\n")
    learn = {"PYTHONDONTWRITEBYTECODE": "", "LAZYEXEC_BUILD": "inline", "LAZYEXEC_CACHE_DIR": str(tmp_path / "cache-p")}
    for _ in range(2):
        assert run_cli("run", "main.py", env=learn).returncode == 0
    assert cause(learn).startswith("module loaded eagerly: the usage profile saw")
