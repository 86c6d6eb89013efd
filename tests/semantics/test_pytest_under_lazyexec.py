"""This interpreter's own pytest (from PyPI: 8.x and later install an import
hook that calls into _pytest.pathlib on every import) run on a small suite,
eagerly and with everything lazy (mode "all"): the same outcome."""

import os
import subprocess
import sys


def test_pytest_suite_same_eagerly_and_lazily(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import json, pytest\n"
        "def test_ok():\n    assert json.loads('[1]') == [1]\n"
        "def test_rewritten_assert():\n    x = 2\n    assert x + 1 == 4\n"
        "@pytest.mark.parametrize('n', [1, 2])\ndef test_param(n):\n    assert n\n")
    (tmp_path / "lazy.toml").write_text("mode = 'all'\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")}
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_sample.py"]

    def outcome(r):
        lines = [line for line in r.stdout.splitlines() if " in " not in line]  # drop the timing line
        return r.returncode, [line for line in lines if "assert" in line or "passed" in line or "failed" in line]

    eager = subprocess.run([sys.executable, *args], cwd=tmp_path, env=base, capture_output=True, text=True,
                           timeout=300)
    lazy_env = {**base, "LAZYEXEC_CONFIG": str(tmp_path / "lazy.toml"), "LAZYEXEC_BUILD": "inline",
                "LAZYEXEC_PROFILE": "0"}
    lazy = subprocess.run([sys.executable, "-m", "lazyexec", "run", *args], cwd=tmp_path, env=lazy_env,
                          capture_output=True, text=True, timeout=600)
    assert eager.returncode == 1 and "assert (2 + 1) == 4" in eager.stdout  # rewriting really ran
    assert outcome(lazy) == outcome(eager), lazy.stdout[-3000:] + lazy.stderr[-3000:]
