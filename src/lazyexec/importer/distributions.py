"""Package-level opt-in (docs/package-opt-in.md): installed distributions
that declare themselves lazy-safe in their own metadata, and the index of them
that `lazyexec compile --installed` writes for the start-up path.

A distribution declares, in its pyproject.toml (written by every build
backend to the wheel's `entry_points.txt`):

    [project.entry-points.lazyexec]
    all-modules = "lazy"       # every module the distribution installs
    "mypkg.fast" = "lazy"      # a package and every module below it, or one module
    "mypkg.plugins" = "never"  # never lazy, even with a marker (wins over "lazy")

This module runs off the start-up path only (`compile --installed`,
`explain`, plan building): it reads metadata with importlib.metadata. The
start-up path reads the index it writes (importer.installed_index()).
"""

from __future__ import annotations

import os
import sys

GROUP = "lazyexec"
VERDICTS = ("lazy", "never")
# The entry naming the whole distribution: not a module name (a hyphen), and
# within the entry points specification's recommended [\w.-]+ (setuptools
# warns about "*", which is accepted too).
WHOLE = ("all-modules", "*")


class Declaration:
    """One installed distribution's opt-in, expanded against its RECORD."""

    __slots__ = ("name", "version", "directory", "entries", "modules", "packages", "lazy", "never", "problems")

    def __init__(self, name: str, version: str, directory: str):
        self.name = name
        self.version = version
        self.directory = directory
        self.entries: list[tuple[str, str]] = []  # (entry name, verdict) as declared
        self.modules: list[str] = []  # every module the distribution installs
        self.packages: set[str] = set()  # those of them that are regular packages (an __init__.py)
        self.lazy: list[str] = []  # modules lazy without a marker
        self.never: list[str] = []  # never-lazy entries (a module and everything below it)
        self.problems: list[str] = []  # what was ignored, and why


def site_directories() -> list[str]:
    """The environment's site-packages directories (the interpreter's own,
    then the user's when enabled), as `site` puts them on sys.path."""
    import site

    found = []
    try:
        found += site.getsitepackages()
    except AttributeError:  # an old virtualenv's site.py
        pass
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    out = []
    for d in found:
        if d not in out and os.path.isdir(d):
            out.append(d)
    return out


