"""lazyexec: run each module's top-level definitions only when first used.

This module is imported at every start-up lazyexec accelerates, so it imports
nothing heavy: the analyzer and the command line load on demand.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
