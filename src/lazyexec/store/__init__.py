"""The store stage: one artifact per module, next to its .pyc.

Layout (docs/artifact-format.md):

    offset size  field
    0      4     magic b"LZEX"
    4      2     format version (little endian)
    6      2     flags (0)
    8      4     the interpreter's bytecode magic (importlib.util.MAGIC_NUMBER)
    12     8     source mtime in nanoseconds
    20     8     source size
    28     16    key: lazyexec version + knowledge-base hash, hashed
    44     8     check: blob_hash of every byte after the header
    52     ...   marshal payload: (units, steps), then the trailer

Invalidated like a .pyc (source mtime and size), and by interpreter magic,
format version and key. Written atomically (temp file + rename). A truncated
or corrupt artifact (its check differs) is ignored with one warning and
rebuilt before any of it is unmarshalled: never a crash, never garbage run.
"""

import marshal
import os
import sys

from lazyexec import _lazyexec
from lazyexec.config import cache_dir, caching_enabled  # noqa: F401 - part of the store's API

MAGIC = b"LZEX"
FORMAT = 14
HEADER_FORMAT = "<4sHH4sQQ16sQ"
SUFFIX = ".lzx"

# importlib's own helpers without importing importlib.util (this module is
# on the start-up path): the frozen bootstrap is always loaded.
_external = sys.modules["_frozen_importlib_external"]
PYTHON_MAGIC = _external.MAGIC_NUMBER


class CorruptArtifact(ValueError):
    pass


class Plan:
    """What the runtime needs to load one module lazily."""

    __slots__ = ("units", "steps")

    def __init__(self, units: list, steps: list):
        self.units = units  # per unit: (code or None, binds, deps, where, calls)
        self.steps = steps  # ("run", code, end) | ("force", [unit ids], 0)

    @property
    def deferred(self) -> int:
        return sum(1 for u in self.units if u[0] is not None)


def artifact_path(source_path: str, key: bytes = b"") -> str:
    """`__pycache__/NAME.TAG.KEY.lzx` (under `sys.pycache_prefix` when
    PYTHONPYCACHEPREFIX is set, as `.pyc` files): the key's first 8
    characters in the name let several lazyexec builds or configurations
    (venvs sharing one interpreter's stdlib) keep their own artifacts instead
    of overwriting each other's on every import."""
    cached = _external.cache_from_source(source_path)
    return cached[: -len(".pyc")] + _key_part(key) + SUFFIX


def _key_part(key: bytes) -> str:
    return "." + key[:8].decode("ascii", "replace") if key else ""


def opt_part() -> str:
    """`.opt-N` under -O / -OO, as importlib tags `.pyc` files: code compiled
    at another optimization level (asserts, `if __debug__:`, docstrings) must
    not be reused. The path beside the `.pyc` has it from cache_from_source."""
    return f".opt-{sys.flags.optimize}" if sys.flags.optimize else ""


def fallback_path(source_path: str, key: bytes = b"") -> str:
    digest = _lazyexec.fingerprint(os.path.abspath(source_path))
    tag = sys.implementation.cache_tag
    return os.path.join(cache_dir(), f"{digest}.{tag}{opt_part()}{_key_part(key)}{SUFFIX}")


def bytecode_writing_off() -> bool:
    """-B or PYTHONDONTWRITEBYTECODE (the interpreter reads both at start
    into sys.dont_write_bytecode), or a program that set it since."""
    return sys.dont_write_bytecode


def locations(source_path: str, key: bytes = b"") -> tuple[str, ...]:
    """Where the artifact of `source_path` may be, in the order tried: next to
    the `.pyc` first, unless byte-code writing is off (then lazyexec wrote to
    its cache directory, though a packager's `lazyexec compile` may have put
    one next to the source)."""
    near, cached = artifact_path(source_path, key), fallback_path(source_path, key)
    return (cached, near) if bytecode_writing_off() else (near, cached)


def _build_identity() -> str:
    """The compiled core that made an artifact: a rebuilt extension (same
    version number, new compiler) must not reuse old artifacts."""
    from lazyexec import _lazyexec

    try:
        st = os.stat(_lazyexec.__file__)
        return f"{st.st_mtime_ns}:{st.st_size}"
    except (OSError, AttributeError):
        return "unknown"


# knowledge.toml, as the analyze stage reads it.
KNOWLEDGE_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "analyze", "knowledge.toml")

# Changes of the Python side of planning that change plans (stored artifacts
# must not outlive them): analyze/side_effects.py, the order of plan steps.
PLAN_RULES = b"plan rules 6"

_hash_cache: dict = {}


def _knowledge_bytes() -> bytes:
    with open(KNOWLEDGE_FILE, "rb") as f:
        return f.read()


