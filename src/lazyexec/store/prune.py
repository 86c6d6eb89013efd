"""Store hygiene: where artifacts are, which are still of use, and removing
the others (docs/artifact-format.md, "Trailer and pruning").

Every rebuild of lazyexec, change of its knowledge base or of a configuration
file makes a new key, and artifacts are named by key so that several builds
sharing one interpreter's standard library keep their own: without pruning,
the old keys' files stay forever. An artifact's trailer (written after its
payload, ignored by readers) records its source and the build that made it,
so any process can tell, from the file alone, whether its key can still be
produced:

- **live**: the extension that made it is there, unchanged (same mtime and
  size, which the key hashes), its knowledge base has the same content, and
  its configuration file (if any) still exists;
- **stale**: one of those changed or is gone (no process can ask for that key
  any more); an artifact without a trailer (an older lazyexec, whose build
  cannot be told) once it has not been read for a week;
- **orphan**: its source file is gone.

Pruning removes stale and orphaned artifacts, and temporary files of writers
killed mid-write (older than an hour), never a live artifact whose source
exists: a process reading one keeps its open file anyway (a removal is one
`unlink`), and one that finds it gone loads the module eagerly and has it
rebuilt.
"""

from __future__ import annotations

import errno
import marshal
import os
import sys
import time

TRAILER_MAGIC = b"LZXT"
TRAILER_VERSION = 1
SUFFIX = ".lzx"
TEMP_PREFIX = ".lzx-"  # store.write_atomic's temporary files
TEMP_GRACE = 3600.0  # seconds: a younger temporary file may be a write in progress
PRUNE_STAMP = "pruned"  # in the cache directory: when the builder last pruned
PRUNE_EVERY = 86400.0  # the builder prunes at most once a day
CACHE_MAX_AGE = 30 * 86400.0  # parse caches, profiles, summaries untouched for this long
HOUSEKEEPING_MAX_DIRS = 50_000  # directories the builder's daily prune walks at most
UNKNOWN_IDLE = 7 * 86400.0  # an artifact without a trailer goes when unread for this long


# ------------------------------------------------------------------ trailer

def _extension_file() -> str | None:
    from lazyexec import _lazyexec

    return getattr(_lazyexec, "__file__", None)


def trailer(source: str, config_source: str | None) -> bytes:
    """What follows an artifact's payload: marshal of a dict, its length
    (4 bytes, little endian), then b"LZXT"."""
    from lazyexec import __version__, store

    info = {
        "v": TRAILER_VERSION,
        "source": source,
        "extension": _extension_file(),
        "identity": store._build_identity(),
        "knowledge": store.KNOWLEDGE_FILE,
        "knowledge_fingerprint": store.knowledge_fingerprint(),
        "config": config_source,
        "version": __version__,
    }
    blob = marshal.dumps(info)
    return blob + len(blob).to_bytes(4, "little") + TRAILER_MAGIC


def _open_quietly(path: str):
    """Open for reading without updating the access time where the system
    allows it (O_NOATIME: the file's owner): pruning must not make an
    artifact look read."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        fd = os.open(path, flags)
    return os.fdopen(fd, "rb")


def read_info(path: str) -> dict | None:
    """The trailer of the artifact at `path`, or None (none, damaged, gone)."""
    try:
        with _open_quietly(path) as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            if end < 8:
                return None
            f.seek(end - 8)
            tail = f.read(8)
            if tail[4:] != TRAILER_MAGIC:
                return None
            n = int.from_bytes(tail[:4], "little")
            if n <= 0 or n > min(end - 8, 1 << 16):
                return None
            f.seek(end - 8 - n)
            info = marshal.loads(f.read(n))
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(info, dict) or info.get("v") != TRAILER_VERSION or not isinstance(info.get("source"), str):
        return None
    return info


# ------------------------------------------------------------------ finding

class Entry:
    """One file of the store: an artifact or a writer's temporary file."""

    __slots__ = ("path", "size", "mtime", "atime", "key", "where", "temp", "status", "reason", "source")

    def __init__(self, path: str, size: int, mtime: float, key: str, where: str, temp: bool = False,
                 atime: float | None = None):
        self.path, self.size, self.mtime, self.key, self.where, self.temp = path, size, mtime, key, where, temp
        self.atime = mtime if atime is None else atime
        self.status = ""  # current | live | unknown | stale | orphan | temp | busy (a young temporary file)
        self.reason = ""
        self.source = None


