"""Store hygiene: an artifact's trailer, `lazyexec cache info/prune/clear`,
and the builder's own pruning (store/prune.py; docs/artifact-format.md
"Trailer and pruning"). Every test works in its own directories (the cache
directory and `--path` trees, `--no-sys-path`): nothing outside them is
looked at or removed."""

import errno
import json
import marshal
import os
import shutil
import time

import pytest

from lazyexec import _lazyexec, store
from lazyexec.cli import cache as cache_cli
from lazyexec.config import Config
from lazyexec.store import builder, prune

PLAN = store.Plan([(None, ("x",), (), "1 (assign x)", ())], [("run", compile("x = 1", "m.py", "exec"), 1)])


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """An application tree with one module, a private cache directory, the
    working directory without a configuration; bytecode writing on."""
    cache = tmp_path / "cache"
    app = tmp_path / "app"
    app.mkdir()
    (app / "m.py").write_text("x = 1\n")
    monkeypatch.setenv("LAZYEXEC_CACHE_DIR", str(cache))
    monkeypatch.delenv("LAZYEXEC_CONFIG", raising=False)
    monkeypatch.delenv("LAZYEXEC_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.dont_write_bytecode", False)
    return tmp_path


def current_key() -> bytes:
    return store.key_for(store.knowledge_hash(Config()))


def save(source, key=None) -> str:
    """The artifact store.save() writes beside the .pyc, with its trailer."""
    key = key or current_key()
    st = os.stat(source)
    assert store.save(str(source), PLAN, st.st_mtime_ns, st.st_size, key)
    return store.artifact_path(str(source), key)


def write_artifact(path, source, key: bytes, info: dict | None) -> str:
    """An artifact whose trailer says `info` (None: no trailer, as an older
    lazyexec wrote them)."""
    st = os.stat(source)
    data = store.encode(PLAN, st.st_mtime_ns, st.st_size, key)
    if info is not None:
        blob = marshal.dumps(info)
        data += blob + len(blob).to_bytes(4, "little") + prune.TRAILER_MAGIC
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def age(path, days: float = 8) -> str:
    """As if last read and written `days` ago."""
    t = time.time() - days * 86400
    os.utime(path, (t, t))
    return str(path)


def info_of(source, **changes) -> dict:
    """The trailer this build writes for `source`, with `changes`."""
    base = {"v": prune.TRAILER_VERSION, "source": os.path.abspath(source), "extension": _lazyexec.__file__,
            "identity": store._build_identity(), "knowledge": store.KNOWLEDGE_FILE,
            "knowledge_fingerprint": store.knowledge_fingerprint(), "config": None, "version": "x"}
    base.update(changes)
    return base


def cli(*args) -> int:
    return cache_cli.run([*args, "--no-sys-path"])


def test_trailer_names_the_source_and_build_and_readers_ignore_it(layout):
    source = layout / "app" / "m.py"
    path = save(source)
    info = prune.read_info(path)
    assert info["source"] == str(source)
    assert info["extension"] == _lazyexec.__file__ and info["identity"] == store._build_identity()
    assert info["knowledge_fingerprint"] == store.knowledge_fingerprint()
    st = os.stat(source)
    # The C++ reader (what every start uses) and store.load() still read it.
    found = _lazyexec.load_plan(str(source), current_key(), store.PYTHON_MAGIC, store.FORMAT,
                                str(layout / "cache"), False)
    assert found[2] is not None and found[2][0] == PLAN.units and found[3] == []
    assert store.load(str(source), st.st_mtime_ns, st.st_size, current_key()).units == PLAN.units
    # Damaged or absent trailers read as none, never raise.
    with open(path, "ab") as f:
        f.write(b"garbage")
    assert prune.read_info(path) is None


def test_info_counts_each_key_and_says_which_are_stale(layout, capsys):
    source = layout / "app" / "m.py"
    near = save(source)
    pycache = os.path.dirname(near)
    stem = os.path.basename(near).rsplit(".", 2)[0]  # m.TAG
    write_artifact(os.path.join(pycache, f"{stem}.deadbeef.lzx"), source, b"deadbeef" * 2,
                   info_of(source, identity="1:2"))
    age(write_artifact(os.path.join(pycache, f"{stem}.cafebabe.lzx"), source, b"cafebabe" * 2, None))
    write_artifact(os.path.join(pycache, f"{stem}.0ddba11a.lzx"), source, b"0ddba11a" * 2, None)  # read today
    assert cli("info", "--json", "--path", str(layout / "app")) == 0
    report = json.loads(capsys.readouterr().out)
    keys = {k["key"]: k for k in report["keys"]}
    cur = current_key().decode()[:8]
    assert report["current_key"] == cur and report["keys"][0]["key"] == cur
    assert keys[cur]["status"] == {"current": 1}
    assert keys["deadbeef"]["status"] == {"stale": 1}
    assert "lazyexec was rebuilt or upgraded since" in keys["deadbeef"]["reasons"]
    assert keys["cafebabe"]["status"] == {"stale": 1}
    assert keys["0ddba11a"]["status"] == {"unknown": 1}
    assert report["artifacts"]["files"] == 4
    assert report["prunable"]["files"] == 2
    assert report["prunable"]["bytes"] == sum(os.path.getsize(os.path.join(pycache, f"{stem}.{k}.lzx"))
                                              for k in ("deadbeef", "cafebabe"))
    assert cli("info", "--path", str(layout / "app")) == 0
    text = capsys.readouterr().out
    assert f"current key: {cur}" in text and "would remove 2 artifact(s)" in text


