"""Peer mode: importlib.util.LazyLoader applied to every source module.

The stdlib's recipe (importlib docs, "Implementing lazy imports") wraps one
loader; a user who wants it for a whole program puts the wrapped
SourceFileLoader into a FileFinder path hook, as here. Installed into the
peer's own venv by a .pth line, so it is active from interpreter start like
lazyexec's .pth activation. Not part of lazyexec: the benchmark's stand-in
for what a user would try instead.
"""
import importlib.machinery as _m
import importlib.util as _u
import sys

_hook = _m.FileFinder.path_hook(
    (_m.ExtensionFileLoader, _m.EXTENSION_SUFFIXES),
    (_u.LazyLoader.factory(_m.SourceFileLoader), _m.SOURCE_SUFFIXES),
    (_m.SourcelessFileLoader, _m.BYTECODE_SUFFIXES),
)
sys.path_hooks.insert(0, _hook)
sys.path_importer_cache.clear()
