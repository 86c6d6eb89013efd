"""The import stage: a sys.meta_path finder claims the modules policy selects
and leaves every other module to the normal machinery.

Finder, spec and loader stay separate (as in importlib): the finder only
answers with a spec whose loader is a LazySourceLoader.
"""

import os
import sys

from lazyexec import _lazyexec
from lazyexec.config import Config


def _finder(config: Config, eager=(), installed=None, remember_marks=False) -> "_lazyexec.Finder":
    """The C++ finder for `config`: the never-lazy set, include/exclude,
    the usage profile's whole-used modules and the installed distributions
    that opted in (`installed`: an index from installed_index(), default
    read now) compiled once into its matcher."""
    if installed is None:
        installed = installed_index()
    config = with_installed(config, installed)
    never = _never_lazy(config)
    marks = None
    if remember_marks and config.mode != "all":
        from lazyexec.importer import profile

        marks = profile.marks_path()  # activation's finder: marker verdicts beside the usage profile
    return _lazyexec.Finder(config.mode == "all", never, config.include, config.exclude, eager,
                            _loader_factory(config), config, installed[0], marks)


def _loader_factory(config: Config):
    """make_loader(fullname, path) for the finder. The loader, the plan
    runner and the runtime load with the first module the finder claims,
    not at activation."""
    loader_class = cold_class = None

    def make_loader(fullname, path, cold=False):
        nonlocal loader_class, cold_class
        if loader_class is None:
            from lazyexec.importer.importlib_bootstrap import LazySourceLoader, build_mode, load_build_stage

            loader_class = type("LazySourceLoader", (LazySourceLoader,),
                                {"config": config, "__module__": LazySourceLoader.__module__})
            cold_class = type("LazySourceLoader", (loader_class,), {"_cold": True, "__module__": LazySourceLoader.__module__})
            if build_mode(config) == "inline":
                # Before the claimed module exists: the build stage's own
                # imports (__future__, struct, ...) must not meet a partially
                # initialised module this import is about to create.
                load_build_stage()
        return (cold_class if cold else loader_class)(fullname, path)

    return make_loader


INSTALLED_INDEX_VERSION = 1
_NO_INDEX = ((), ())
_index_stale = False  # installed_index() found the index stale: rebuilt after exit


def with_installed(config: Config, installed: tuple) -> Config:
    """`config` with the `never` entries of opted-in distributions added to
    its `never`: the finder keeps those modules eager, the analyzer keeps
    imports of them eager, and artifacts are keyed on them (as on the
    configuration's own `never`)."""
    extra = tuple(n for n in installed[1] if n not in config.never)
    if not extra:
        return config
    return Config(**{**{k: getattr(config, k) for k in Config.__slots__}, "never": config.never + extra})


def installed_index_path() -> str:
    """Where `lazyexec compile --installed` keeps this environment's index of
    opted-in distributions: the cache directory, one file per environment
    (sys.prefix) and interpreter (cache tag)."""
    from lazyexec.config import cache_dir

    key = _lazyexec.fingerprint(sys.prefix + "\0" + (sys.implementation.cache_tag or ""))
    return os.path.join(cache_dir(), f"installed-{key}.marshal")


def installed_index(check: bool = True) -> tuple:
    """(opted, never) from the index of installed distributions that opted in
    (docs/package-opt-in.md): `opted` is ((site-packages dir, module names),
    ...), `never` the modules they declared never lazy. Empty when there is
    no index or (`check`) when a site-packages directory it covers changed
    since it was built: one open and one stat per directory, no
    importlib.metadata. A stale index is not used: without it every module
    loads as its marker says, as eagerly as before the opt-in."""
    import marshal

    try:
        with open(installed_index_path(), "rb") as f:
            index = marshal.loads(f.read())
        if index[0] != INSTALLED_INDEX_VERSION:
            return _NO_INDEX
        if check:
            for directory, mtime in index[1]:
                if os.stat(directory).st_mtime_ns != mtime:
                    global _index_stale
                    _index_stale = True
                    return _NO_INDEX
        return index[2], index[3]
    except (OSError, EOFError, ValueError, TypeError, IndexError):
        return _NO_INDEX


