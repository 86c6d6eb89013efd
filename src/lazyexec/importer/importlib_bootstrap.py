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
from lazyexec.config import Config
from lazyexec.importer import profile
from lazyexec.runtime.module_class import namespace


_builtins_dict = __builtins__ if isinstance(__builtins__, dict) else __builtins__.__dict__

# importlib's classes without importing importlib (frozen, always loaded).
_external = sys.modules["_frozen_importlib_external"]


def run_plan(module, plan, config=None, settle=None) -> None:
    from lazyexec import runtime

    g = runtime.namespace(module)
    runtime.module_class.restore_class(module)  # reloading: the module traps again
    if not dict.__contains__(g, "__builtins__"):
        # As exec() of the module's code would: a module whose every
        # statement is deferred runs no eager part, and unit code (typing's
        # Protocol[_T] on 3.12) may read its __builtins__.
        dict.__setitem__(g, "__builtins__", _builtins_dict)
    threshold, settle_now = settle if settle is not None else runtime.settle_policy(config)
    _lazyexec.install(g, plan.units, module.__name__, threshold, getattr(module, "__file__", None) or "", module)
    getattr_hook, dir_hook, own = runtime._hooks(module)
    dict.__setitem__(g, "__getattr__", getattr_hook)
    dict.__setitem__(g, "__dir__", dir_hook)
    loaded = late = ()
    for kind, payload, end in plan.steps:
        if kind == "force_late":
            late = payload
        elif kind == "bind_loaded":
            loaded = payload
            _lazyexec.set_imports(g, loaded)
            runtime.module_class.watch_submodule_binders(module, loaded)
        elif kind == "run":
            _lazyexec.set_frontier(g, end)
            mark = _lazyexec.last_key(g)
            exec(payload, g)
            # Eagerly the units from `end` on bind after this part ran: what
            # it bound as a side effect (importlib's `pkg.sub`) gives way.
            _lazyexec.supersede(g, mark, end)
        elif kind == "force":
            _lazyexec.force(g, payload)
        elif not dict.__contains__(g, "__annotations__"):  # "annotations"
            dict.__setitem__(g, "__annotations__", {})
    _lazyexec.set_frontier(g, -1)
    if late:
        _lazyexec.force(g, late)  # read by LOAD_NAME in class bodies of functions: bound as eagerly
    # The module's own PEP 562 hooks (eager dunder units) take the chain.
    for key, hook, slot in (("__getattr__", getattr_hook, "getattr"), ("__dir__", dir_hook, "dir")):
        current = dict.get(g, key)
        if current is not hook:
            own[slot] = current
            dict.__setitem__(g, key, hook)
    if loaded:
        bind_loaded(g, loaded)
    if not _lazyexec.has_pending(g):
        runtime.module_class.on_settled(module, False)  # nothing left to defer: the hooks go
    runtime.loaded.append(module.__name__)
    at_import = dict.get(g, "__at_import__")
    if callable(at_import):
        at_import()
    if settle_now:
        _lazyexec.settle(g, "requested: LAZYEXEC_SETTLE=now")


def bind_loaded(g: dict, specs) -> None:
    """Deferred imports of modules that are already in sys.modules when their
    importer finishes loading are bound now: it costs a dictionary lookup, and
    a later swap of sys.modules (`mock.patch.dict(sys.modules, ...)`,
    `test.support.import_fresh_module`) then leaves this module with the
    objects an eager import would have bound. A `from m import x` binds only
    what m's namespace already holds: a pending `x` of a lazy m stays deferred
    rather than running now."""
    modules = sys.modules
    for uid, name, mode, names, attr in specs:
        found = [modules.get(n) for n in names]
        if any(m is None for m in found):
            continue  # not imported (yet), or blocked (None): stays deferred
        if mode == "root":
            value = modules.get(names[0].partition(".")[0])
            if value is None:
                continue
        elif mode == "module":
            value = found[0]
        else:
            source = found[0]
            if isinstance(source, type(sys)):
                value = dict.get(namespace(source), attr, _MISSING)  # never runs a pending unit
            else:  # a stand-in object (a mock): eagerly its attribute is read at import
                try:
                    value = getattr(source, attr)
                except Exception:  # noqa: BLE001 - stays deferred; the error comes at first use
                    value = _MISSING
            if value is _MISSING:
                continue
        _lazyexec.resolve(g, uid, {name: value})


_MISSING = object()


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
        plan = load_or_build_plan(self.path, module.__name__, None, self.config,
                                  self.get_data, build=self._build, key=self._key)
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
                       build: str = "inline", next_to_source: bool = False, key: bytes | None = None):
    """The module's plan from its stored artifact, else (build "inline")
    analysed, compiled and stored now. None when the source cannot be read or
    there is no artifact and the build is not inline (background: queued for
    the builder); an empty plan when nothing in it can be deferred
    (remembered, not re-analysed)."""
    from lazyexec import store
    from lazyexec.store import knowledge_hash

    # While lazyexec itself loads, builds or stores a plan, the modules it
    # imports (tomllib, warnings, ...) load normally instead of recursing.
    was_busy = _lazyexec.set_busy(True)
    try:
        if key is None:
            key = store.key_for(knowledge_hash(config))
        if store.caching_enabled():
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
