"""The runtime from Python: run a module's plan, PEP 562 hooks, the API.

Materialization itself is C++ (src/native/runtime); this layer installs a
module's plan and offers the public API (`lazyexec.pending` etc.).
"""

import sys

from lazyexec import _lazyexec

# Modules loaded lazily in this process, in load order (for stats): the plan
# runner's list (C++), shared.
loaded: list[str] = _lazyexec.loaded_modules()


def _import_waits() -> dict:
    """importlib's module-lock waits as {thread id: [owner thread ids]}, for
    the runtime's deadlock detection. 3.10-3.11 map a thread to one lock,
    3.12+ to a list of locks."""
    bootstrap = sys.modules.get("_frozen_importlib")
    blocking = getattr(bootstrap, "_blocking_on", None)
    if blocking is None:
        return {}
    if isinstance(blocking, dict):  # 3.10-3.11: {tid: _ModuleLock}
        entries = list(blocking.items())
    else:  # 3.12+: a _WeakValueDictionary of {tid: _List of locks}, no items()
        entries = [(tid, ref()) for tid, ref in list(getattr(blocking, "data", {}).items())]
    out = {}
    for tid, value in entries:
        if value is None:
            continue
        locks = value if isinstance(value, list) else [value]
        owners = [lock.owner for lock in list(locks) if getattr(lock, "owner", None)]
        if owners:
            out[tid] = owners
    return out


_lazyexec.set_import_waits(_import_waits)

from lazyexec.runtime import module_class  # noqa: E402
from lazyexec.runtime.module_class import namespace  # noqa: E402,F401 - used by the importer

# When a module settles or completes the C++ runtime handles the common case
# itself and calls module_class.on_settled for the rest
# (src/native/runtime/module_hooks.cpp): no hook to register here.


DEFAULT_SETTLE_THRESHOLD = 10000  # why this number: docs/settle.md


def settle_policy(config=None) -> tuple[int, bool]:
    """(threshold, settle right after import). LAZYEXEC_SETTLE overrides the
    configuration: "never", "now", or a number of trap lookups.
    LAZYEXEC_SETTLE_COMPLETE=0|1 overrides `settle_complete` (sets the
    process-wide `complete_on_settle`)."""
    import os

    complete = os.environ.get("LAZYEXEC_SETTLE_COMPLETE", "")
    if complete in ("0", "1"):
        _lazyexec.complete_on_settle(complete == "1")
    elif getattr(config, "settle_complete", None) is not None:
        _lazyexec.complete_on_settle(config.settle_complete)
    env = os.environ.get("LAZYEXEC_SETTLE", "")
    if env == "never":
        return -1, False
    if env == "now":
        return DEFAULT_SETTLE_THRESHOLD, True
    if env.isdigit():
        return int(env), False
    threshold = getattr(config, "settle_threshold", None)
    return (DEFAULT_SETTLE_THRESHOLD if threshold is None else threshold), False


def run_plan(module, plan, config=None) -> None:
    """Install a plan into a fresh module and run its eager part."""
    from lazyexec.importer.importlib_bootstrap import run_plan as _run_plan

    _run_plan(module, plan, config)


def _namespace(mod) -> dict:
    if isinstance(mod, str):
        mod = sys.modules[mod]
    return namespace(mod)


def pending(mod) -> list[str]:
    """Names of `mod` (a module or its name) whose defining units have not run."""
    return _lazyexec.pending(_namespace(mod))


def is_pending(mod, name: str) -> bool:
    return name in pending(mod)


def materialize_all(mod=None) -> None:
    """Run every pending unit of `mod`, or of every lazily loaded module."""
    if mod is not None:
        _lazyexec.materialize_all(_namespace(mod))
        return
    for name in list(loaded):
        m = sys.modules.get(name)
        if isinstance(m, type(sys)):  # settled modules too: their pending units are reachable by attribute
            _lazyexec.materialize_all(namespace(m))


def settle(mod=None) -> None:
    """Turn the namespace of `mod` (or of every lazily loaded module) back
    into a plain dict now: steady-state speed equals an eager import."""
    targets = [mod] if mod is not None else [sys.modules.get(n) for n in loaded]
    for m in targets:
        if isinstance(m, type(sys)):  # not a stand-in put into sys.modules under its name
            _lazyexec.settle(_namespace(m), "requested: lazyexec.settle()")


def stats() -> list[dict]:
    out = []
    for name in loaded:
        m = sys.modules.get(name)
        if not isinstance(m, type(sys)):
            continue  # gone, or replaced by another object (pygments.lexers' wrapper class is a module; some are not)
        try:
            s = _lazyexec.module_stats(namespace(m))
        except ValueError:
            continue
        s["never_used"] = s["pending"]
        out.append(s)
    return out


def print_stats(file=None) -> None:
    rows = stats()
    import os

    path = os.environ.get("LAZYEXEC_STATS_JSON")
    if path and file is None:
        # For tools (`lazyexec check`): one JSON line per process, appended.
        import json

        keep = ("module", "units", "deferred", "materialized", "never_used", "seconds")
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps([{k: s.get(k) for k in keep} for s in rows]) + "\n")
        return
    file = file or sys.stderr
    print(f"lazyexec: {len(rows)} lazily loaded module(s)", file=file)
    print(f"{'module':<40}{'units':>7}{'deferred':>10}{'materialized':>14}{'never used':>12}{'ms':>8}"
          f"{'settle forced':>15}  settled", file=file)
    for s in rows:
        print(f"{s['module']:<40}{s['units']:>7}{s['deferred']:>10}{s['materialized']:>14}{s['never_used']:>12}"
              f"{s['seconds'] * 1000:>8.1f}{s['settle_forced']:>15}  {s['settle_reason'] or 'no'}", file=file)