def _never_lazy(config: Config) -> list:
    """The never-lazy set: the knowledge base's plus the configuration's
    `never` and `eager_imports`."""
    return _kb_never_lazy() + list(config.never) + list(config.eager_imports)


# knowledge.toml as the C++ activation finds it: beside the extension.
KNOWLEDGE_FILE = os.path.join(os.path.dirname(_lazyexec.__file__), "analyze", "knowledge.toml")


def _kb_never_lazy() -> list:
    """The knowledge base's never-lazy entries, through a small cache stamped
    with knowledge.toml's mtime and size that the C++ activation
    (boot.cpp) reads too, with the file's fingerprint (the artifact key's
    part, store.knowledge_fingerprint(), so activation need not hash the
    file); cold, the analyze stage parses the file."""
    from lazyexec.config import cache_dir, caching_enabled

    st = os.stat(KNOWLEDGE_FILE)
    cache = os.path.join(cache_dir(), f"never-lazy-{_lazyexec.fingerprint(KNOWLEDGE_FILE)}.marshal")
    import marshal

    try:
        with open(cache, "rb") as f:
            mtime_ns, size, names, _ = marshal.loads(f.read())
        if (mtime_ns, size) == (st.st_mtime_ns, st.st_size) and isinstance(names, list):
            return names
    except (OSError, EOFError, ValueError, TypeError):
        pass
    with open(KNOWLEDGE_FILE, "rb") as f:
        names = _lazyexec.never_lazy_entries(f.read())  # without a TOML parser (as boot.cpp reads it)
    if names is None:
        from lazyexec.analyze import _parse_knowledge  # not in that simple form: parse knowledge.toml

        names = [str(n) for n in _parse_knowledge().get("never_lazy", [])]
    if caching_enabled():
        from lazyexec.store import knowledge_fingerprint, write_atomic

        # False: not cached, no harm.
        write_atomic(cache, marshal.dumps((st.st_mtime_ns, st.st_size, names, knowledge_fingerprint())))
    return names


def has_marker(source: bytes) -> bool:
    """A top-level `__lazy_module__ = True` (optionally annotated), found
    without running or parsing the module: the finder's byte scan."""
    return _lazyexec.has_marker(source)


class Policy:
    """Which modules load lazily (`lazyexec compile` and tests ask it)."""

    def __init__(self, config: Config):
        self.config = config
        self._finder = _finder(config)

    def claims(self, name: str, path: str) -> bool:
        return self._finder.claims(name, path)


# Activation from the .pth file runs in C++ (_lazyexec.boot(), boot.cpp)
# when the caches below are warm; this layer adopts what it set up.
_boot = _lazyexec.boot_state()
_active = _boot["finder"] if _boot else None  # the installed _lazyexec.Finder
_boot_loader = None


def boot_make_loader(fullname, path, cold=False):
    """The loader factory of a finder activated in C++ for the modules its
    own loader does not serve (`cold`: it found no current artifact): the
    configuration and the usage profile pass to this layer with the first."""
    global _boot_loader
    if _boot_loader is None:
        from lazyexec import config as config_mod
        from lazyexec.importer import profile

        source = _boot["source"]
        config = config_mod.from_table(_boot["table"], source) if source is not None else Config()
        profile.adopt(_boot["profile"], _boot["known"])  # keyed on the configuration as written
        config = with_installed(config, ((), _boot["installed_never"]))
        _active.config = config
        _boot_loader = _loader_factory(config)
    return _boot_loader(fullname, path, cold)


_booting_again = False


