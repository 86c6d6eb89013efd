"""The lazy loader and the plan runner: the frames between importlib and a
module's own code.

The file name holds "importlib" and "_bootstrap" on purpose: `warnings`
skips such frames when it counts `stacklevel` (its `_is_internal_frame`), as
it skips importlib's own, so a module warning at import time with
`stacklevel=2` still points at the code that imported it.
"""

import os
import sys

from lazyexec import _lazyexec
from lazyexec.config import Config, cache_dir as _cache_dir, caching_enabled as _caching_enabled
from lazyexec.importer import profile


_builtins_dict = __builtins__ if isinstance(__builtins__, dict) else __builtins__.__dict__

# importlib's classes without importing importlib (frozen, always loaded).
_external = sys.modules["_frozen_importlib_external"]


def run_plan(module, plan, config=None, settle=None) -> None:
    """Install `plan` into a fresh module and run its eager part: the C++ plan
    runner (src/native/importer/loader.cpp), which the warm path calls
    without this layer."""
    from lazyexec import runtime

    runtime.module_class.restore_class(module)  # reloading: the module traps again
    threshold, settle_now = settle if settle is not None else runtime.settle_policy(config)
    _lazyexec.run_plan(module, plan.units, plan.steps, threshold, settle_now)


class LazySourceLoader(_external.SourceFileLoader):
    config: Config = Config()

    # Equal to the SourceFileLoader an eager import would have used for the
    # same module and file (and hashed alike), so module specs compare as
    # eagerly: pydoc.importfile(m.__file__).__spec__ == m.__spec__. FileLoader
    # compares classes exactly; as a subclass this __eq__ is tried first.
    def __eq__(self, other):
        if isinstance(other, _external.SourceFileLoader) and (
                type(other) is _external.SourceFileLoader or isinstance(other, LazySourceLoader)):
            return self.__dict__ == other.__dict__
        return NotImplemented

    __hash__ = _external.SourceFileLoader.__hash__

    # What the configuration decides for every module, computed once per
    # loader class (one per activation): see prepare().
    _build: str | None = None
    _key: bytes | None = None
    _settle: tuple | None = None
    # The C++ finder found no current artifact when it claimed the module
    # (importer/loader.cpp): the warm path is not tried again.
    _cold: bool = False

    @classmethod
    def prepare(cls) -> None:
        from lazyexec import runtime, store
        from lazyexec.store import knowledge_hash

        cls._build = build_mode(cls.config)
        cls._key = store.key_for(knowledge_hash(cls.config))
        cls._settle = runtime.settle_policy(cls.config)

    def exec_module(self, module):
        if self._key is None:
            self.prepare()
        if not self._cold and _caching_enabled() and \
                _lazyexec.exec_warm(self, module, self._key, _cache_dir(), *self._settle):
            return  # the current artifact served it: the warm path, in C++ (importer/loader.cpp)
        plan = load_or_build_plan(self.path, module.__name__, None, self.config,
                                  self.get_data, build=self._build, key=self._key, known_missing=self._cold)
        if plan is not None and not plan.units:
            profile.nothing_to_defer.append(module.__name__)
        if plan is None or not plan.units:
            return super().exec_module(module)  # nothing to defer, or no artifact yet: the normal .pyc path
        run_plan(module, plan, self.config, self._settle)


from lazyexec.config import BUILD_MODES  # noqa: E402


def build_mode(config: Config) -> str:
    """What a module without a valid artifact does: `background` (load
    eagerly, artifact built after exit), `inline` (analyse now, on the
    start-up path) or `off` (load eagerly; only `lazyexec compile` builds).
    LAZYEXEC_BUILD overrides the configuration's `build`."""
    env = os.environ.get("LAZYEXEC_BUILD")
    if env in BUILD_MODES:
        return env
    return config.build or "background"


def load_build_stage() -> None:
    """Import the analyze and compile stages now, normally (not through
    lazyexec's finder): an inline build imports them on first use, which can
    be while a module they import is half-initialised."""
    was_busy = _lazyexec.set_busy(True)
    try:
        from lazyexec import analyze, compile  # noqa: F401
    finally:
        _lazyexec.set_busy(was_busy)


def _is_package(path: str, name: str) -> bool:
    """FileLoader.is_package() without a loader: `__init__.py` of a module
    not itself named `__init__`."""
    return os.path.basename(path).rsplit(".", 1)[0] == "__init__" and name.rpartition(".")[2] != "__init__"


def load_or_build_plan(path: str, name: str, is_package: bool | None, config: Config, get_data=None,
                       build: str = "inline", next_to_source: bool = False, key: bytes | None = None,
                       known_missing: bool = False):
    """The module's plan from its stored artifact, else (build "inline")
    analysed, compiled and stored now. None when the source cannot be read or
    there is no artifact and the build is not inline (background: queued for
    the builder); an empty plan when nothing in it can be deferred
    (remembered, not re-analysed). `known_missing`: the C++ loader found no
    current artifact a moment ago (not read again)."""
    from lazyexec import store
    from lazyexec.store import knowledge_hash

    # While lazyexec itself loads, builds or stores a plan, the modules it
    # imports (tomllib, warnings, ...) load normally instead of recursing.
    was_busy = _lazyexec.set_busy(True)
    try:
        if key is None:
            key = store.key_for(knowledge_hash(config))
        if store.caching_enabled() and not known_missing:
            # One C++ call: stat, both locations, read and decode (store.load).
            found = _lazyexec.load_plan(path, key, store.PYTHON_MAGIC, store.FORMAT, store.cache_dir(),
                                        store.bytecode_writing_off())
            if found is None:
                return None  # the source is gone
            mtime_ns, size, payload, problems = found
            store.warn_corrupt(problems)
            plan = None if payload is None else store.Plan(*payload)
        else:
            try:
                st = os.stat(path)
            except OSError:
                return None
            mtime_ns, size, plan = st.st_mtime_ns, st.st_size, None
        if plan is None:
            if build != "inline":
                if build == "background":
                    from lazyexec.store import builder

                    builder.remember(path, name, _is_package(path, name) if is_package is None else is_package,
                                     config)
                return None
            try:
                if get_data is not None:
                    source = get_data(path)
                else:
                    with open(path, "rb") as f:
                        source = f.read()
            except OSError:
                return None
            from lazyexec import compile as compile_stage  # cold path only

            # A module of an installed distribution that opted in needs no
            # marker (importer/distributions.py).
            require_marker = config.mode == "marked" and not _distribution_opted(name, path)
            if is_package is None:
                is_package = _is_package(path, name)
            plan = compile_stage.build_plan(source, path, name, is_package, config,
                                            require_marker=require_marker, pep810=True)
            plan = plan or store.Plan([], [])
            store.save(path, plan, mtime_ns, size, key, next_to_source=next_to_source)
        return plan
    finally:
        _lazyexec.set_busy(was_busy)


def _distribution_opted(name: str, path: str) -> bool:
    from lazyexec.importer import distributions

    return distributions.opted(name, path)
