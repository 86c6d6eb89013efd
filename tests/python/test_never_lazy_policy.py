"""The never-lazy set as the finder's policy applies it: "=pkg" entries name
the module alone; the others cover submodules too."""

from __future__ import annotations

import os
import sys

import pytest

from lazyexec.config import Config
from lazyexec.importer import Policy


def claims(policy, name, tmp_path):
    path = tmp_path / (name.replace(".", "_") + ".py")
    path.write_text("X = 1\n")
    return policy.claims(name, str(path))


def test_import_system_eager_but_not_its_libraries(tmp_path):
    policy = Policy(Config(mode="all"))
    for name in ("importlib", "importlib.util", "importlib.machinery", "importlib._bootstrap", "zipimport"):
        assert not claims(policy, name, tmp_path), name
    for name in ("importlib.metadata", "importlib.metadata._adapters", "importlib.resources", "importlib.abc"):
        assert claims(policy, name, tmp_path), name


def test_debian_sitecustomize_hook_is_never_claimed(tmp_path):
    """Debian's and Ubuntu's sitecustomize imports apport_python_hook at every
    start (absent unless apport is installed): not claimed, so the finder
    never searches sys.path for it ahead of PathFinder."""
    policy = Policy(Config(mode="all"))
    assert not claims(policy, "apport_python_hook", tmp_path) and claims(policy, "apport_python_hooks", tmp_path)


def test_pytest_modules_may_be_lazy_but_conftest_not(tmp_path):
    policy = Policy(Config(mode="all"))
    assert claims(policy, "pytest", tmp_path) and claims(policy, "_pytest.python", tmp_path)
    assert not claims(policy, "conftest", tmp_path) and not claims(policy, "tests.unit.conftest", tmp_path)


def test_package_entries_still_cover_submodules(tmp_path):
    policy = Policy(Config(mode="all", never=["mypkg"]))
    assert not claims(policy, "mypkg.sub.mod", tmp_path) and not claims(policy, "encodings.utf_8", tmp_path)
    assert claims(policy, "mypkgx", tmp_path)


@pytest.fixture
def counting_entry(tmp_path, monkeypatch):
    """(entry, asked): a sys.path entry first on the path whose finder
    records every name PathFinder asks it for, and finds nothing."""
    asked = []
    entry = str(tmp_path / "counting-entry")

    class CountingEntry:
        def __init__(self, path):
            if path != entry:
                raise ImportError
        def find_spec(self, name, target=None):
            asked.append(name)
            return None
        def invalidate_caches(self):
            pass

    monkeypatch.setattr(sys, "path_hooks", [CountingEntry, *sys.path_hooks])
    monkeypatch.setattr(sys, "path", [entry, *sys.path])
    monkeypatch.delitem(sys.path_importer_cache, entry, raising=False)
    return entry, asked


def test_finder_leaves_a_module_policy_never_claims_to_path_finder_alone(counting_entry):
    """The finder asks PathFinder only for modules it may load lazily (or
    watches): a never-lazy module that does not exist (sitecustomize at every
    start) is searched once, by PathFinder after it, not twice."""
    from lazyexec import _lazyexec

    _, asked = counting_entry
    finder = _lazyexec.Finder(True, ["probe_never"], [], [], [], None, None)
    assert finder.find_spec("probe_never", None) is None and asked == []
    assert finder.find_spec("probe_never.sub", None) is None and asked == []
    assert finder.find_spec("probe_selected", None) is None and asked == ["probe_selected"]
    # A watched module is looked up whatever the policy says (its callback sees the spec).
    seen = []
    finder.watch("probe_never", lambda spec: seen.append(spec) or spec)
    assert finder.find_spec("probe_never", None) is None and asked == ["probe_selected", "probe_never"]