def _boot_again():
    """The activation in C++ declined for want of the configuration's parse
    cache, which config.load() has just written: it takes the start now, so
    that modules without an artifact yet take its cold path (C++, no Python
    loader per module) on a first start too. None when it declines again
    (then this layer activates; the boot's own fallback to activate() is
    told apart by `_booting_again`)."""
    global _active, _boot, _booting_again
    boot_module = sys.modules.get("lazyexec._lazyexec_boot")
    if boot_module is None or os.environ.get("LAZYEXEC_WHY") or os.environ.get("LAZYEXEC_STATS") == "1":
        return None
    _booting_again = True
    try:
        finder = boot_module.boot()
    finally:
        _booting_again = False
    if finder is None:
        return None
    _boot = _lazyexec.boot_state()
    _active = finder
    return finder


def activate(config: Config | None = None, program: str | None = None, image: str | None = None):
    """Install the finder once. LAZYEXEC=0 turns everything off. `image`
    (else LAZYEXEC_IMAGE): also serve the modules of that application image
    (lazyexec.image), ahead of the finder."""
    global _active
    if os.environ.get("LAZYEXEC") == "0" or _booting_again:
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
        if program is None and image is None and (booted := _boot_again()) is not None:
            return booted
    from lazyexec.importer import profile

    _active = _finder(config, profile.load(config, program), remember_marks=True)
    if _index_stale:  # something was installed since `compile --installed`: index again after exit
        import atexit

        atexit.register(_reindex_at_exit, config)
    # Just before PathFinder: finders ahead of it (builtin, frozen, a test
    # runner's rewriting hook) keep precedence as eagerly, and an unclaimed
    # module's spec is PathFinder's own, found once.
    path_finder = sys.modules["_frozen_importlib_external"].PathFinder
    at = sys.meta_path.index(path_finder) if path_finder in sys.meta_path else len(sys.meta_path)
    sys.meta_path.insert(at, _active)
    image = image or os.environ.get("LAZYEXEC_IMAGE")
    if image:
        from lazyexec import image as image_stage

        image_stage.activate(image, config=config)
    # exec()/eval() with a lazy module's globals and other locals read the
    # globals without the trap: the names the code mentions run first.
    _lazyexec.install_dynamic_eval()
    # Deferred logging.getLogger units run before logging configuration
    # (runtime/loggers.py); its patch points are set when logging loads, so a
    # start that never imports logging does not load the runtime for them.
    if "logging" in sys.modules or "logging.config" in sys.modules:
        from lazyexec.runtime import loggers

        loggers.install(_active)
    else:
        for name in ("logging", "logging.config"):
            _active.watch(name, _lazyexec.logging_found)
    # Compiled regular expressions kept beside the usage profile (runtime/patterns.cpp).
    _lazyexec.watch_patterns(_active, profile._path)
    why = os.environ.get("LAZYEXEC_WHY")
    if why:  # `lazyexec why`: record what loads each module (off: this one lookup)
        from lazyexec.runtime import why as why_recorder

        why_recorder.start(why)
    if os.environ.get("LAZYEXEC_STATS") == "1":
        import atexit

        from lazyexec.runtime import print_stats

        atexit.register(print_stats)
    return _active


def _reindex_at_exit(config: Config) -> None:
    """Start one detached, low-priority `lazyexec compile --installed` (index
    only: the opted-in modules' artifacts follow through the normal background
    build) unless background work is off (`build`, LAZYEXEC_BUILD,
    LAZYEXEC_CACHE). Nothing here may disturb the program's exit."""
    try:
        from lazyexec.config import BUILD_MODES, caching_enabled

        # importlib_bootstrap.build_mode's rule, without importing the loader
        # (a start that claimed nothing has not loaded it).
        env = os.environ.get("LAZYEXEC_BUILD")
        build = env if env in BUILD_MODES else (config.build or "background")
        if build == "background" and caching_enabled():
            from lazyexec.store import builder

            builder.start_builder(code="import sys; del sys.path[0]; "
                                       "from lazyexec.importer.distributions import reindex; sys.exit(reindex())")
    except Exception:  # noqa: BLE001
        pass


def deactivate() -> None:
    global _active
    if _active is not None and _active in sys.meta_path:
        sys.meta_path.remove(_active)
    _active = None
