"""Artifacts built off the start-up path (DESIGN: no analysis on any start).

With `build = "background"` (the default) a module selected for lazy loading
that has no valid artifact loads eagerly, through the normal `.pyc` path, and
is remembered here. At exit the program writes what it remembered to a queue
file in the cache directory and starts one detached, low-priority builder
(`python -m lazyexec.store.builder`), so the next start is lazy. Under
activation in C++ the same is done without this module
(src/native/importer/cold_start.cpp writes a version-2 job). Builders
take a lock: concurrent programs queue their modules and at most one builder
runs; it keeps going until the queue is empty. A version-3 job holds the
regular expressions a program compiled, for its pattern cache
(store/patterns.py).

A builder killed mid-write leaves no partial artifact (`store.write_atomic`
renames a complete file over the old one) and at most a queue file that the
next builder takes up.

After building, still under the lock, the builder prunes (`tidy`): the
stale siblings of what it built, and once a day whatever is stale or
orphaned in the cache directory (store/prune.py, `lazyexec cache`).
"""

import os
import sys

QUEUE = "queue"
LOCK = "build.lock"
BUILDER_NICE = 10  # the builder's nice value above its program's (importer/cold_start.cpp's kBuilderNice)

_remembered: list = []  # (source path, module name, is_package)
_config = None
_warned = False


def remember(path: str, name: str, is_package: bool, config) -> None:
    """A module that loaded eagerly for want of an artifact."""
    global _config
    if not _remembered:
        import atexit

        atexit.register(_flush_at_exit)
    _config = config
    _remembered.append((path, name, bool(is_package)))


def _config_fields(config) -> dict:
    return {k: getattr(config, k) for k in config.__slots__ if k != "source"}


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        import warnings

        warnings.warn(message, RuntimeWarning, stacklevel=2)


def _flush_at_exit() -> None:
    """At exit nothing lazyexec does may disturb the program's end (its exit
    status, its stderr): any failure is one warning."""
    try:
        flush()
    except Exception as e:  # noqa: BLE001
        _warn_once(f"lazyexec: artifacts not queued ({e.__class__.__name__}: {e}); modules keep loading eagerly")


def flush(spawn: bool = True) -> str | None:
    """Queue the remembered modules and start a builder. Returns the queue
    file, or None when there was nothing to queue or the cache directory
    cannot be written (one warning; the modules keep loading eagerly)."""
    from lazyexec import store

    if not _remembered or _config is None or not store.caching_enabled():
        return None
    import marshal

    job = {
        "version": 1,
        "config": _config_fields(_config),
        "modules": list(dict.fromkeys(_remembered)),
        "dont_write_bytecode": store.bytecode_writing_off(),
        "pycache_prefix": getattr(sys, "pycache_prefix", None),
        # Code is compiled at the builder's own -O level: a builder of
        # another level leaves the job (its modules are queued again).
        "optimize": sys.flags.optimize,
    }
    _remembered.clear()
    queue = os.path.join(store.cache_dir(), QUEUE)
    path = os.path.join(queue, f"{os.getpid()}-{os.urandom(4).hex()}.job")
    unwritable = ("lazyexec: cache directory {} is not writable ({}); modules load eagerly until "
                  "`lazyexec compile` builds their artifacts (LAZYEXEC_CACHE_DIR chooses another directory)")
    try:
        os.makedirs(queue, exist_ok=True)
    except OSError as e:
        _warn_once(unwritable.format(queue, e.strerror))
        return None
    if not store.write_atomic(path, marshal.dumps(job)):
        _warn_once(unwritable.format(queue, "write failed"))
        return None
    if spawn and not builder_running():
        start_builder()
    return path


def builder_running() -> bool:
    """Whether a builder holds the lock now: it takes up the job just queued
    (it looks at the queue again after releasing the lock), so a program
    that exits while one runs starts no other. Checked after the job is
    written, so no job is left without a builder. (In C++: a program's own
    `fcntl.py` must not shadow the stdlib's at its exit.)"""
    from lazyexec import _lazyexec, store

    return _lazyexec.lock_held(os.path.join(store.cache_dir(), LOCK))


# The builder's command line: `-c` rather than `-m` so that the program's
# working directory (first on sys.path for both) is dropped before anything
# is imported: a local module must not shadow the stdlib in the builder.
BUILDER_CODE = "import sys; del sys.path[0]; from lazyexec.store.builder import main; sys.exit(main())"


def interpreter() -> str | None:
    """sys.executable when it is a Python interpreter: an embedding program
    (uwsgi, a game engine) must not be started with Python's arguments."""
    exe = sys.executable
    name = os.path.basename(exe or "")
    stem = name.rstrip("0123456789.")
    if exe and stem in ("python", "pypy") and os.access(exe, os.X_OK):
        return exe
    return None


