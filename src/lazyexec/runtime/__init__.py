"""The runtime from Python: run a module's plan, PEP 562 hooks, the API.

Materialization itself is C++ (src/native/runtime); this layer installs a
module's plan and offers the public API (`lazyexec.pending` etc.).
"""

from __future__ import annotations

import sys
import types

from lazyexec import _lazyexec

# Modules loaded lazily in this process, in load order (for stats).
loaded: list[str] = []


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

# A module's real namespace, read without going through its class: a settled
# module's `__dict__` (below) completes the namespace first, lazyexec must not.
_module_dict = types.ModuleType.__dict__["__dict__"]


def namespace(module: types.ModuleType) -> dict:
    return _module_dict.__get__(module)


def _complete_namespace(module) -> dict:
    """`module.__dict__` of a settled module with pending units. The namespace
    is an exact dict again, so iterating it (doctest, `vars()`, pydoc, `import
    *`) cannot trap: run the pending units first, as an eager module would
    have. A failing unit stays pending; its error reaches whoever uses its name,
    as reading `__dict__` never fails eagerly."""
    g = _module_dict.__get__(module)
    _lazyexec.materialize_all(g, False, True)
    return g


def _settled_dir(module) -> list:
    """`dir()` of a settled module: as ModuleType's, on the namespace as is
    (listing a name must not run it)."""
    g = _module_dict.__get__(module)
    hook = g.get("__dir__")
    return list(hook()) if callable(hook) else list(g)


# lazyexec's module subclasses: (class, kind) -> subclass, and subclass ->
# (class, kind). Same name, qualname and module as the class they extend, so
# `type(m).__name__` and reprs do not change; a complete module gets its own
# class back.
_subclasses: dict[tuple[type, str], type] = {}
_swapped: dict[type, tuple[type, str]] = {}