def test_finder_asks_path_finder_once_for_a_top_level_module_that_is_not_there(counting_entry, tmp_path):
    """A top-level module PathFinder did not find is not searched for by the
    finder again (PathFinder, after it, still searches: a module made since
    loads, eagerly) until importlib.invalidate_caches() or sys.path changes:
    `try: import nt` in many modules costs one search each, as eagerly."""
    import importlib

    from lazyexec import _lazyexec

    entry, asked = counting_entry
    finder = _lazyexec.Finder(True, [], [], [], [], None, None)
    assert finder.find_spec("probe_absent", None) is None and asked == ["probe_absent"]
    assert finder.find_spec("probe_absent", None) is None and asked == ["probe_absent"]
    # A package's submodule is looked up in its own path each time.
    assert finder.find_spec("pkg.probe_absent", [entry]) is None and asked[1:] == ["pkg.probe_absent"]
    assert finder.find_spec("pkg.probe_absent", [entry]) is None and asked[1:] == ["pkg.probe_absent"] * 2
    del asked[:]
    importlib.invalidate_caches()  # calls every meta path finder's invalidate_caches()
    finder.invalidate_caches()
    assert finder.find_spec("probe_absent", None) is None and asked == ["probe_absent"]
    sys.path.append(str(tmp_path / "another"))
    assert finder.find_spec("probe_absent", None) is None and asked == ["probe_absent"] * 2
    assert finder.find_spec("probe_absent", None) is None and asked == ["probe_absent"] * 2


def _marked_finder(marks):
    from lazyexec import _lazyexec

    claimed = []

    def make_loader(fullname, path):
        claimed.append(fullname)
        return None  # "no lazy loader to be had": the spec keeps its own

    return _lazyexec.Finder(False, [], [], [], [], make_loader, None, None, str(marks)), claimed


def test_marker_verdicts_are_remembered_and_checked_against_the_file(tmp_path, monkeypatch):
    """Mode "marked": the finder reads a source once to find the opt-in
    marker and remembers the verdict stamped with the file's mtime and size
    (issue 10: every import used to read its source again at every start).
    A remembered verdict is used only while the stamp is the same."""
    app = tmp_path / "app"
    app.mkdir()
    plain = app / "marks_probe_plain.py"
    plain.write_text("X = 1  # no marker here, padded to a fixed size\n")
    marks = tmp_path / "cache" / "profiles" / "program.marks"
    monkeypatch.syspath_prepend(str(app))

    finder, claimed = _marked_finder(marks)
    assert finder.find_spec("marks_probe_plain", None) is not None and claimed == []
    finder.write_marks()
    assert marks.exists()

    # The same size and mtime with the marker in it: the remembered verdict
    # answers (the file is not read again).
    stat = plain.stat()
    marked = "__lazy_module__ = True\nX = 1\n"
    plain.write_text(marked.ljust(stat.st_size - 1) + "\n")
    assert plain.stat().st_size == stat.st_size
    os.utime(plain, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    finder, claimed = _marked_finder(marks)
    assert finder.find_spec("marks_probe_plain", None) is not None and claimed == []

    # Another mtime: read again, and now it opts in.
    os.utime(plain, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    finder, claimed = _marked_finder(marks)
    finder.find_spec("marks_probe_plain", None)
    assert claimed == ["marks_probe_plain"]


def test_damaged_marker_verdicts_warn_once_and_are_rewritten(tmp_path, monkeypatch):
    import marshal
    import warnings

    app = tmp_path / "app"
    app.mkdir()
    (app / "marks_probe_damaged.py").write_text("__lazy_module__ = True\n")
    marks = tmp_path / "program.marks"
    marks.write_bytes(b"\x00not marshal")
    monkeypatch.syspath_prepend(str(app))
    finder, claimed = _marked_finder(marks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        finder.find_spec("marks_probe_damaged", None)
        finder.find_spec("marks_probe_damaged", None)
    assert [str(w.message) for w in caught] == [
        f"lazyexec: ignoring damaged marker cache {marks}; it is rewritten at exit"]
    assert claimed == ["marks_probe_damaged"] * 2
    finder.write_marks()
    data = marshal.loads(marks.read_bytes())
    assert data["version"] == 1 and data["marks"][str(app / "marks_probe_damaged.py")][2] is True
