"""Configuration: `[tool.lazyexec]` in the application's pyproject.toml, or
the TOML file named by LAZYEXEC_CONFIG (a file of its own, keys at top level
or under [tool.lazyexec]).

Unknown keys and wrong types are errors that name the file: a typo must not
silently change what runs lazily.
"""

import os

MODES = ("marked", "all")
BUILD_MODES = ("background", "inline", "off")  # docs/startup.md
DEFERS = ("all", "imports")

_LIST_KEYS = ("include", "exclude", "never", "pure", "pure_bases", "pure_metaclasses", "eager_imports")


def caching_enabled() -> bool:
    """`LAZYEXEC_CACHE=off` (or 0): artifacts and caches are neither read nor written."""
    return os.environ.get("LAZYEXEC_CACHE", "").lower() not in ("off", "0", "no")


_cache_dirs: dict = {}


def cache_dir() -> str:
    """As `user_cache_dir()`, computed once per environment (the import hook
    asks for every module)."""
    env = os.environ
    at = (env.get("LAZYEXEC_CACHE_DIR"), env.get("XDG_CACHE_HOME"))
    found = _cache_dirs.get(at)
    if found is None:
        found = _cache_dirs[at] = user_cache_dir()
    return found


def user_cache_dir() -> str:
    """lazyexec's user cache directory: `LAZYEXEC_CACHE_DIR`, else
    `$XDG_CACHE_HOME/lazyexec`, else `~/.cache/lazyexec`. Artifacts go there
    wherever a `.pyc` cannot (`PYTHONDONTWRITEBYTECODE`, a read-only
    `__pycache__`), with the parse caches, usage profiles and build queue."""
    explicit = os.environ.get("LAZYEXEC_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lazyexec")


def knowledge_cache_path(raw: bytes) -> str:
    """The parsed knowledge base (marshal), keyed on knowledge.toml's bytes."""
    from lazyexec import _lazyexec

    return os.path.join(cache_dir(), f"knowledge-{_lazyexec.fingerprint(raw)}.marshal")


class ConfigError(ValueError):
    """A configuration file is malformed; the message names the file."""


class Config:
    """The configuration in force. Immutable and hashable (it keys caches).

    A plain class rather than a dataclass: this module is on the start-up
    path of every program lazyexec runs, and dataclasses imports inspect.
    """

    __slots__ = ("mode", "defer", "include", "exclude", "never", "pure", "pure_bases", "pure_metaclasses",
                 "eager_imports", "settle_threshold", "settle_complete", "build", "usage_profile", "source")

    def __init__(self, mode: str = "marked", include=(), exclude=(), never=(), pure=(), pure_bases=(),
                 pure_metaclasses=(), eager_imports=(), settle_threshold: int | None = None,
                 settle_complete: bool | None = None, build: str | None = None, source: str | None = None,
                 defer: str = "all", usage_profile: bool | None = None):
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "defer", defer)
        for key, value in (("include", include), ("exclude", exclude), ("never", never), ("pure", pure),
                           ("pure_bases", pure_bases), ("pure_metaclasses", pure_metaclasses),
                           ("eager_imports", eager_imports)):
            object.__setattr__(self, key, tuple(value))
        object.__setattr__(self, "settle_threshold", settle_threshold)
        object.__setattr__(self, "settle_complete", settle_complete)
        object.__setattr__(self, "build", build)
        object.__setattr__(self, "usage_profile", usage_profile)
        object.__setattr__(self, "source", source)

    def __setattr__(self, key, value):
        raise AttributeError("Config is immutable")

    def _key(self):
        return tuple(getattr(self, k) for k in self.__slots__ if k != "source")

    def plan_key(self):
        """What decides a module's plan (stored artifacts are keyed on it):
        not `include`/`exclude` (which modules, not how) nor the settle policy."""
        return (self.mode, self.defer, self.never, self.pure, self.pure_bases, self.pure_metaclasses, self.eager_imports)

    def __eq__(self, other):
        return isinstance(other, Config) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return "Config(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


def toml_loads(text: str, source: str) -> dict:
    """TOML through the extension's reader (importer/toml.cpp), else tomllib
    (3.11+) or tomli (3.10), imported only for a file that reader leaves to
    them (dates, an error to report); errors name `source`. tomllib and what
    it imports (re, string, typing, datetime) would otherwise load on every
    start that parses a file, and in the middle of another module's lazy
    loading in an inline build."""
    from lazyexec import _lazyexec

    data = _lazyexec.toml_loads(text.encode("utf-8", "surrogatepass"))
    if data is not None:
        return data
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError(f"{source}: cannot be read: no TOML parser on this Python "
                              f"(install tomli, which `pip install lazyexec` brings on 3.10)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: invalid TOML: {e}") from None