def start_builder(code: str = BUILDER_CODE) -> None:
    """One detached builder (its own session, no terminal, output discarded),
    not waited for: the program exits now. Without a usable interpreter the
    job stays queued for the next builder (or `lazyexec compile`). `code`:
    another job run the same way (importer/distributions.py's reindex)."""
    exe = interpreter()
    if exe is None:
        return
    env = dict(os.environ)
    env["LAZYEXEC"] = "0"  # the builder itself loads eagerly
    devnull = os.devnull
    try:
        pid = os.posix_spawn(exe, [exe, *["-O"] * sys.flags.optimize, "-c", code], env,
                             setsid=True,
                             file_actions=[(os.POSIX_SPAWN_OPEN, 0, devnull, os.O_RDONLY, 0),
                                           (os.POSIX_SPAWN_OPEN, 1, devnull, os.O_WRONLY, 0),
                                           (os.POSIX_SPAWN_OPEN, 2, devnull, os.O_WRONLY, 0)])
    except (OSError, NotImplementedError) as e:  # no posix_spawn setsid here: the job waits for the next builder
        _warn_once(f"lazyexec: cannot start the artifact builder ({e}); run `lazyexec compile`")
        return
    # Low priority from its first instruction (its interpreter start and
    # imports must not compete with the next program); main() lowers it no
    # further. As importer/cold_start.cpp's lower_priority().
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(os.getpriority(os.PRIO_PROCESS, 0) + BUILDER_NICE, 19))
    except OSError:
        pass


def _take_jobs(queue: str) -> list[dict]:
    import marshal

    jobs = []
    try:
        names = sorted(n for n in os.listdir(queue) if n.endswith(".job"))
    except OSError:
        return jobs
    for n in names:
        p = os.path.join(queue, n)
        try:
            with open(p, "rb") as f:
                job = marshal.loads(f.read())
            os.unlink(p)
        except (OSError, EOFError, ValueError, TypeError):
            try:
                os.unlink(p)  # a damaged job: dropped, its modules are queued again next time
            except OSError:
                pass
            continue
        if isinstance(job, dict) and job.get("version") in (1, 2, 3):
            jobs.append(job)
    return jobs


def job_config(job: dict):
    """The configuration a job's modules were claimed under. Version 1 (the
    Python layer) holds its fields; version 2 (the C++ cold path,
    importer/cold_start.cpp) what activation read: the `[tool.lazyexec]`
    table, its file and the opted-in distributions' `never`, made into a
    Config as the Python layer's boot_make_loader does, so the artifacts are
    keyed as activation keys them."""
    from lazyexec.config import Config, from_table

    if job.get("version") == 1:
        return Config(**job["config"])
    from lazyexec.importer import with_installed

    source = job.get("source")
    config = from_table(job.get("table") or {}, source) if source is not None else Config()
    return with_installed(config, ((), tuple(job.get("installed_never") or ())))


def build(job: dict, built: list | None = None) -> int:
    """Build and store the artifacts of one job; the number stored (their
    sources appended to `built`)."""
    if job.get("version") == 3:  # compiled regular expressions (store/patterns.py)
        from lazyexec.store import patterns

        try:
            patterns.build(job)
        except Exception:  # noqa: BLE001 - a table not written only costs a compile next time
            pass
        return 0
    from lazyexec.importer.importlib_bootstrap import load_or_build_plan

    if job.get("optimize", 0) != sys.flags.optimize:
        return 0  # compiled here, asserts and `if __debug__:` would be another -O level's
    try:
        config = job_config(job)
    except (ValueError, TypeError, KeyError):  # a damaged job (ConfigError is a ValueError): dropped
        return 0
    sys.dont_write_bytecode = bool(job.get("dont_write_bytecode"))
    if job.get("pycache_prefix") is not None or hasattr(sys, "pycache_prefix"):
        sys.pycache_prefix = job.get("pycache_prefix")
    import warnings

    warnings.simplefilter("ignore")  # nobody reads a detached builder's warnings
    done = 0
    for path, name, is_package in job["modules"]:
        try:
            if load_or_build_plan(path, name, is_package, config, build="inline") is not None:
                done += 1
                if built is not None:
                    built.append(path)
        except Exception:  # noqa: BLE001 - a module that cannot be analysed keeps loading eagerly
            continue
    return done


def tidy(directory: str, built) -> None:
    """Store hygiene, under the builder's lock and off every program's
    start: the stale siblings of the artifacts just built (the same modules'
    artifacts of keys no build of lazyexec can ask for any more), and at
    most once a day every stale or orphaned artifact in the cache directory
    (store/prune.py; `lazyexec cache prune` covers the `sys.path` trees). Nothing it meets
    (an unwritable directory, a file gone meanwhile) stops the builder."""
    try:
        from lazyexec.store import prune

        prune.housekeeping(directory, built)
    except Exception:  # noqa: BLE001 - hygiene never costs a build
        pass


def main() -> int:
    import fcntl

    from lazyexec import store

    try:
        # Lowered by the program that started it (start_builder); by hand otherwise.
        if os.getpriority(os.PRIO_PROCESS, 0) < BUILDER_NICE:
            os.nice(BUILDER_NICE)
    except OSError:
        pass
    directory = store.cache_dir()
    queue = os.path.join(directory, QUEUE)
    try:
        lock = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return 1
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # another builder holds the lock; it takes up our queue file
        try:
            jobs = _take_jobs(queue)
            built: list = []
            for job in jobs:
                build(job, built)
            tidy(directory, built)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
        # A program may have queued a job while we held the lock and found it
        # held: look again after releasing it.
        try:
            if not any(n.endswith(".job") for n in os.listdir(queue)):
                return 0
        except OSError:
            return 0


if __name__ == "__main__":
    sys.exit(main())