def key_of(name: str) -> str:
    """KEY8 of `NAME.TAG.KEY8.lzx` (the cache directory's `HASH.TAG.KEY8.lzx`
    too); "" for a name without one (artifacts from before keys were in names)."""
    parts = name[: -len(SUFFIX)].split(".")
    if len(parts) >= 3 and len(parts[-1]) == 8:
        return parts[-1]
    return ""


def _entry(directory: str, name: str, where: str) -> Entry | None:
    temp = name.startswith(TEMP_PREFIX)
    if not temp and not name.endswith(SUFFIX):
        return None
    path = os.path.join(directory, name)
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not os.path.isfile(path) or os.path.islink(path):
        return None
    return Entry(path, st.st_size, st.st_mtime, "" if temp else key_of(name), where, temp, st.st_atime)


def default_roots() -> list[str]:
    """Where artifacts beside `.pyc` files may be: this interpreter's
    `sys.path` directories (standard library, site-packages, the current
    directory's tree is not included) and `sys.pycache_prefix`."""
    roots = []
    for p in sys.path:
        if p and os.path.isdir(p):
            roots.append(p)
    prefix = getattr(sys, "pycache_prefix", None)
    if prefix and os.path.isdir(prefix):
        roots.append(prefix)
    return roots


def scan(cache_dir: str, roots=(), prefixes=(), max_dirs: int | None = None) -> list[Entry]:
    """Every artifact in the cache directory, in the `__pycache__`
    directories under `roots`, and anywhere under `prefixes`
    (PYTHONPYCACHEPREFIX trees, which have no `__pycache__`). With
    `max_dirs`, at most that many directories are walked (the builder's
    daily prune: a `sys.path` entry may be a whole home directory)."""
    found: list[Entry] = []
    seen: set = set()
    walked = 0

    def add_dir(directory: str, where: str) -> None:
        real = os.path.realpath(directory)
        if real in seen:
            return
        seen.add(real)
        try:
            names = os.listdir(directory)
        except OSError:
            return
        for name in names:
            e = _entry(directory, name, where)
            if e is not None:
                found.append(e)

    if cache_dir and os.path.isdir(cache_dir):
        add_dir(cache_dir, "cache")
    prefix_set = {os.path.realpath(p) for p in prefixes}
    for root in list(roots) + list(prefixes):
        in_prefix = os.path.realpath(root) in prefix_set
        for directory, dirs, _files in os.walk(root, followlinks=False):
            walked += 1
            if max_dirs is not None and walked > max_dirs:
                return found
            if in_prefix:
                add_dir(directory, "prefix")
                continue
            if os.path.realpath(directory) == os.path.realpath(cache_dir or ""):
                dirs[:] = []
                continue
            if "__pycache__" in dirs:
                add_dir(os.path.join(directory, "__pycache__"), "pycache")
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
    return found


# ------------------------------------------------------------------ deciding

def current_key() -> str:
    """KEY8 of the configuration in force where this process runs."""
    from lazyexec import config, store

    try:
        cfg = config.load()
    except config.ConfigError:
        cfg = config.Config()
    return store.key_for(store.knowledge_hash(cfg)).decode("ascii", "replace")[:8]


