"""The import stage: a sys.meta_path finder claims the modules policy selects
and leaves every other module to the normal machinery.

Finder, spec and loader stay separate (as in importlib): the finder only
answers with a spec whose loader is a LazySourceLoader.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys

from lazyexec import _lazyexec
from lazyexec.config import Config

MARKER = b"__lazy_module__"
PEP810 = b"__lazy_modules__"


def has_pep810_list(source: bytes) -> bool:
    """A top-level `__lazy_modules__ = [...]` (PEP 810), by byte scan."""
    i = source.find(b"\n" + PEP810)
    return source.startswith(PEP810) or i >= 0


def has_marker(source: bytes) -> bool:
    """A top-level `__lazy_module__ = True` (optionally annotated), found
    without running or parsing the module (no `re`: this is the start-up path)."""
    start = 0
    while True:
        i = source.find(MARKER, start)
        if i < 0:
            return False
        start = i + len(MARKER)
        if i > 0 and source[i - 1] not in b"\r\n":
            continue  # not at the start of a line: not a top-level binding
        end = source.find(b"\n", start)
        rest = source[start: end if end >= 0 else len(source)].split(b"#", 1)[0]
        if b":" in rest.split(b"=", 1)[0]:
            rest = b"=" + rest.split(b"=", 1)[1] if b"=" in rest else b""
        rest = rest.strip()
        if rest.startswith(b"=") and rest[1:].strip() == b"True":
            return True


class Policy:
    def __init__(self, config: Config):
        self.config = config
        from lazyexec.analyze import knowledge_data

        kb = knowledge_data(config)
        self.never = list(kb["never_lazy"])

    def _match(self, patterns, name: str) -> bool:
        return any(_lazyexec.glob_match(p, name) for p in patterns)

    def never_lazy(self, name: str) -> bool:
        parts = name.split(".")
        return any(self._match(self.never, ".".join(parts[: i + 1])) for i in range(len(parts)))

    def claims(self, name: str, path: str) -> bool:
        if self.never_lazy(name) or self._match(self.config.exclude, name):
            return False
        if self.config.include and not self._match(self.config.include, name):
            return False
        if self.config.mode == "all":
            return True
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return False
        return has_marker(data) or has_pep810_list(data)


from lazyexec.importer.importlib_bootstrap import LazySourceLoader, busy  # noqa: E402


class LazyFinder:
    """Placed first on sys.meta_path by lazyexec.activate()."""

    def __init__(self, config: Config):
        self.config = config
        self.policy = Policy(config)
        self.loader_class = type("LazySourceLoader", (LazySourceLoader,), {"config": config})

    def find_spec(self, fullname, path=None, target=None):
        if getattr(busy, "active", False):
            return None  # lazyexec's own imports while it builds a plan
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None
        origin = spec.origin
        if not origin or not origin.endswith(".py") or not self.policy.claims(fullname, origin):
            return None
        spec.loader = self.loader_class(fullname, origin)
        return spec

    def invalidate_caches(self):
        pass


_active: LazyFinder | None = None


def activate(config: Config | None = None) -> LazyFinder | None:
    """Install the finder once. LAZYEXEC=0 turns everything off."""
    global _active
    if os.environ.get("LAZYEXEC") == "0":
        return None
    if _active is not None:
        return _active
    if config is None:
        from lazyexec import config as config_mod

        try:
            config = config_mod.load()
        except config_mod.ConfigError as e:
            import warnings

            warnings.warn(f"lazyexec: {e}; lazy loading is off", RuntimeWarning, stacklevel=2)
            return None
    _active = LazyFinder(config)
    sys.meta_path.insert(0, _active)
    # exec()/eval() with a lazy module's globals and other locals read the
    # globals without the trap: the names the code mentions run first.
    _lazyexec.install_dynamic_eval()
    if os.environ.get("LAZYEXEC_STATS") == "1":
        import atexit

        from lazyexec.runtime import print_stats

        atexit.register(print_stats)
    return _active


def deactivate() -> None:
    global _active
    if _active is not None and _active in sys.meta_path:
        sys.meta_path.remove(_active)
    _active = None
