"""No analysis on the start-up path (issue #10): a module without a valid
artifact loads eagerly and its artifact is built after exit by a detached
builder; artifacts go to the user cache directory wherever a .pyc cannot.

Every run here is real: the program, then the builder process it starts.
(As root, file permissions do not stop writes, so an unwritable place is made
by putting a regular file where a directory must be.)
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

PROBE = ("import mod, lazyexec._lazyexec as core; "
         "print(core.is_trapping(type(mod).__dict__['__dict__'].__get__(mod)), mod.f())")


def make_app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "mod.py").write_text("__lazy_module__ = True\nimport json\nA = 1\ndef f(): return A\n")
    return app


def env_for(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") and k != "PYTHONDONTWRITEBYTECODE"}
    env["LAZYEXEC_CACHE_DIR"] = str(tmp_path / "cache")
    env["LAZYEXEC_PROFILE"] = "0"  # the build policy alone (test_usage_profile.py covers the profile)
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def start(app: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import lazyexec; lazyexec.activate(); " + PROBE],
                          cwd=app, env=env, capture_output=True, text=True, timeout=120)


def artifacts(root: Path) -> list[Path]:
    return sorted(root.rglob("*.lzx"))


def wait_for(predicate, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def wait_builder_done(cache: Path) -> None:
    """The queue is empty and no builder holds the lock."""
    def idle():
        queue = cache / "queue"
        if queue.exists() and any(queue.glob("*.job")):
            return False
        lock = cache / "build.lock"
        if not lock.exists():
            return True
        with open(lock, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            fcntl.flock(f, fcntl.LOCK_UN)
            return True
    assert wait_for(idle), "the builder did not finish"


def test_first_start_is_eager_and_the_next_lazy(tmp_path):
    app = make_app(tmp_path)
    env = env_for(tmp_path)
    first = start(app, env)
    assert (first.returncode, first.stdout, first.stderr) == (0, "False 1\n", "")
    wait_builder_done(tmp_path / "cache")
    assert [p.parent.name for p in artifacts(app)] == ["__pycache__"]  # next to the .pyc
    second = start(app, env)
    assert (second.returncode, second.stdout) == (0, "True 1\n"), second.stderr


def test_dont_write_bytecode_uses_the_cache_directory(tmp_path):
    app = make_app(tmp_path)
    env = env_for(tmp_path, PYTHONDONTWRITEBYTECODE="1")
    assert start(app, env).stdout == "False 1\n"
    wait_builder_done(tmp_path / "cache")
    assert artifacts(app) == []  # nothing written next to the sources
    assert len(artifacts(tmp_path / "cache")) == 1
    assert start(app, env).stdout == "True 1\n"


def test_optimization_levels_keep_their_own_artifacts_in_the_cache_directory(tmp_path):
    # Code is compiled at the interpreter's -O level (asserts, `if __debug__:`,
    # docstrings): beside the .pyc the artifact's name has importlib's
    # .opt-N tag, but the cache directory's had none, so with byte-code
    # writing off a `python -O` run loaded the artifact a plain run had built
    # (its asserts ran, __debug__ was True). The builder a -O program starts
    # runs at its level and builds only jobs of its level.
    app = tmp_path / "app"
    app.mkdir()
    (app / "mod.py").write_text("__lazy_module__ = True\nif __debug__:\n    MODE = 'debug'\nelse:\n    MODE = 'opt'\n"
                                "def f():\n    try:\n        assert False\n    except AssertionError:\n"
                                "        return MODE + ' asserts'\n    return MODE\n")
    env = env_for(tmp_path, PYTHONDONTWRITEBYTECODE="1")
    probe = "import lazyexec; lazyexec.activate(); " + PROBE

    def run(*flags):
        r = subprocess.run([sys.executable, *flags, "-c", probe], cwd=app, env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert run() == "False debug asserts\n"
    wait_builder_done(tmp_path / "cache")
    assert run() == "True debug asserts\n"
    assert run("-O") == "False opt\n"  # no artifact of its level yet: eager
    wait_builder_done(tmp_path / "cache")
    assert run("-O") == "True opt\n"
    assert run() == "True debug asserts\n"
    assert len(artifacts(tmp_path / "cache")) == 2 and artifacts(app) == []


def test_pycache_prefix_is_honoured(tmp_path):
    app = make_app(tmp_path)
    prefix = tmp_path / "pycache-prefix"
    env = env_for(tmp_path, PYTHONPYCACHEPREFIX=str(prefix))
    assert start(app, env).stdout == "False 1\n"
    wait_builder_done(tmp_path / "cache")
    assert artifacts(app) == [] and len(artifacts(prefix)) == 1
    assert start(app, env).stdout == "True 1\n"


def test_unwritable_pycache_falls_back_to_the_cache_directory(tmp_path):
    app = make_app(tmp_path)
    (app / "__pycache__").write_text("not a directory")  # read-only site-packages, as root can be
    env = env_for(tmp_path)
    assert start(app, env).stdout == "False 1\n"
    wait_builder_done(tmp_path / "cache")
    assert len(artifacts(tmp_path / "cache")) == 1
    assert start(app, env).stdout == "True 1\n"


def test_unwritable_cache_directory_is_one_warning_and_eager(tmp_path):
    app = make_app(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = env_for(tmp_path, PYTHONDONTWRITEBYTECODE="1", LAZYEXEC_CACHE_DIR=str(blocker / "cache"))
    for _ in range(2):
        r = start(app, env)
        assert (r.returncode, r.stdout) == (0, "False 1\n")
        warnings = [line for line in r.stderr.splitlines() if "RuntimeWarning: lazyexec:" in line]
        assert len(warnings) == 1 and "cache directory" in warnings[0], r.stderr


def test_build_inline_and_off(tmp_path):
    app = make_app(tmp_path)
    off = env_for(tmp_path, LAZYEXEC_BUILD="off")
    assert start(app, off).stdout == "False 1\n"
    time.sleep(0.5)
    assert artifacts(tmp_path) == [] and not (tmp_path / "cache" / "queue").exists()
    inline = env_for(tmp_path, LAZYEXEC_BUILD="inline")
    assert start(app, inline).stdout == "True 1\n"  # analysed on the start-up path
    assert start(app, off).stdout == "True 1\n"  # off still uses what exists


def test_cache_off_switch(tmp_path):
    app = make_app(tmp_path)
    env = env_for(tmp_path, LAZYEXEC_CACHE="off", LAZYEXEC_BUILD="inline")
    assert start(app, env).stdout == "True 1\n"  # inline still analyses, stores nothing
    assert artifacts(tmp_path) == []


def test_config_build_key_is_validated(tmp_path):
    app = make_app(tmp_path)
    (app / "pyproject.toml").write_text("[tool.lazyexec]\nbuild = 'later'\n")
    r = start(app, env_for(tmp_path))
    assert r.stdout == "False 1\n" and "build must be one of" in r.stderr


def test_builders_take_turns_under_the_lock(tmp_path):
    """A builder that finds the lock held leaves the queue to the holder."""
    app = make_app(tmp_path)
    env = env_for(tmp_path, LAZYEXEC_BUILD="off")
    cache = tmp_path / "cache"
    job = ("import lazyexec; lazyexec.activate(); import mod; "
           "from lazyexec.store import builder; from lazyexec.importer import _active; "
           "builder.remember(mod.__file__, 'mod', False, _active.config); print(builder.flush(spawn=False))")
    queued = subprocess.run([sys.executable, "-c", job], cwd=app, env=env, capture_output=True, text=True)
    assert queued.returncode == 0 and queued.stdout.strip().endswith(".job"), queued.stderr
    builder = [sys.executable, "-m", "lazyexec.store.builder"]
    with open(cache / "build.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        r = subprocess.run(builder, env={**env, "LAZYEXEC": "0"}, timeout=60)
        assert r.returncode == 0 and len(list((cache / "queue").glob("*.job"))) == 1 and artifacts(app) == []
    r = subprocess.run(builder, env={**env, "LAZYEXEC": "0"}, timeout=120)
    assert r.returncode == 0 and list((cache / "queue").glob("*.job")) == []
    assert len(artifacts(app)) == 1
    assert start(app, env).stdout == "True 1\n"


def test_damaged_job_and_killed_builder_leave_no_partial_artifact(tmp_path):
    app = make_app(tmp_path)
    for i in range(30):
        (app / f"m{i}.py").write_text("__lazy_module__ = True\n" + "".join(f"def f{j}(): return {j}\n" for j in range(200)))
    env = env_for(tmp_path, LAZYEXEC_BUILD="off")
    cache = tmp_path / "cache"
    (cache / "queue").mkdir(parents=True)
    (cache / "queue" / "0-bad.job").write_bytes(b"\x00garbage")
    job = ("import lazyexec, os; lazyexec.activate(); from lazyexec.store import builder; "
           "from lazyexec.importer import _active; "
           "[builder.remember(os.path.abspath(f'm{i}.py'), f'm{i}', False, _active.config) for i in range(30)]; builder.flush(spawn=False)")
    assert subprocess.run([sys.executable, "-c", job], cwd=app, env=env).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "lazyexec.store.builder"], cwd=app, env={**env, "LAZYEXEC": "0"})
    wait_for(lambda: len(artifacts(app)) >= 3, timeout=60)
    proc.kill()
    proc.wait()
    probe = ("import lazyexec, warnings; warnings.simplefilter('error'); lazyexec.activate(); "
             + "; ".join(f"import m{i}; assert m{i}.f7() == 7" for i in range(30)) + "; print('ok')")
    r = subprocess.run([sys.executable, "-c", probe], cwd=app, env=env, capture_output=True, text=True)
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr  # every artifact present is whole: no warning
    assert not (cache / "queue" / "0-bad.job").exists()  # dropped, not retried forever


def test_inline_cold_build_of_the_stdlib_module_that_stores_artifacts(tmp_path):
    """Building `struct`'s own artifact while `struct` is being imported must
    not import `struct` (a partially initialised module then)."""
    config = tmp_path / "all.toml"
    config.write_text(f"mode = 'all'\npure = ['cold.key{os.getpid()}{time.time_ns()}']\n")  # a fresh key: cold
    env = env_for(tmp_path, LAZYEXEC_CONFIG=str(config), LAZYEXEC_BUILD="inline", PYTHONDONTWRITEBYTECODE="1")
    probe = "import lazyexec; lazyexec.activate(); import pickle, struct; print(pickle.loads(pickle.dumps([1])), struct.pack('<H', 1))"
    r = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert (r.returncode, r.stdout) == (0, "[1] b'\\x01\\x00'\n"), r.stderr


def test_builder_ignores_modules_in_the_programs_directory(tmp_path):
    """The builder starts in the program's working directory: a local
    `fcntl.py` or `marshal.py` there must not shadow the stdlib in it."""
    app = make_app(tmp_path)
    (app / "fcntl.py").write_text("raise ImportError('local fcntl shadows the stdlib')\n")
    env = env_for(tmp_path)
    assert start(app, env).stdout == "False 1\n"
    wait_builder_done(tmp_path / "cache")
    assert start(app, env).stdout == "True 1\n"


def test_builder_is_started_only_by_a_python_interpreter(monkeypatch):
    from lazyexec.store import builder

    monkeypatch.setattr(sys, "executable", "/usr/bin/uwsgi")
    assert builder.interpreter() is None
    monkeypatch.setattr(sys, "executable", "")
    assert builder.interpreter() is None


def test_no_second_builder_while_one_runs(tmp_path):
    """A program exiting while a builder holds the lock queues its job and
    starts no builder; the running one takes the job up."""
    app = make_app(tmp_path)
    env = env_for(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    with open(cache / "build.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        r = start(app, env)
        assert r.stdout == "False 1\n"
        time.sleep(1.0)
        assert len(list((cache / "queue").glob("*.job"))) == 1 and artifacts(app) == []  # no builder ran
    r = subprocess.run([sys.executable, "-m", "lazyexec.store.builder"], env={**env, "LAZYEXEC": "0"}, timeout=120)
    assert r.returncode == 0 and len(artifacts(app)) == 1
    assert start(app, env).stdout == "True 1\n"


def test_inline_cold_build_of_a_module_the_build_stage_imports(tmp_path):
    """`__future__` (and the rest of what lazyexec's analyze and compile
    stages import) claimed before the build stage ever loaded: the build
    must not import the half-initialised module."""
    config = tmp_path / "all.toml"
    config.write_text(f"mode = 'all'\npure = ['cold.key{os.getpid()}{time.time_ns()}']\n")  # a fresh key: cold
    env = env_for(tmp_path, LAZYEXEC_CONFIG=str(config), LAZYEXEC_BUILD="inline", PYTHONDONTWRITEBYTECODE="1")
    import lazyexec

    # -S: nothing imported before activation, as with the .pth file.
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(lazyexec.__file__))
    probe = ("import sys; assert '__future__' not in sys.modules; import lazyexec; lazyexec.activate(); "
             "import __future__, dataclasses; print(__future__.annotations.mandatory is None or True)")
    warm = subprocess.run([sys.executable, "-S", "-c", probe], cwd=tmp_path, env={**env, "LAZYEXEC_BUILD": "off"},
                          capture_output=True, text=True, timeout=300)  # the config's parse cache (no tomllib next)
    assert warm.returncode == 0, warm.stderr
    r = subprocess.run([sys.executable, "-S", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert (r.returncode, r.stdout, r.stderr) == (0, "True\n", "")


def builder_nice_recorder(tmp_path: Path) -> tuple[Path, Path]:
    """(a directory for PYTHONPATH, a file): a sitecustomize there appends
    the nice value of every builder (LAZYEXEC=0 in its environment) during
    its `site`, to the file named by NICE_RECORD."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('LAZYEXEC') == '0' and os.environ.get('NICE_RECORD'):\n"
        "    with open(os.environ['NICE_RECORD'], 'a') as f:\n"
        "        f.write(str(os.getpriority(os.PRIO_PROCESS, 0)) + '\\n')\n")
    return hook, tmp_path / "builder-nice"


def test_builder_runs_at_low_priority_from_its_start(tmp_path):
    """The detached builder's own interpreter start already runs at the
    builder's nice value (set by the program that started it, not only by
    the builder once its imports are done): a sitecustomize in the builder
    (LAZYEXEC=0 in its environment) records its nice value during `site`."""
    app = make_app(tmp_path)
    hook, record = builder_nice_recorder(tmp_path)
    env = env_for(tmp_path, PYTHONPATH=str(hook), NICE_RECORD=str(record))
    own = os.getpriority(os.PRIO_PROCESS, 0)
    first = start(app, env)
    assert (first.returncode, first.stdout) == (0, "False 1\n"), first.stderr
    wait_builder_done(tmp_path / "cache")
    assert wait_for(record.exists)
    assert record.read_text().split() == [str(min(own + 10, 19))]
    assert start(app, env).stdout == "True 1\n"