class Judge:
    """Decides each entry's status; what it learns about a build is kept
    (one stat of an extension, one hash of a knowledge base per run)."""

    def __init__(self, current: str, now: float | None = None, idle: float = UNKNOWN_IDLE):
        self.current = current
        self.now = time.time() if now is None else now
        self.idle = idle
        self._identities: dict = {}
        self._fingerprints: dict = {}
        self._builds: dict = {}

    def _identity(self, path: str) -> str | None:
        if path not in self._identities:
            try:
                st = os.stat(path)
                self._identities[path] = f"{st.st_mtime_ns}:{st.st_size}"
            except OSError:
                self._identities[path] = None
        return self._identities[path]

    def _fingerprint(self, path: str) -> str | None:
        if path not in self._fingerprints:
            from lazyexec import _lazyexec

            try:
                with open(path, "rb") as f:
                    self._fingerprints[path] = _lazyexec.fingerprint(f.read())
            except OSError:
                self._fingerprints[path] = None
        return self._fingerprints[path]

    def build_gone(self, info: dict) -> str:
        """Why the build that wrote `info` can no longer ask for its key, or ""."""
        fields = (info.get("extension"), info.get("identity"), info.get("knowledge"),
                  info.get("knowledge_fingerprint"), info.get("config"))
        found = self._builds.get(fields)
        if found is None:
            extension, identity, knowledge, kfp, config_source = fields
            if not isinstance(extension, str) or self._identity(extension) is None:
                found = "the lazyexec build that wrote it is gone"
            elif identity not in (None, "unknown") and self._identity(extension) != identity:
                found = "lazyexec was rebuilt or upgraded since"
            elif isinstance(knowledge, str) and kfp is not None and self._fingerprint(knowledge) != kfp:
                found = "its knowledge base changed"
            elif isinstance(config_source, str) and not os.path.exists(config_source):
                found = f"its configuration file {config_source} is gone"
            else:
                found = ""
            self._builds[fields] = found
        return found

    def judge(self, e: Entry) -> Entry:
        if e.temp:
            young = self.now - e.mtime < TEMP_GRACE
            e.status, e.reason = ("busy", "a write in progress") if young else ("temp", "left by a killed writer")
            return e
        info = read_info(e.path)
        if info is not None:
            e.source = info["source"]
            if not os.path.exists(e.source):
                e.status, e.reason = "orphan", "its source is gone"
                return e
        if e.key and e.key == self.current:
            e.status = "current"
            return e
        if info is None:
            # Written by a lazyexec without trailers: which build, and whether
            # it is still in use, cannot be told. It goes once unread for a
            # while (a read updates its access time at least daily).
            unread = self.now - max(e.atime, e.mtime)
            if unread >= self.idle:
                e.status, e.reason = "stale", f"no trailer (an older lazyexec), unread for {self.idle / 86400:g}+ days"
            else:
                e.status, e.reason = "unknown", "no trailer (an older lazyexec), read recently: kept"
            return e
        why = self.build_gone(info)
        e.status, e.reason = ("stale", why) if why else ("live", "")
        return e


PRUNABLE = ("stale", "orphan", "temp")


# ------------------------------------------------------------------ removing

class Removal:
    """What a removal did: counts, bytes, and per directory the failures."""

    def __init__(self):
        self.removed = 0
        self.bytes = 0
        self.failed: dict = {}  # directory -> [count, bytes, message]

    def remove(self, path: str, size: int, dry_run: bool = False) -> None:
        if not dry_run:
            try:
                os.unlink(path)
            except FileNotFoundError:
                return  # someone else removed it: fine
            except OSError as e:
                slot = self.failed.setdefault(os.path.dirname(path), [0, 0, _why(e)])
                slot[0] += 1
                slot[1] += size
                return
        self.removed += 1
        self.bytes += size


def _why(e: OSError) -> str:
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"{e.strerror}: the directory belongs to another user (run as its owner)"
    if e.errno == errno.EROFS:
        return f"{e.strerror}: a read-only file system"
    return e.strerror or str(e)


def prune_entries(entries, judge: Judge, dry_run: bool = False, removal: Removal | None = None) -> Removal:
    removal = removal or Removal()
    for e in entries:
        if not e.status:
            judge.judge(e)
        if e.status in PRUNABLE:
            removal.remove(e.path, e.size, dry_run)
    return removal