def knowledge_hash(config=None) -> str:
    """Identifies the knowledge in force; cached artifacts are keyed on it.
    The shipped file's bytes plus the configuration that extends it. Here,
    not in the analyze stage: the import hook computes it at the first module
    it claims, and importing the analyzer's Python layer then cost as much
    again."""
    h = _hash_cache.get(config)
    if h is None:
        raw = (knowledge_fingerprint().encode() + repr(config.plan_key() if config is not None else None).encode()
               + PLAN_RULES)
        h = _lazyexec.fingerprint(raw)
        _hash_cache[config] = h
    _hash_sources[h] = getattr(config, "source", None)
    return h


# The configuration file behind each knowledge hash and key made in this
# process: an artifact's trailer names it, so that pruning can tell a key
# whose configuration file is gone (store/prune.py).
_hash_sources: dict = {}
_key_sources: dict = {}


_knowledge_fingerprint: list = []


def knowledge_fingerprint() -> str:
    """knowledge.toml's fingerprint: the part of knowledge_hash() the C++
    activation reads from the never-lazy cache instead of hashing the file."""
    if not _knowledge_fingerprint:
        _knowledge_fingerprint.append(_lazyexec.fingerprint(_knowledge_bytes()))
    return _knowledge_fingerprint[0]


_keys: dict = {}


def key_for(knowledge_hash: str) -> bytes:
    key = _keys.get(knowledge_hash)
    if key is None:
        from lazyexec import __version__

        text = f"{__version__}:{FORMAT}:{knowledge_hash}:{_build_identity()}".encode()
        key = _keys[knowledge_hash] = _lazyexec.fingerprint(text).encode()
    _key_sources[key] = _hash_sources.get(knowledge_hash)
    return key


def encode(plan: Plan, mtime_ns: int, size: int, key: bytes, source: str | None = None) -> bytes:
    """The artifact's bytes; with `source`, followed by the trailer that
    store hygiene reads (which source, which build of lazyexec: see
    store/prune.py). Readers unmarshal one object after the header and
    ignore what follows it."""
    # HEADER_FORMAT by hand: no import here, the stdlib module being built
    # may be `struct` itself.
    body = marshal.dumps((plan.units, plan.steps))
    if source is not None:
        from lazyexec.store import prune

        body += prune.trailer(os.path.abspath(source), _key_sources.get(key))
    header = (MAGIC + FORMAT.to_bytes(2, "little") + bytes(2) + PYTHON_MAGIC + mtime_ns.to_bytes(8, "little")
              + size.to_bytes(8, "little") + key + _lazyexec.image_blob_hash(body).to_bytes(8, "little"))
    return header + body


def decode(data: bytes, mtime_ns: int, size: int, key: bytes) -> Plan | None:
    """The plan, None when stale, CorruptArtifact when damaged (the checks
    are the C++ reader's: src/native/importer/artifact.cpp)."""
    try:
        payload = _lazyexec.decode_plan(data, mtime_ns, size, key, PYTHON_MAGIC, FORMAT)
    except ValueError as e:
        raise CorruptArtifact(str(e)) from None
    return None if payload is None else Plan(*payload)


def write_atomic(path: str, data: bytes) -> bool:
    """Write to a unique temporary file beside `path`, then rename over it.
    No tempfile module: this runs inside the import hook, where importing
    more of the stdlib would recurse into it."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".lzx-{os.getpid()}-{os.urandom(6).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return True
    except OSError:
        return False


def load(source_path: str, mtime_ns: int, size: int, key: bytes) -> Plan | None:
    """The first valid artifact among `locations`: one read each, decoded in
    C++. A damaged one is ignored with a warning (and rebuilt)."""
    if not caching_enabled():
        return None
    payload, problems = _lazyexec.read_plan(locations(source_path, key), mtime_ns, size, key, PYTHON_MAGIC, FORMAT)
    warn_corrupt(problems)
    return None if payload is None else Plan(*payload)


def warn_corrupt(problems) -> None:
    """One warning per damaged artifact found (it is ignored and rebuilt)."""
    for path, problem in problems:
        import warnings

        warnings.warn(f"lazyexec: ignoring corrupt artifact {path} ({problem}); rebuilding", RuntimeWarning, stacklevel=3)


def save(source_path: str, plan: Plan, mtime_ns: int, size: int, key: bytes, next_to_source: bool = False) -> bool:
    """Store `plan`: next to the `.pyc` (else, when `__pycache__` is not
    writable, in the cache directory); in the cache directory only when
    byte-code writing is off, unless `next_to_source` (`lazyexec compile`,
    like compileall, writes where the sources are)."""
    if not caching_enabled():
        return False
    data = encode(plan, mtime_ns, size, key, source=source_path)
    paths = [artifact_path(source_path, key), fallback_path(source_path, key)]
    if bytecode_writing_off() and not next_to_source:
        paths = paths[1:]
    return any(write_atomic(path, data) for path in paths)