def test_prune_removes_stale_orphaned_and_leftovers_only(layout, capsys, monkeypatch):
    app = layout / "app"
    source, gone = app / "m.py", app / "gone.py"
    gone.write_text("y = 2\n")
    current = save(source)
    pycache = os.path.dirname(current)
    stem = os.path.basename(current).rsplit(".", 2)[0]
    stale = write_artifact(os.path.join(pycache, f"{stem}.deadbeef.lzx"), source, b"deadbeef" * 2,
                           info_of(source, extension=str(layout / "no-such-extension.so")))
    old_format = age(write_artifact(os.path.join(pycache, f"{stem}.lzx"), source, b"cafebabe" * 2, None))
    recent_old = write_artifact(os.path.join(pycache, f"{stem}.0ddba11a.lzx"), source, b"0ddba11a" * 2, None)
    # A live key of another build (its extension is there, unchanged).
    other_ext = layout / "other_ext.so"
    other_ext.write_bytes(b"x")
    ost = os.stat(other_ext)
    live = write_artifact(os.path.join(pycache, f"{stem}.0badf00d.lzx"), source, b"0badf00d" * 2,
                          info_of(source, extension=str(other_ext), identity=f"{ost.st_mtime_ns}:{ost.st_size}"))
    # The current key's artifact of a source that is gone, in the cache directory
    # (where it goes when bytecode writing is off).
    monkeypatch.setattr("sys.dont_write_bytecode", True)
    st = os.stat(gone)
    assert store.save(str(gone), PLAN, st.st_mtime_ns, st.st_size, current_key())
    orphan = store.fallback_path(str(gone), current_key())
    monkeypatch.setattr("sys.dont_write_bytecode", False)
    gone.unlink()
    # Temporary files of store.write_atomic: one left by a killed writer, one being written now.
    old_tmp = os.path.join(pycache, ".lzx-1-aaaaaaaaaaaa")
    fresh_tmp = os.path.join(pycache, ".lzx-2-bbbbbbbbbbbb")
    for p in (old_tmp, fresh_tmp):
        with open(p, "wb") as f:
            f.write(b"partial")
    hours_ago = time.time() - 2 * 3600
    os.utime(old_tmp, (hours_ago, hours_ago))
    doomed = [stale, old_format, orphan, old_tmp]
    kept = [current, live, fresh_tmp, recent_old]

    assert cli("prune", "--dry-run", "--path", str(app)) == 0
    assert "would remove 4 file(s)" in capsys.readouterr().out
    assert all(os.path.exists(p) for p in doomed + kept)

    assert cli("prune", "--path", str(app)) == 0
    assert "removed 4 file(s)" in capsys.readouterr().out
    assert not any(os.path.exists(p) for p in doomed)
    assert all(os.path.exists(p) for p in kept)
    # --idle 0: an artifact of an unknown build goes even if read today.
    assert cli("prune", "--idle", "0", "--path", str(app)) == 0
    assert not os.path.exists(recent_old) and os.path.exists(current) and os.path.exists(live)
    capsys.readouterr()


def test_a_key_whose_configuration_file_is_gone_is_stale(layout, capsys):
    source = layout / "app" / "m.py"
    config = layout / "lazy.toml"
    config.write_text('mode = "all"\n')
    path = os.path.join(os.path.dirname(save(source)), "m.other.12345678.lzx")
    write_artifact(path, source, b"12345678" * 2, info_of(source, config=str(config)))
    judge = prune.Judge(current_key().decode()[:8])
    assert judge.judge(prune._entry(os.path.dirname(path), os.path.basename(path), "pycache")).status == "live"
    config.unlink()
    judge = prune.Judge(current_key().decode()[:8])
    e = judge.judge(prune._entry(os.path.dirname(path), os.path.basename(path), "pycache"))
    assert (e.status, e.reason) == ("stale", f"its configuration file {config} is gone")


def test_the_configuration_file_is_recorded_in_the_trailer(layout):
    source = layout / "app" / "m.py"
    config = Config(mode="all", source=str(layout / "pyproject.toml"))
    key = store.key_for(store.knowledge_hash(config))
    assert prune.read_info(save(source, key))["config"] == str(layout / "pyproject.toml")


def test_clear_removes_every_artifact_and_cache_but_the_installed_index(layout, capsys):
    source = layout / "app" / "m.py"
    near = save(source)
    cache = layout / "cache"
    (cache / "profiles").mkdir(parents=True)
    (cache / "profiles" / "abc.profile").write_bytes(b"p")
    (cache / "config-0123456789abcdef.marshal").write_bytes(b"c")
    (cache / "installed-0123.marshal").write_bytes(b"i")
    (cache / "build.lock").write_bytes(b"")
    assert cli("clear", "--path", str(layout / "app")) == 0
    assert "removed 3 file(s)" in capsys.readouterr().out
    assert not os.path.exists(near)
    assert sorted(os.listdir(cache)) == ["build.lock", "installed-0123.marshal", "profiles"]


