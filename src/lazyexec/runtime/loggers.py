"""Deferred `logging.getLogger(...)` definitions and logging configuration.

`log = logging.getLogger(__name__)` at top level is deferred like any pure
definition. One thing can observe when a logger was created: configuration
that acts on the loggers existing at that moment. `logging.config.dictConfig`
and `fileConfig` disable every existing logger they do not name
(`disable_existing_loggers`, true by default), and `logging.setLoggerClass`
changes the class of loggers created afterwards. So before either runs, every
pending unit of every lazily loaded module that mentions `getLogger` runs
(lazyexec._lazyexec.materialize_mentioning), and the configuration sees the
loggers an eager run would have created by then.

The patch points are installed when `logging` / `logging.config` finish
loading (lazyexec's finder watches those two names until both are patched:
one dict lookup per import, in C++) or at activation when they are loaded
already. A wrapped function (C++, runtime/loggers.cpp) keeps its name,
signature and `__wrapped__`, as functools.wraps would.
"""


import sys

from lazyexec import _lazyexec

NEEDLE = "getLogger"
WATCHED = ("logging", "logging.config")


def materialize_pending_loggers() -> int:
    return _lazyexec.materialize_mentioning(NEEDLE)


def patch(module) -> None:
    """Install the patch points in `logging` or `logging.config` (C++:
    runtime/loggers.cpp; a wrapped function keeps its name, signature and
    `__wrapped__`)."""
    _lazyexec.patch_logging(module)


_unpatched = set(WATCHED)


def install(finder) -> None:
    """At activation, when logging is loaded already: patch what is loaded,
    and have the finder hook the rest when it is found."""
    for name in WATCHED:
        module = sys.modules.get(name)
        if module is not None:
            patch(module)
            _unpatched.discard(name)
    for name in _unpatched:
        finder.watch(name, lambda spec: hook(spec, finder))


def hook(spec, finder=None):
    """The loader runs the module, then patches it (_lazyexec.after_exec);
    the finder stops watching the name once it is patched. A loader that
    takes no hook: configuration sees the loggers that exist."""
    _lazyexec.after_exec(spec.loader, patched)
    return spec


def patched(module) -> None:
    """After logging or logging.config ran (also from the C++ activation's
    watch): its patch points, and the active finder stops watching it."""
    patch(module)
    name = getattr(module, "__name__", "")
    _unpatched.discard(name)
    for finder in sys.meta_path:
        if type(finder) is _lazyexec.Finder:
            finder.watch(name, None)