def _swap_class(module, kind: str, body: dict) -> bool:
    cls = type(module)
    if any(k == kind for k in _swapped_kinds(cls)):
        return True
    sub = _subclasses.get((cls, kind))
    try:
        if sub is None:
            body = {"__slots__": (), "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                    "__doc__": cls.__doc__, **body}
            sub = type(cls)(cls.__name__, (cls,), body)
            _subclasses[(cls, kind)] = sub
            _swapped[sub] = (cls, kind)
        module.__class__ = sub
        return True
    except TypeError:  # a module class that cannot be subclassed or swapped
        return False


def _swapped_kinds(cls: type) -> list[str]:
    kinds = []
    while cls in _swapped:
        cls, kind = _swapped[cls]
        kinds.append(kind)
    return kinds


def _restore_class(module) -> None:
    while type(module) in _swapped:
        module.__class__ = _swapped[type(module)][0]


def _completing_body(cls: type) -> dict:
    body = {"__dict__": property(_complete_namespace, doc="The namespace, pending units run first.")}
    if cls.__dir__ is types.ModuleType.__dir__:
        body["__dir__"] = _settled_dir
    return body


# Packages whose pending units import their own submodule and bind its name
# (`from .main import main`): namespace id -> {name: package name}.
_submodule_binders: dict[int, set] = {}


def _binding_setattr(module, name, value):
    """`setattr(package, "main", <module package.main>)`, as importlib binds a
    submodule it has just loaded, while the package's own pending `from .main
    import main` would, eagerly, have imported that submodule at the
    package's import and then bound `main` over it: run that unit now instead,
    so the package ends up as eagerly (`unittest.main` is the function)."""
    g = _module_dict.__get__(module)
    names = _submodule_binders.get(id(g))
    if names and name in names and value is sys.modules.get(f"{module.__name__}.{name}"):
        try:
            found, _ = _lazyexec.lookup(g, name)
        except Exception:  # noqa: BLE001 - the unit stays pending and raises where its name is used
            found = False
        if found:
            return
    cls = type(module)
    while cls in _swapped and _swapped[cls][1] != "binders":
        cls = _swapped[cls][0]
    super(cls, module).__setattr__(name, value)  # the module class's own __setattr__


def watch_submodule_binders(module, specs) -> None:
    """From run_plan: `specs` are the plan's lazy import units
    (unit, name, mode, modules, attr)."""
    if not hasattr(module, "__path__"):
        return
    prefix = module.__name__ + "."
    names = {name for _, name, mode, modules, _ in specs if mode == "from" and modules[0] == prefix + name}
    if names and _swap_class(module, "binders", {"__setattr__": _binding_setattr}):
        _submodule_binders[id(_module_dict.__get__(module))] = names


# Whether a settling module also runs its units still pending (settle_policy).
complete_on_settle = True


def _on_settled(module, hot: bool) -> None:
    """Called by the runtime when `module` settles (`hot`: because its trap
    passed the threshold), and when a settled module's last pending unit has
    run."""
    g = _module_dict.__get__(module)
    cls = type(module)
    settled_before = "settled" in _swapped_kinds(cls)
    if hot and complete_on_settle and _lazyexec.pending(g) and not settled_before:
        # Zero overhead includes `module.attr` from other modules, which
        # CPython specializes only without a PEP 562 hook in the namespace:
        # a hot module runs what is left and drops the hook (docs/settle.md).
        _lazyexec.materialize_all(g, False, True)
    if _lazyexec.pending(g):
        if not _swap_class(module, "settled", _completing_body(cls)):
            _lazyexec.materialize_all(g, False, True)  # cannot swap: complete now
        return
    # Complete: the module's own class back, and lazyexec's PEP 562 hooks out
    # of the namespace (with `__getattr__` present CPython does not specialize
    # `module.attr` loads), the module's own hooks back in their place.
    _restore_class(module)
    _submodule_binders.pop(id(g), None)
    for key, slot in (("__getattr__", "getattr"), ("__dir__", "dir")):
        hook = dict.get(g, key)
        own = getattr(hook, "_lazyexec_own", None)
        if own is None:
            continue  # not ours (rebound by the module)
        if own.get(slot) is not None:
            dict.__setitem__(g, key, own[slot])
        else:
            dict.pop(g, key, None)


_lazyexec.set_settled_hook(_on_settled)


def _hooks(module: types.ModuleType):
    """The module's PEP 562 __getattr__ and __dir__, chaining to its own."""
    g = module.__dict__
    name = module.__name__
    own: dict = {}

    def __getattr__(attr):
        found, value = _lazyexec.lookup(g, attr)
        if found:
            return value
        if attr == "__all__":
            # `from m import *` without __all__: every public pending unit runs
            # first, so the star import then sees them in __dict__.
            _lazyexec.materialize_all(g, True)
        own_getattr = own.get("getattr")
        if own_getattr is not None:
            return own_getattr(attr)
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    def __dir__():
        own_dir = own.get("dir")
        names = set(own_dir()) if own_dir is not None else set(dict.keys(g))
        names.update(_lazyexec.pending(g))
        if own.get("getattr") is None:
            names.discard("__getattr__")
        if own_dir is None:
            names.discard("__dir__")
        return sorted(names)

    __getattr__._lazyexec_own = __dir__._lazyexec_own = own  # read when the module is complete
    return __getattr__, __dir__, own


DEFAULT_SETTLE_THRESHOLD = 10000  # why this number: docs/settle.md


def settle_policy(config=None) -> tuple[int, bool]:
    """(threshold, settle right after import). LAZYEXEC_SETTLE overrides the
    configuration: "never", "now", or a number of trap lookups.
    LAZYEXEC_SETTLE_COMPLETE=0|1 overrides `settle_complete` (sets the
    process-wide `complete_on_settle`)."""
    import os

    global complete_on_settle
    complete = os.environ.get("LAZYEXEC_SETTLE_COMPLETE", "")
    if complete in ("0", "1"):
        complete_on_settle = complete == "1"
    elif getattr(config, "settle_complete", None) is not None:
        complete_on_settle = config.settle_complete
    env = os.environ.get("LAZYEXEC_SETTLE", "")
    if env == "never":
        return -1, False
    if env == "now":
        return DEFAULT_SETTLE_THRESHOLD, True
    if env.isdigit():
        return int(env), False
    threshold = getattr(config, "settle_threshold", None)
    return (DEFAULT_SETTLE_THRESHOLD if threshold is None else threshold), False


def run_plan(module: types.ModuleType, plan, config=None) -> None:
    """Install a plan into a fresh module and run its eager part."""
    from lazyexec.importer.importlib_bootstrap import run_plan as _run_plan

    _run_plan(module, plan, config)


def _namespace(mod) -> dict:
    if isinstance(mod, str):
        mod = sys.modules[mod]
    return _module_dict.__get__(mod)


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
        if m is not None:  # settled modules too: their pending units are reachable by attribute
            _lazyexec.materialize_all(_module_dict.__get__(m))


def settle(mod=None) -> None:
    """Turn the namespace of `mod` (or of every lazily loaded module) back
    into a plain dict now: steady-state speed equals an eager import."""
    targets = [mod] if mod is not None else [sys.modules.get(n) for n in loaded]
    for m in targets:
        if m is not None:
            _lazyexec.settle(_namespace(m), "requested: lazyexec.settle()")


def stats() -> list[dict]:
    out = []
    for name in loaded:
        m = sys.modules.get(name)
        if m is None:
            continue
        try:
            s = _lazyexec.module_stats(_module_dict.__get__(m))
        except ValueError:
            continue
        s["never_used"] = s["pending"]
        out.append(s)
    return out


def print_stats(file=None) -> None:
    file = file or sys.stderr
    rows = stats()
    print(f"lazyexec: {len(rows)} lazily loaded module(s)", file=file)
    print(f"{'module':<40}{'units':>7}{'deferred':>10}{'materialized':>14}{'never used':>12}{'ms':>8}"
          f"{'settle forced':>15}  settled", file=file)
    for s in rows:
        print(f"{s['module']:<40}{s['units']:>7}{s['deferred']:>10}{s['materialized']:>14}{s['never_used']:>12}"
              f"{s['seconds'] * 1000:>8.1f}{s['settle_forced']:>15}  {s['settle_reason'] or 'no'}", file=file)