def _toml_load(path: str) -> dict:
    """Parsed TOML, from a marshal cache keyed on the file's mtime and size
    when there is one: tomllib and what it imports (datetime, string, ...)
    cost milliseconds and memory at every start-up lazyexec accelerates."""
    import marshal

    try:
        st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    cache = _parse_cache_path(path)
    if stamp is not None:
        try:
            with open(cache, "rb") as f:
                cached_stamp, data = marshal.loads(f.read())
            if tuple(cached_stamp) == stamp and isinstance(data, dict):
                return data
        except (OSError, EOFError, ValueError, TypeError):
            pass  # no cache, or a damaged one: parse again
    with open(path, "rb") as f:
        data = toml_loads(f.read().decode("utf-8"), path)
    if stamp is not None and caching_enabled():  # lazyexec's own cache directory, not the source tree
        try:
            payload = marshal.dumps((stamp, data))
        except ValueError:
            return data  # values marshal cannot hold (TOML dates): not cached
        from lazyexec.store import write_atomic

        write_atomic(cache, payload)
    return data


def _parse_cache_path(path: str) -> str:
    from lazyexec import _lazyexec

    # abspath, not realpath: activation in C++ computes the same name
    # without a readlink() per path component (boot.cpp absolute()).
    return os.path.join(cache_dir(), f"config-{_lazyexec.fingerprint(os.path.abspath(path))}.marshal")


def from_table(table: dict, source: str) -> Config:
    known = set(_LIST_KEYS) | {"mode", "defer", "settle_threshold", "settle_complete", "build", "usage_profile"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown [tool.lazyexec] key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values: dict = {"source": source}
    mode = table.get("mode", "marked")
    if mode not in MODES:
        raise ConfigError(f"{source}: mode must be one of {', '.join(repr(m) for m in MODES)}, not {mode!r}")
    values["mode"] = mode
    defer = table.get("defer", "all")
    if defer not in DEFERS:
        raise ConfigError(f"{source}: defer must be one of {', '.join(repr(d) for d in DEFERS)}, not {defer!r}")
    values["defer"] = defer
    for key in _LIST_KEYS:
        v = table.get(key, [])
        if isinstance(v, str) or not all(isinstance(x, str) for x in v):
            raise ConfigError(f"{source}: {key} must be a list of strings")
        values[key] = tuple(v)
    threshold = table.get("settle_threshold")
    if threshold is not None and (not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0):
        raise ConfigError(f"{source}: settle_threshold must be a non-negative integer")
    values["settle_threshold"] = threshold
    for key in ("settle_complete", "usage_profile"):
        flag = table.get(key)
        if flag is not None and not isinstance(flag, bool):
            raise ConfigError(f"{source}: {key} must be true or false")
        values[key] = flag
    build = table.get("build")
    if build is not None and build not in BUILD_MODES:
        raise ConfigError(f"{source}: build must be one of {', '.join(repr(m) for m in BUILD_MODES)}, not {build!r}")
    values["build"] = build
    return Config(**values)


def find_pyproject(start: str) -> str | None:
    d = start
    while True:
        candidate = os.path.join(d, "pyproject.toml")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def load(start: str | os.PathLike | None = None) -> Config:
    """The configuration in force for an application started in `start`."""
    explicit = os.environ.get("LAZYEXEC_CONFIG")
    if explicit:
        path = explicit
        if not os.path.isfile(path):
            raise ConfigError(f"LAZYEXEC_CONFIG names {path}, which is not a file")
        data = _toml_load(path)
        table = data.get("tool", {}).get("lazyexec", data) if "tool" in data else data
        return from_table(table, str(path))
    pyproject = find_pyproject(os.path.realpath(os.fspath(start or os.getcwd())))
    if pyproject is None:
        return Config()
    try:
        with open(pyproject, "rb") as f:
            if b"[tool.lazyexec" not in f.read():
                return Config()  # no [tool.lazyexec]: skip the TOML parser on the start-up path
    except OSError:
        return Config()
    table = _toml_load(pyproject).get("tool", {}).get("lazyexec")
    if table is None:
        return Config()
    return from_table(table, pyproject)
