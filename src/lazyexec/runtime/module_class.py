"""The module object itself: lazyexec's subclasses of a module's class.

A stock interpreter offers two hooks on a module object besides PEP 562:
its class's `__dict__` descriptor and `__setattr__`. lazyexec swaps a
module's class for a subclass of it (same name, qualname and repr) only while
it needs one of them, and gives the class back once nothing is pending:

- "settled": the namespace is an exact dict again, so reading it whole
  (`vars(m)`, doctest, `import *`) runs the pending units first;
- "binders": a package's pending `from .x import x` runs when importlib binds
  the freshly imported submodule `pkg.x` on it, so the package keeps the
  object it binds, as eagerly.
"""

import sys

from lazyexec import _lazyexec

# A module's real namespace, read without going through its class: a settled
# module's `__dict__` (below) completes the namespace first, lazyexec must not.
_ModuleType = type(sys)  # types.ModuleType, without importing types (start-up path)
_module_dict = _ModuleType.__dict__["__dict__"]


def namespace(module) -> dict:
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
# class back. The tables, the record of deferred imports and the packages
# hooked for them are the C++ runtime's (src/native/runtime/module_hooks.cpp,
# which a warm start uses without this module); this layer shares them.
_deferred, _, _, _swapped, _submodule_getattr = _lazyexec.module_class_state()

# swap_class(module, kind, body) -> whether the module's class is now a
# subclass of it with `body` (False: a class that cannot be swapped).
swap_class = _lazyexec.swap_class


def _swapped_kinds(cls: type) -> list[str]:
    kinds = []
    while cls in _swapped:
        cls, kind = _swapped[cls]
        kinds.append(kind)
    return kinds


def restore_class(module) -> None:
    """The module's own class back, but for the submodule miss hook, which
    belongs to the package as long as imports under it are deferred."""
    hooked = "submodules" in _swapped_kinds(type(module))
    while type(module) in _swapped:
        # object's __setattr__: the module class's own may forward the
        # write (cryptography's _ModuleWithDeprecations, swap_class).
        object.__setattr__(module, "__class__", _swapped[type(module)][0])
    if hooked:
        swap_class(module, "submodules", {"__getattr__": _submodule_getattr})


def _completing_body(cls: type) -> dict:
    body = {"__dict__": property(_complete_namespace, doc="The namespace, pending units run first.")}
    if cls.__dir__ is _ModuleType.__dir__:
        body["__dir__"] = _settled_dir
    return body


# Packages whose pending units import their own submodule and bind its name
# (`from .main import main`): namespace id -> names. The "binders" class and
# its __setattr__ are the C++ runtime's (runtime::watch_binders, on the path
# of every program importing unittest); this layer drops an entry when the
# package completes.
_submodule_binders: dict[int, set] = _lazyexec.submodule_binders()
watch_binders = _lazyexec.watch_binders


# Submodule attributes (DESIGN rule 7, docs/differences.md). Eagerly every
# `import a.b.c` / `from a.b import x` binds each submodule on its parent
# package as it runs, and so do the imports *those* modules make: `a.b` is an
# attribute of `a` from then on, and code comes to rely on it (httpie reads
# `pygments.formatter.Formatter` because some other import loaded it). A
# deferred import leaves the attribute missing. So a package with deferred
# imports under it answers a miss for one of its submodules by importing that
# submodule, as the deferred import would have. Only while an import under
# the package is still deferred somewhere: otherwise a miss is a miss, as
# eagerly.

# The plan runner (C++) records each plan's deferred imports in _deferred and
# gives the packages they import under the miss hook on their class (their
# namespace stays as is): now if already imported, else when they are (a
# meta path watcher); inspect.getmodule is patched (runtime/eager_modules.py)
# at the first one. See src/native/runtime/module_hooks.cpp.

# _deferred_under(prefix) -> whether an import of something under `prefix` is
# still deferred (entries whose import ran are dropped).
_deferred_under = _lazyexec.deferred_under


def pending_import_targets() -> list[str]:
    """The modules the imports still deferred would import."""
    _prune_deferred()
    return [t for _, _, targets in _deferred for t in targets]


def _prune_deferred() -> None:
    _deferred_under("")


def submodule_on_miss(module, attr: str):
    """`module.attr` missed: the submodule an eager run would have bound, or
    _MISSING (C++: runtime/module_hooks.cpp)."""
    found, value = _lazyexec.submodule_on_miss(module, attr)
    return value if found else _MISSING


_MISSING = object()


def on_settled(module, hot: bool) -> None:
    """Called by the runtime when `module` settles (`hot`: because its trap
    passed the threshold), and when a settled module's last pending unit has
    run."""
    g = _module_dict.__get__(module)
    cls = type(module)
    settled_before = "settled" in _swapped_kinds(cls)
    if hot and _lazyexec.complete_on_settle() and _lazyexec.has_pending(g) and not settled_before:
        # Zero overhead includes `module.attr` from other modules, which
        # CPython specializes only without a PEP 562 hook in the namespace:
        # a hot module runs what is left and drops the hook (docs/settle.md).
        _lazyexec.materialize_all(g, False, True)
    if _lazyexec.has_pending(g):
        if not swap_class(module, "settled", _completing_body(cls)):
            _lazyexec.materialize_all(g, False, True)  # cannot swap: complete now
        return
    # Complete: the module's own class back, and lazyexec's PEP 562 hooks out
    # of the namespace (with `__getattr__` present CPython does not specialize
    # `module.attr` loads), the module's own hooks back in their place.
    restore_class(module)
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