def _is_dotted(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def module_names(files, packages: set | None = None) -> list[str]:
    """The modules a distribution's RECORD installs into its directory: every
    `.py` file below it (not scripts, not files outside it). Regular packages
    (an `__init__.py`) are added to `packages`."""
    out = []
    for f in files or ():
        parts = str(f).replace("\\", "/").split("/")
        if not parts[-1].endswith(".py") or ".." in parts or os.path.isabs(str(f)):
            continue
        parts[-1] = parts[-1][:-3]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        if parts and all(p.isidentifier() for p in parts):
            out.append(".".join(parts))
            if is_package and packages is not None:
                packages.add(out[-1])
    return sorted(set(out))


def _covers(entry: str, module: str) -> bool:
    return module == entry or module.startswith(entry + ".")


def declaration(dist, directory: str) -> Declaration | None:
    """The opt-in `dist` (an importlib.metadata.Distribution installed in
    `directory`) declares, or None when it declares none."""
    eps = [ep for ep in dist.entry_points if ep.group == GROUP]
    if not eps:
        return None
    meta = dist.metadata
    d = Declaration(meta["Name"] or "?", dist.version or "?", directory)
    d.modules = module_names(dist.files, d.packages)
    tops = {m.split(".")[0] for m in d.modules}
    lazy_entries = []
    for ep in eps:
        entry, verdict = ep.name.strip(), ep.value.strip()
        d.entries.append((entry, verdict))
        if verdict not in VERDICTS:
            d.problems.append(f"entry {entry!r} = {verdict!r}: the value must be one of {', '.join(map(repr, VERDICTS))}")
            continue
        if entry in WHOLE:
            if verdict == "never":
                d.never.extend(sorted(tops))
            else:
                lazy_entries.append(entry)
            continue
        if not _is_dotted(entry):
            d.problems.append(f"entry {entry!r}: not a module name (a dotted name, or \"all-modules\" for the whole distribution)")
            continue
        if not any(_covers(entry, m) for m in d.modules):
            # A distribution may only speak for its own modules: a never entry
            # naming another distribution's would turn its laziness off.
            d.problems.append(f"entry {entry!r}: the distribution installs no such module")
            continue
        (d.never if verdict == "never" else lazy_entries).append(entry)
    d.lazy = [m for m in d.modules
              if any(e in WHOLE or _covers(e, m) for e in lazy_entries) and not any(_covers(n, m) for n in d.never)]
    return d


def scan(directories, installed: dict | None = None) -> list[Declaration]:
    """Every opted-in distribution installed in `directories`
    (importlib.metadata). With `installed`, also fill it with
    {directory: [modules of each distribution that did not opt in]}."""
    from importlib import metadata

    out = []
    for directory in directories:
        seen = set()
        for dist in metadata.distributions(path=[directory]):
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            if name in seen:  # importlib.metadata's precedence: the first one found
                continue
            seen.add(name)
            try:
                d = declaration(dist, directory)
                if d is None and installed is not None:
                    installed.setdefault(directory, []).append(module_names(dist.files))
            except (OSError, ValueError, UnicodeDecodeError) as e:  # a damaged RECORD or entry_points.txt
                d = Declaration(name or "?", "?", directory)
                d.problems.append(f"metadata cannot be read: {e}")
            if d is not None:
                out.append(d)
    return out


def build_index(directories=None) -> tuple[tuple, list[Declaration]]:
    """The index of `directories` (default: the environment's site-packages)
    as importer.installed_index() reads it, and the declarations found.
    Directory mtimes are taken before the scan: a distribution installed while
    it runs makes the index stale rather than silently missing."""
    import marshal

    from lazyexec.importer import INSTALLED_INDEX_VERSION

    directories = site_directories() if directories is None else list(directories)
    stamps = []
    for d in directories:
        try:
            stamps.append((d, os.stat(d).st_mtime_ns))
        except OSError:
            continue
    installed: dict = {}
    decls = scan([d for d, _ in stamps], installed)
    opted = {}
    never = []
    for d in decls:
        others = [o.modules for o in decls if o is not d and o.directory == d.directory]
        others += installed.get(d.directory, [])
        opted.setdefault(d.directory, set()).update(matcher_entries(d, others))
        never.extend(d.never)
    groups = tuple((directory, tuple(sorted(names))) for directory, names in opted.items() if names)
    # What only `explain` reads, marshalled apart and stored in a file of
    # its own (write_index): a start reads none of it (decoded there, 2,000
    # module names cost about 1 M instructions; kept as bytes in the index,
    # reading and copying them about 120,000 under callgrind).
    details = marshal.dumps(tuple((d.name, d.version, d.directory, tuple(d.lazy), tuple(d.never), tuple(d.entries))
                                  for d in decls), 4)
    index = (INSTALLED_INDEX_VERSION, tuple(stamps), groups, tuple(sorted(set(never))), details)
    return index, decls


def matcher_entries(d: Declaration, others: list) -> list[str]:
    """`d.lazy` as the finder's matcher holds it (importer/policy.cpp): a
    regular package whose every module is lazy, with no other opted-in
    distribution of the directory installing below it, becomes "pkg" plus
    "pkg.*"; the rest stay exact names. `others`: the module lists of the
    directory's other distributions. A start then loads a handful of
    entries per distribution, not one per module (2,000 exact names cost
    about 4.7 M instructions at activation: docs/package-opt-in.md).
    Modules added below such a package later, by hand or by a distribution
    that does not opt in, are covered too: a distribution installed into
    the directory changes its mtime and makes the index stale."""
    lazy = set(d.lazy)
    foreign = [m for modules in others for m in modules]
    chosen: list[str] = []
    for p in sorted(d.packages, key=lambda n: (n.count("."), n)):
        if any(_covers(c, p) for c in chosen) or p not in lazy:
            continue
        if all(m in lazy for m in d.modules if _covers(p, m)) and not any(_covers(p, m) for m in foreign):
            chosen.append(p)
    out = [p + ".*" for p in chosen] + chosen
    out += [m for m in d.lazy if not any(_covers(c, m) for c in chosen)]
    return out


def details_path(index_path: str) -> str:
    return index_path[: -len(".marshal")] + ".details.marshal"


def write_index(index: tuple) -> str:
    """Store the index atomically (the same bytes for the same environment:
    `compile --installed` is idempotent): (version, stamps, opted, never) for
    the start-up path, and beside it the details only `explain` reads,
    written first."""
    import marshal

    from lazyexec.importer import installed_index_path
    from lazyexec.store import write_atomic

    path = installed_index_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for target, data in ((details_path(path), index[4]), (path, marshal.dumps(index[:4], 4))):
        if not write_atomic(target, data):
            raise OSError(f"{target}: cannot be written")
    return path


def read_details(check: bool = True) -> tuple[list, bool]:
    """The index's per-distribution details ((name, version, directory, lazy
    modules, never entries, entries), ...) and whether it is fresh; ([], False)
    with no index."""
    import marshal

    from lazyexec.importer import INSTALLED_INDEX_VERSION, installed_index_path

    path = installed_index_path()
    try:
        with open(path, "rb") as f:
            index = marshal.loads(f.read())
        if index[0] != INSTALLED_INDEX_VERSION:
            return [], False
        with open(details_path(path), "rb") as f:
            details = list(marshal.loads(f.read()))
    except (OSError, EOFError, ValueError, TypeError, IndexError):
        return [], False
    fresh = True
    for directory, mtime in index[1]:
        try:
            fresh = fresh and os.stat(directory).st_mtime_ns == mtime
        except OSError:
            fresh = False
    return details, fresh


def _in_directory(path: str, directory: str) -> bool:
    return path.startswith(directory) and path[len(directory):len(directory) + 1] in ("/", os.sep)


_opted_cache: dict = {}


def opted(name: str, path: str) -> bool:
    """Whether the module `name` at `path` belongs to an opted-in distribution,
    by the index as it is (not checked for staleness: the plan builder must
    agree with the finder that claimed the module, which read this index)."""
    from lazyexec.importer import installed_index, installed_index_path

    try:
        key = os.stat(installed_index_path()).st_mtime_ns
    except OSError:
        return False
    groups = _opted_cache.get(key)
    if groups is None:
        _opted_cache.clear()
        groups = _opted_cache[key] = [(d, frozenset(names)) for d, names in installed_index(check=False)[0]]
    return any(name in names and _in_directory(path, d) for d, names in groups)


def owner(name: str, path: str, details) -> tuple | None:
    """The detail row of the distribution that lists `name` as lazy, in `path`'s directory."""
    for row in details:
        if name in row[3] and _in_directory(path, row[2]):
            return row
    return None


def _never_matches(entry: str, name: str) -> bool:
    """As the finder's never-lazy match (importer/policy.cpp): the module or a
    package above it; "=pkg" the module alone; globs."""
    if entry.startswith("="):
        return entry[1:] == name
    from fnmatch import fnmatchcase

    parts = name.split(".")
    return any(fnmatchcase(".".join(parts[:i]), entry) for i in range(1, len(parts) + 1))


def never_owner(name: str, details) -> tuple | None:
    for row in details:
        if any(_covers(n, name) for n in row[4]):
            return row
    return None


def selection(name: str | None, path: str, config) -> tuple[bool, str]:
    """Whether the import hook would load the module lazily, and why: the
    marker, the configuration, or an installed distribution's opt-in (what
    `lazyexec explain` prints)."""
    from lazyexec.importer import Policy, _lazyexec, _never_lazy

    if not name:
        return False, "not selected: a script, not an importable module"
    details, fresh = read_details()
    stale = "" if fresh or not details else (
        " (the index of installed distributions is stale: a site-packages directory changed since it was "
        "built; the next lazy start rebuilds it after it exits, `lazyexec compile --installed` does now)")
    claimed = Policy(config).claims(name, path)
    if any(_never_matches(n, name) for n in config.never) or name in config.eager_imports:
        return False, f"not selected: never lazy (configuration `never`){stale}"
    if any(_never_matches(n, name) for n in _never_lazy(config)):
        return False, "not selected: never lazy (lazyexec's built-in never-lazy set)"
    row = never_owner(name, details) if fresh else None
    if row is not None and not claimed:
        return False, f"not selected: never lazy (distribution {row[0]} {row[1]} declares it `never`)"
    # (`config` is the configuration as read, without distributions' never entries.)
    if not claimed:
        if config.exclude or config.include:
            probe = Policy(config.__class__(mode="all", include=config.include, exclude=config.exclude))
            if not probe.claims(name, path):
                return False, f"not selected: configuration include/exclude ({config.source}){stale}"
        return False, ("not selected: mode \"marked\", no `__lazy_module__ = True` marker, and no installed "
                       f"distribution opted in for it{stale}")
    if config.mode == "all":
        return True, f"selected: configuration mode = \"all\" ({config.source})"
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError:
        source = b""
    if _lazyexec.has_marker(source):
        return True, "selected: marker `__lazy_module__ = True`"
    row = owner(name, path, details) if fresh else None
    if row is not None:
        how = "the whole distribution" if any(e in WHOLE and v == "lazy" for e, v in row[5]) else \
            ", ".join(e for e, v in row[5] if v == "lazy" and _covers(e, name))
        return True, (f"selected: distribution {row[0]} {row[1]} opted in "
                      f"(entry points [{GROUP}]: {how}; installed index)")
    return True, "selected: PEP 810 `__lazy_modules__` (only the imports it names are deferred)"


def reindex() -> int:
    """The detached re-indexer a program starts at exit when it found the
    index stale (importer._reindex_at_exit): low priority, one at a time
    (a lock in the cache directory), and nothing to do when another one
    already brought the index up to date."""
    import fcntl

    from lazyexec.importer import installed_index_path

    try:
        os.nice(10)
    except OSError:
        pass
    try:
        lock = os.open(installed_index_path() + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another re-indexer holds the lock (or no cache directory)
    if read_details()[1]:
        return 0  # fresh again
    try:
        write_index(build_index()[0])
    except OSError:
        return 1
    return 0
