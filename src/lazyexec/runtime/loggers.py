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
loading (a meta path finder watches those two names until both are patched)
or at activation when they are loaded already. A wrapped function keeps its name,
signature and `__wrapped__` (functools.wraps).
"""


import sys

from lazyexec import _lazyexec

NEEDLE = "getLogger"
WATCHED = ("logging", "logging.config")


def materialize_pending_loggers() -> int:
    return _lazyexec.materialize_mentioning(NEEDLE)


def _wrap(function):
    import functools

    if getattr(function, "_lazyexec_loggers", False):
        return function

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        materialize_pending_loggers()
        return function(*args, **kwargs)

    wrapper._lazyexec_loggers = True
    return wrapper


def patch(module) -> None:
    """Install the patch points in `logging` or `logging.config`."""
    name = getattr(module, "__name__", "")
    try:
        if name == "logging.config":
            module.fileConfig = _wrap(module.fileConfig)
            # dictConfig() and logging.config.listen() both end in configure().
            cls = module.DictConfigurator
            cls.configure = _wrap(cls.configure)
        elif name == "logging":
            module.setLoggerClass = _wrap(module.setLoggerClass)
            module.Manager.setLoggerClass = _wrap(module.Manager.setLoggerClass)
    except AttributeError:
        pass  # a logging we do not know: nothing to patch


_unpatched = set(WATCHED)


def install() -> None:
    """At activation: patch what is loaded already, and watch for the rest."""
    for name in WATCHED:
        module = sys.modules.get(name)
        if module is not None:
            patch(module)
            _unpatched.discard(name)
    if _unpatched and not any(isinstance(f, _Watcher) for f in sys.meta_path):
        sys.meta_path.insert(0, _Watcher())


class _Watcher:
    """A meta path finder that finds nothing itself: for `logging` and
    `logging.config` it asks the finders after it and has the module patched
    once its loader has run; every other import costs it one set lookup. It
    leaves sys.meta_path once both are patched."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _unpatched:
            return None
        finders = sys.meta_path
        i = finders.index(self) if self in finders else -1
        for finder in finders[i + 1:]:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                return _hook(spec, self)
        return None

    def invalidate_caches(self):
        pass


def _hook(spec, watcher):
    """The loader runs the module, then patches it. The hook is an instance
    attribute removed first thing, so the loader compares and hashes as one an
    eager import made."""
    loader = spec.loader
    original = getattr(loader, "exec_module", None)
    if original is None:
        return spec

    def exec_module(module):
        try:
            vars(loader).pop("exec_module", None)
        except TypeError:
            pass
        original(module)
        patch(module)
        _unpatched.discard(module.__name__)
        if not _unpatched and watcher in sys.meta_path:
            sys.meta_path.remove(watcher)

    try:
        loader.exec_module = exec_module
    except (AttributeError, TypeError):
        pass  # no instance dict: configuration sees the loggers that exist
    return spec
