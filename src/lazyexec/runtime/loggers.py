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

WATCHED = ("logging", "logging.config")


def install(finder) -> None:
    """At activation: patch what is loaded already, and have the finder hook
    the rest when it is found (_lazyexec.logging_found, as the C++
    activation does)."""
    for name in WATCHED:
        module = sys.modules.get(name)
        if module is not None:
            _lazyexec.patch_logging(module)
        else:
            finder.watch(name, _lazyexec.logging_found)