def test_prune_removes_caches_untouched_for_max_age(layout, capsys):
    cache = layout / "cache"
    (cache / "summaries").mkdir(parents=True)
    old, new = cache / "summaries" / "old", cache / "summaries" / "new"
    old.write_bytes(b"s")
    new.write_bytes(b"s")
    long_ago = time.time() - 40 * 86400
    os.utime(old, (long_ago, long_ago))
    assert cli("prune") == 0
    assert not old.exists() and new.exists()
    capsys.readouterr()


def test_a_file_that_cannot_be_removed_is_reported_and_the_rest_goes(layout, capsys, monkeypatch):
    app = layout / "app"
    (app / "pkg").mkdir()
    (app / "pkg" / "n.py").write_text("z = 3\n")
    locked_dir = os.path.dirname(save(app / "pkg" / "n.py"))
    locked = age(write_artifact(os.path.join(locked_dir, "n.x.deadbeef.lzx"), app / "pkg" / "n.py",
                                b"deadbeef" * 2, None))
    free = age(write_artifact(os.path.join(os.path.dirname(save(app / "m.py")), "m.x.deadbeef.lzx"), app / "m.py",
                              b"deadbeef" * 2, None))
    real_unlink = os.unlink

    def unlink(path, *a, **k):  # a directory of another user's (the tests run as root: simulated)
        if os.path.dirname(str(path)) == locked_dir:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_unlink(path, *a, **k)

    monkeypatch.setattr(os, "unlink", unlink)
    assert cli("prune", "--path", str(app)) == 1
    out, err = capsys.readouterr()
    assert "removed 1 file(s)" in out
    assert "cannot remove 1 file(s)" in err and locked_dir in err and "run as its owner" in err
    assert os.path.exists(locked) and not os.path.exists(free)


def test_usage_errors(layout, capsys):
    assert cache_cli.run([]) == 2
    assert cli("info", "--path", str(layout / "nowhere")) == 2
    assert "not a directory" in capsys.readouterr().err


def test_builder_removes_stale_siblings_and_prunes_fully_once_a_day(layout):
    app = layout / "app"
    source = app / "m.py"
    current = save(source)
    pycache = os.path.dirname(current)
    stem = os.path.basename(current).rsplit(".", 2)[0]
    gone_build = info_of(source, extension=str(layout / "gone.so"))
    sibling = write_artifact(os.path.join(pycache, f"{stem}.deadbeef.lzx"), source, b"deadbeef" * 2, gone_build)
    (app / "other.py").write_text("w = 4\n")
    elsewhere = write_artifact(os.path.join(pycache, "other.x.deadbeef.lzx"), app / "other.py", b"deadbeef" * 2,
                               info_of(app / "other.py", extension=str(layout / "gone.so")))
    cache = str(layout / "cache")
    now = time.time()
    # Built m.py: its stale sibling goes at once; the first run also prunes fully (no stamp yet).
    prune.housekeeping(cache, [str(source)], now=now, roots=[str(app)])
    assert os.path.exists(current) and not os.path.exists(sibling) and not os.path.exists(elsewhere)
    stamp = os.path.join(cache, prune.PRUNE_STAMP)
    assert abs(os.stat(stamp).st_mtime - now) < 2
    # Within the day: siblings only.
    sibling = write_artifact(sibling, source, b"deadbeef" * 2, gone_build)
    elsewhere = write_artifact(elsewhere, app / "other.py", b"deadbeef" * 2,
                               info_of(app / "other.py", extension=str(layout / "gone.so")))
    prune.housekeeping(cache, [str(source)], now=now + 3600, roots=[str(app)])
    assert not os.path.exists(sibling) and os.path.exists(elsewhere)
    # A day later: everything again.
    prune.housekeeping(cache, [], now=now + 86400 + 1, roots=[str(app)])
    assert not os.path.exists(elsewhere) and os.path.exists(current)


def test_builder_tidies_after_a_build_and_never_fails_for_it(layout, monkeypatch):
    calls = []
    monkeypatch.setattr(prune, "housekeeping", lambda d, built: calls.append((d, list(built))))
    builder.tidy("somewhere", ["a.py"])
    assert calls == [("somewhere", ["a.py"])]

    def broken(*a):
        raise OSError("disk on fire")

    monkeypatch.setattr(prune, "housekeeping", broken)
    builder.tidy("somewhere", [])  # no exception


def test_unwritable_cache_directory_costs_the_builder_nothing(layout, monkeypatch):
    source = layout / "app" / "m.py"
    save(source)
    cache = layout / "cache-file"
    cache.write_text("not a directory")
    removal = prune.housekeeping(str(cache), [str(source)], roots=[str(layout / "app")])
    assert removal.failed == {}
    shutil.rmtree(layout / "app" / "__pycache__")
