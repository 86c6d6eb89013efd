"""lazyexec: run each module's top-level definitions only when first used.

This module is imported at every start-up lazyexec accelerates, so it imports
nothing heavy: the analyzer, runtime and command line load on demand.
"""

__version__ = "0.1.0"

import sys as _sys

# Loaded by the .pth line before this package (cli/pth.py): bound here as
# an import of the submodule would have bound it.
if "lazyexec._lazyexec" in _sys.modules:
    _lazyexec = _sys.modules["lazyexec._lazyexec"]
del _sys

__all__ = ["__version__", "activate", "pending", "is_pending", "materialize_all", "settle", "stats"]


def activate(config=None, program=None, image=None):
    """Load modules selected by policy lazily from now on. `program` names
    the program for its usage profile (default: from the command line);
    `image` (else LAZYEXEC_IMAGE) an application image to serve modules from."""
    from lazyexec.importer import activate as _activate

    return _activate(config, program, image)


def pending(mod):
    """Names of `mod` whose defining statements have not run yet."""
    from lazyexec.runtime import pending as _pending

    return _pending(mod)


def is_pending(mod, name):
    from lazyexec.runtime import is_pending as _is_pending

    return _is_pending(mod, name)


def materialize_all(mod=None):
    """Run every pending unit (of `mod`, or of every lazily loaded module)."""
    from lazyexec.runtime import materialize_all as _materialize_all

    return _materialize_all(mod)


def settle(mod=None):
    """Turn `mod`'s namespace (or every lazily loaded module's) back into a plain dict now."""
    from lazyexec.runtime import settle as _settle

    return _settle(mod)


def stats():
    """Per lazily loaded module: units, deferred, materialized, never used, time."""
    from lazyexec.runtime import stats as _stats

    return _stats()
