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
    44     ...   marshal payload: (units, steps)

Invalidated like a .pyc (source mtime and size), and by interpreter magic,
format version and key. Written atomically (temp file + rename). A truncated
or corrupt artifact is ignored with one warning and rebuilt: never a crash.
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import struct
import sys
import zlib

MAGIC = b"LZEX"
FORMAT = 7
HEADER = struct.Struct("<4sHH4sQQ16s")
SUFFIX = ".lzx"


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
    cached = importlib.util.cache_from_source(source_path)
    return cached[: -len(".pyc")] + _key_part(key) + SUFFIX


def _key_part(key: bytes) -> str:
    return "." + key[:8].decode("ascii", "replace") if key else ""


def caching_enabled() -> bool:
    """`LAZYEXEC_CACHE=off` (or 0): artifacts are neither read nor written."""
    return os.environ.get("LAZYEXEC_CACHE", "").lower() not in ("off", "0", "no")


def cache_dir() -> str:
    """lazyexec's user cache directory: `LAZYEXEC_CACHE_DIR`, else
    `$XDG_CACHE_HOME/lazyexec`, else `~/.cache/lazyexec`. Artifacts go there
    wherever a `.pyc` cannot: `PYTHONDONTWRITEBYTECODE`, a read-only
    `__pycache__` (site-packages installed by root)."""
    explicit = os.environ.get("LAZYEXEC_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lazyexec")


def fallback_path(source_path: str, key: bytes = b"") -> str:
    digest = f"{zlib.crc32(os.path.abspath(source_path).encode()):08x}-{zlib.adler32(source_path.encode()):08x}"
    tag = sys.implementation.cache_tag
    return os.path.join(cache_dir(), f"{digest}.{tag}{_key_part(key)}{SUFFIX}")


def bytecode_writing_off() -> bool:
    return bool(os.environ.get("PYTHONDONTWRITEBYTECODE") or sys.dont_write_bytecode)


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


def key_for(knowledge_hash: str) -> bytes:
    from lazyexec import __version__

    text = f"{__version__}:{FORMAT}:{knowledge_hash}:{_build_identity()}".encode()
    return f"{zlib.crc32(text):08x}{zlib.adler32(text):08x}".encode()


def encode(plan: Plan, mtime_ns: int, size: int, key: bytes) -> bytes:
    header = HEADER.pack(MAGIC, FORMAT, 0, importlib.util.MAGIC_NUMBER, mtime_ns, size, key)
    return header + marshal.dumps((plan.units, plan.steps))


def decode(data: bytes, mtime_ns: int, size: int, key: bytes) -> Plan | None:
    """The plan, None when stale, CorruptArtifact when damaged."""
    if len(data) < HEADER.size:
        raise CorruptArtifact("truncated header")
    magic, fmt, _flags, pymagic, a_mtime, a_size, a_key = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorruptArtifact("bad magic")
    if fmt != FORMAT or pymagic != importlib.util.MAGIC_NUMBER or a_key != key:
        return None  # another lazyexec, interpreter or knowledge base: rebuild quietly
    if a_mtime != mtime_ns or a_size != size:
        return None
    try:
        units, steps = marshal.loads(data[HEADER.size:])
    except (EOFError, ValueError, TypeError) as e:
        raise CorruptArtifact(f"bad payload: {e}") from None
    if not isinstance(units, list) or not isinstance(steps, list):
        raise CorruptArtifact("bad payload structure")
    for step in steps:
        if not (isinstance(step, tuple) and len(step) == 3 and step[0] in ("run", "force", "annotations", "bind_loaded", "force_late")):
            raise CorruptArtifact("bad step")
    for u in units:
        if not (isinstance(u, tuple) and len(u) == 5):
            raise CorruptArtifact("bad unit")
    return Plan(units, steps)


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


def read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def load(source_path: str, mtime_ns: int, size: int, key: bytes) -> Plan | None:
    if not caching_enabled():
        return None
    for path in locations(source_path, key):
        data = read(path)
        if data is None:
            continue
        try:
            plan = decode(data, mtime_ns, size, key)
        except CorruptArtifact as e:
            import warnings

            warnings.warn(f"lazyexec: ignoring corrupt artifact {path} ({e}); rebuilding", RuntimeWarning, stacklevel=2)
            continue
        if plan is not None:
            return plan
    return None


def save(source_path: str, plan: Plan, mtime_ns: int, size: int, key: bytes, next_to_source: bool = False) -> bool:
    """Store `plan`: next to the `.pyc` (else, when `__pycache__` is not
    writable, in the cache directory); in the cache directory only when
    byte-code writing is off, unless `next_to_source` (`lazyexec compile`,
    like compileall, writes where the sources are)."""
    if not caching_enabled():
        return False
    data = encode(plan, mtime_ns, size, key)
    paths = [artifact_path(source_path, key), fallback_path(source_path, key)]
    if bytecode_writing_off() and not next_to_source:
        paths = paths[1:]
    return any(write_atomic(path, data) for path in paths)