def cache_files(cache_dir: str) -> list[tuple[str, str, int, float]]:
    """lazyexec's other files in its cache directory, as (kind, path, size,
    last use): parse caches, usage profiles, summaries, queued jobs. The
    index of opted-in distributions (`installed-*`: the record of `lazyexec
    compile --installed`, not a cache) and the build lock are not listed."""
    out = []

    def add(kind: str, path: str) -> None:
        try:
            st = os.lstat(path)
        except OSError:
            return
        if os.path.isfile(path):
            out.append((kind, path, st.st_size, max(st.st_mtime, st.st_atime)))

    try:
        names = os.listdir(cache_dir)
    except OSError:
        return out
    for name in names:
        path = os.path.join(cache_dir, name)
        if name.endswith(".marshal") and not name.startswith("installed-"):
            add("parse cache", path)
        elif name in ("profiles", "summaries", "queue") and os.path.isdir(path):
            kind = {"profiles": "usage profile", "summaries": "summary", "queue": "queued build"}[name]
            try:
                for sub in os.listdir(path):
                    add(kind, os.path.join(path, sub))
            except OSError:
                pass
    return out


def prune_cache_files(cache_dir: str, now: float, max_age: float, dry_run: bool = False,
                      removal: Removal | None = None) -> Removal:
    """Parse caches, usage profiles and summaries not read or written for
    `max_age` seconds (each is rebuilt when missing; a profile's entries
    expire after a day anyway). Queued builds are the builder's."""
    removal = removal or Removal()
    for kind, path, size, last in cache_files(cache_dir):
        if kind != "queued build" and now - last > max_age:
            removal.remove(path, size, dry_run)
    return removal


# ------------------------------------------------------------------ builder

def prune_siblings(source_paths, cache_dir: str, judge: Judge) -> Removal:
    """The builder, after storing artifacts for `source_paths`: their stale
    siblings (the same module's artifacts of other keys) beside the `.pyc`
    and in the cache directory go. Cheap: one listing per directory."""
    from lazyexec import _lazyexec, store

    removal = Removal()
    listings: dict = {}
    tag = sys.implementation.cache_tag
    decided: dict = {}  # KEY8 -> status: the siblings of one key share their build (their source was just built)

    def entries_in(directory: str, where: str) -> list:
        if directory not in listings:
            try:
                names = os.listdir(directory)
            except OSError:
                names = []
            listings[directory] = [n for n in names if n.endswith(SUFFIX)]
        return listings[directory]

    for source in source_paths:
        near = store.artifact_path(source)  # .../NAME.TAG.lzx (no key)
        stem = os.path.basename(near)[: -len(SUFFIX)] + "."
        digest_stem = f"{_lazyexec.fingerprint(os.path.abspath(source))}.{tag}{store.opt_part()}."
        for directory, where, prefix in ((os.path.dirname(near), "pycache", stem), (cache_dir, "cache", digest_stem)):
            for name in entries_in(directory, where):
                if not name.startswith(prefix) or name.count(".") != prefix.count(".") + 1:
                    continue
                e = _entry(directory, name, where)
                if e is None:
                    continue
                status = decided.get(e.key) if e.key else None
                if status is None:
                    status = judge.judge(e).status
                    if e.key and status in ("stale", "live", "current"):
                        decided[e.key] = status
                if status in ("stale", "orphan"):
                    removal.remove(e.path, e.size)
    return removal


def housekeeping(cache_dir: str, built=(), now: float | None = None, force: bool = False,
                 roots: list | None = None) -> Removal:
    """What the background builder does under its lock after building:
    stale siblings of what it built, and at most once a day (the stamp file
    `pruned`) a prune of the cache directory (and of `roots`, none by
    default: walking every `sys.path` tree, a whole standard library's
    `__pycache__` directories, is `lazyexec cache prune`'s, not a
    builder's, which other programs may be waiting for). Never raises for a
    file it cannot remove."""
    now = time.time() if now is None else now
    judge = Judge(current_key(), now)
    removal = prune_siblings(built, cache_dir, judge)
    stamp = os.path.join(cache_dir, PRUNE_STAMP)
    try:
        last = os.stat(stamp).st_mtime
    except OSError:
        last = 0.0
    if force or now - last >= PRUNE_EVERY:
        try:
            os.makedirs(cache_dir, exist_ok=True)
            with open(stamp, "w"):
                pass
            os.utime(stamp, (now, now))
        except OSError:
            return removal  # the cache directory is not writable: nothing to prune there either
        prune_entries(scan(cache_dir, roots or [], max_dirs=HOUSEKEEPING_MAX_DIRS), judge, removal=removal)
        prune_cache_files(cache_dir, now, CACHE_MAX_AGE, removal=removal)
    return removal
