"""A configuration file that cannot be parsed (no TOML parser on a 3.10 without
tomli, for a file the extension's own reader leaves to tomllib: one with a
date) is a clear error that turns lazy loading off, never a traceback from the
.pth file at every start. Files the extension reads need no parser at all."""

import subprocess
import sys

import pytest

from lazyexec import config


def test_no_toml_parser_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tomllib", None)  # None in sys.modules: the import fails
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(config.ConfigError, match="no TOML parser"):
        config.toml_loads("mode = 'all'\nreleased = 2026-12-01\n", "/x/pyproject.toml")


def test_the_extensions_reader_needs_no_toml_parser(monkeypatch):
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    assert config.toml_loads("mode = 'all'\nnever = ['x.*']\n", "/x/pyproject.toml") == {"mode": "all", "never": ["x.*"]}


def test_activation_without_a_parser_warns_once_and_runs_eagerly(tmp_path):
    (tmp_path / "lazy.toml").write_text("mode = 'all'\nreleased = 2026-12-01\n")
    probe = ("import sys; sys.modules['tomllib'] = sys.modules['tomli'] = None; import lazyexec; "
             "print(lazyexec.activate() is None)")
    env = {"PATH": "/usr/bin:/bin", "LAZYEXEC_CONFIG": str(tmp_path / "lazy.toml"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "True\n", r.stderr
    assert r.stderr.count("RuntimeWarning: lazyexec:") == 1 and "no TOML parser" in r.stderr
