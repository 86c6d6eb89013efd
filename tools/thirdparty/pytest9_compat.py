"""A pytest plugin for tools/thirdparty/run.py (`-p pytest9_compat`, flask
only): pytest 9 dropped `_pytest.monkeypatch.notset`, which flask 3.0.3's
conftest reads in a fixture every test uses (eagerly as lazily, 416 of 420
cases errored at setup). The name is given back, bound to the sentinel that
replaced it (`_pytest.compat.NOTSET`), so the suite runs as on pytest 8. The
same in every run, eager or lazy."""

import _pytest.monkeypatch

if not hasattr(_pytest.monkeypatch, "notset"):
    from _pytest.compat import NOTSET

    _pytest.monkeypatch.notset = NOTSET
