"""Writing an application image (docs/image-format.md): module selection,
per-module payloads (a lazy plan, or an eager module's code object) and the
byte layout. The reader is C++ (src/native/image/reader.cpp)."""

from __future__ import annotations

import marshal
import os
import sys
from dataclasses import dataclass, field

from lazyexec.cli.compile import module_name  # the same dotted names lazyexec compile gives
from lazyexec.image import CHECKS, FORMAT, PYTHON_MAGIC, out_of_line, runtime_key

MAGIC = b"\x89LZI\r\n\x1a\n"
HEADER_SIZE = 80
RECORD_SIZE = 96
BASE_ALIGN = 16
PAYLOAD_ALIGN = 2 * 1024 * 1024
FLAG_ENTRY, FLAG_TRACED = 1, 2
CHECK_SHIFT = 2
OPTIMIZE_SHIFT = 4
RECORD_PACKAGE, RECORD_PLAN, RECORD_CODE, RECORD_EXTENSION = 1, 2, 4, 8
PLAN_TABLE_AT, UNIT_ENTRY_SIZE = 8, 24
UNIT_ALIGN = 64 * 1024


@dataclass
class Source:
    """One module to put in the image, found on disk."""

    name: str
    origin: str
    is_package: bool
    locations: list = field(default_factory=list)
    extension: bool = False  # an extension module (origin: its shared library), format 5


@dataclass
class Entry:
    """One module record, payload built."""

    source: Source
    is_plan: bool
    payload: bytes  # a plan: its unit table, then marshal.dumps((codes, steps)), unit code as indexes into unit_code
    code: bytes  # a plan module's eager code object (marshalled); b"" for an eager module (its payload)
    mtime_ns: int
    size: int
    source_hash: int
    unit_code: list = field(default_factory=list)  # a plan's units' marshalled code, stored out of line


def image_hash(data: bytes) -> int:
    """The index's hash of a module name."""
    from lazyexec import _lazyexec

    return _lazyexec.image_hash(data)


def blob_hash(data: bytes) -> int:
    """The check of a payload, an eager code object or a source (format 3)."""
    from lazyexec import _lazyexec

    return _lazyexec.image_blob_hash(data)


def build_entry(src: Source, policy, config) -> Entry | None:
    """The module's record: its lazy plan when policy selects it and the
    analysis defers something (with its eager code object too: a program
    whose usage profile says it uses the module whole runs that), else its
    code object. None when the source cannot be read or compiled (the normal
    import then reports it)."""
    from lazyexec.importer.importlib_bootstrap import load_or_build_plan

    try:
        with open(src.origin, "rb") as f:
            source = f.read()
        st = os.stat(src.origin)
    except OSError:
        return None
    if src.extension:
        # Only its record: importlib's ExtensionFileLoader loads the library
        # from its file, found without searching sys.path.
        return Entry(src, False, b"", b"", st.st_mtime_ns, st.st_size, blob_hash(source))
    plan = None
    if policy is not None and policy.claims(src.name, src.origin):
        try:
            plan = load_or_build_plan(src.origin, src.name, src.is_package, config, build="inline")
        except (SyntaxError, ValueError, UnicodeDecodeError):
            plan = None
    try:
        code = marshal.dumps(compile(source, src.origin, "exec", dont_inherit=True))
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return None
    if plan is not None and plan.units:
        # Format 4: each unit's marshalled code goes out of line (read from
        # the mapping when the unit first runs); the plan holds its index
        # (a plain function's: ("function", index); a plain class's:
        # ("class", index, bases)).
        units, unit_code = [], []
        for u in plan.units:
            blob = out_of_line(u[0])
            if blob is not None:
                unit_code.append(blob)
                index = len(unit_code) - 1
                if isinstance(u[0], bytes):
                    u = (index, *u[1:])
                elif u[0][0] == "class":  # ("class", index, bases)
                    u = (("class", index, u[0][2]), *u[1:])
                else:
                    u = (("function", index), *u[1:])
            units.append(u)
        return Entry(src, True, unit_table(units) + marshal.dumps(([u[0] for u in units], plan.steps)), code,
                     st.st_mtime_ns, st.st_size, blob_hash(source), unit_code)
    return Entry(src, False, code, b"", st.st_mtime_ns, st.st_size, blob_hash(source))


def unit_table(units: list) -> bytes:
    """A plan's unit table (format 6): each unit's `where`, bound names,
    deps and calls in the runtime's layout (a 16-byte header: units, text
    bytes, links; 24 bytes a unit; the text: NUL-terminated UTF-8 strings;
    the links: u32 unit indexes), read by the loader in place of
    unmarshalling a tuple, a list and strings per unit."""
    text, links, records = bytearray(), [], bytearray()

    def put(s: str) -> int:
        data = s.encode("utf-8")
        if b"\0" in data:
            raise ValueError(f"a unit's name or where holds a NUL: {s!r}")
        at = len(text)
        text.extend(data + b"\0")
        return at

    for _code, binds, deps, where, calls in units:
        where_at = put(where)
        binds_at = len(text)
        for name in binds:
            put(name)
        links_at = len(links)
        links.extend(deps)
        links.extend(calls)
        records += b"".join(v.to_bytes(4, "little")
                            for v in (where_at, binds_at, len(binds), links_at, len(deps), len(calls)))
    header = b"".join(v.to_bytes(4, "little") for v in (len(units), len(text), len(links), 0))
    return header + bytes(records) + bytes(text) + b"".join(v.to_bytes(4, "little") for v in links)


def shebang(python: str = sys.executable) -> bytes:
    """The `#!` line of an executable image: env -S splits the line, so the
    kernel runs `PYTHON -m lazyexec run --image APP.lzi ARGS...`."""
    return f"#!/usr/bin/env -S {python} -m lazyexec run --image\n".encode()


def layout(entries: list[Entry], entry_point: str | None = None, traced: bool = False, check: str = "none",
           prefix: bytes = b"", key: bytes | None = None, pymagic: bytes = PYTHON_MAGIC,
           unit_order: list | None = None) -> bytes:
    """The image's bytes. Records and payloads keep the order of `entries`
    (first use first when traced); units' code is in `unit_order` first
    ((module, unit code entry) in the order a traced run first ran them),
    then module by module."""
    n = len(entries)
    buckets = 8
    while buckets < 2 * n + 1:
        buckets *= 2
    base = b""
    if prefix:
        base = prefix + b"\0" * (-len(prefix) % BASE_ALIGN)

    def align8(x: int) -> int:
        return x + (-x % 8)

    buckets_at = HEADER_SIZE
    records_at = align8(buckets_at + buckets * 8)
    strings = bytearray()
    strings_at = records_at + n * RECORD_SIZE

    def put(data: bytes) -> tuple[int, int]:
        at = strings_at + len(strings)
        strings.extend(data)
        return at, len(data)

    fs = sys.getfilesystemencoding()
    refs = []
    for e in entries:
        s = e.source
        locations = "\0".join(s.locations) if s.is_package else ""
        refs.append((put(s.name.encode()), put(s.origin.encode(fs, "surrogateescape")),
                     put(locations.encode(fs, "surrogateescape"))))
    entry_ref = put(entry_point.encode()) if entry_point else (0, 0)
    # Payloads start on a 2 MiB boundary (a page-cache folio): touching the
    # metadata never maps payload pages into the process (written sparse).
    payload_at = strings_at + len(strings)
    payload_at += -(len(base) + payload_at) % PAYLOAD_ALIGN
    # A plan module's eager code right after its plan: whichever the run
    # takes, it is next to the modules loaded before and after it. A plan's
    # payload is its unit code table, then the marshalled plan.
    payload_len = [len(e.payload) + (PLAN_TABLE_AT + UNIT_ENTRY_SIZE * len(e.unit_code) if e.is_plan else 0)
                   for e in entries]
    offsets, code_offsets, at = [], [], payload_at
    for e, plen in zip(entries, payload_len):
        if e.source.extension:  # no payload: its fields are 0
            offsets.append(0)
            code_offsets.append(0)
            continue
        offsets.append(at)
        at = align8(at + plen)
        code_offsets.append(at if e.code else 0)
        at = align8(at + len(e.code))
    # Units' code after every payload, from a 64 KiB boundary (a page fault
    # maps up to 64 KiB around it: loading plans does not map unit code),
    # module by module: read only when a unit first runs.
    unit_at = at + (-(len(base) + at) % UNIT_ALIGN) if any(e.unit_code for e in entries) else at
    index = {e.source.name: i for i, e in enumerate(entries)}
    order = [(index[name], k) for name, k in (unit_order or ())
             if name in index and 0 <= k < len(entries[index[name]].unit_code)]
    placed = set(order)
    order += [(i, k) for i, e in enumerate(entries) for k in range(len(e.unit_code)) if (i, k) not in placed]
    unit_offset, at = {}, unit_at
    for i, k in order:
        unit_offset[i, k] = at
        at += len(entries[i].unit_code[k])
    length = at
    payloads = []
    for i, e in enumerate(entries):
        if not e.is_plan:
            payloads.append(e.payload)
            continue
        table = bytearray(len(e.unit_code).to_bytes(4, "little") + bytes(4))
        for k, blob in enumerate(e.unit_code):
            table += (unit_offset[i, k].to_bytes(8, "little") + len(blob).to_bytes(4, "little") + bytes(4)
                      + blob_hash(blob).to_bytes(8, "little"))
        payloads.append(bytes(table) + e.payload)

    table = bytearray(buckets * 8)
    for i, e in enumerate(entries):
        h = image_hash(e.source.name.encode())
        slot = h & (buckets - 1)
        while int.from_bytes(table[slot * 8 + 4: slot * 8 + 8], "little"):
            slot = (slot + 1) & (buckets - 1)
        table[slot * 8: slot * 8 + 8] = (h >> 32).to_bytes(4, "little") + (i + 1).to_bytes(4, "little")

    records = bytearray()
    for e, payload, (name, origin, locs), off, code_off in zip(entries, payloads, refs, offsets, code_offsets):
        flags = ((RECORD_PACKAGE if e.source.is_package else 0) | (RECORD_PLAN if e.is_plan else 0)
                 | (RECORD_CODE if e.code else 0) | (RECORD_EXTENSION if e.source.extension else 0))
        records += b"".join(v.to_bytes(4, "little") for v in (*name, *origin, *locs, flags, len(payload)))
        records += b"".join(v.to_bytes(8, "little") for v in (off, 0 if e.source.extension else blob_hash(payload),
                                                               e.mtime_ns, e.size, e.source_hash, code_off))
        records += len(e.code).to_bytes(4, "little") + bytes(4)
        records += (blob_hash(e.code) if e.code else 0).to_bytes(8, "little")
    flags = ((FLAG_ENTRY if entry_point else 0) | (FLAG_TRACED if traced else 0) | (CHECKS.index(check) << CHECK_SHIFT)
             | (sys.flags.optimize << OPTIMIZE_SHIFT))
    header = (MAGIC + FORMAT.to_bytes(2, "little") + flags.to_bytes(2, "little") + pymagic
              + length.to_bytes(8, "little") + n.to_bytes(4, "little") + buckets.to_bytes(4, "little")
              + buckets_at.to_bytes(8, "little") + records_at.to_bytes(8, "little")
              + entry_ref[0].to_bytes(4, "little") + entry_ref[1].to_bytes(4, "little")
              + (runtime_key() if key is None else key) + bytes(8))
    assert len(header) == HEADER_SIZE
    out = bytearray(header)
    out += table
    out += bytes(records_at - len(out))
    out += records
    out += strings
    out += bytes(payload_at - len(out))
    for e, payload, off, code_off in zip(entries, payloads, offsets, code_offsets):
        if e.source.extension:
            continue
        out += bytes(off - len(out))
        out += payload
        if e.code:
            out += bytes(code_off - len(out))
            out += e.code
    out += bytes(unit_at - len(out))
    for i, k in order:
        out += entries[i].unit_code[k]
    assert len(out) == length
    return base + bytes(out)


def write(path: str, data: bytes, executable: bool = False) -> None:
    """Atomically (a program running from the old image keeps its mapping)."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        # Runs of zeros (the alignment before the payloads) become holes.
        view, at, chunk = memoryview(data), 0, 1 << 16
        zero = bytes(chunk)
        while at < len(data):
            piece = view[at: at + chunk]
            if len(piece) == chunk and piece == zero:
                f.seek(chunk, 1)
            else:
                f.write(piece)
            at += len(piece)
        f.truncate(len(data))
    if executable:
        os.chmod(tmp, 0o755)
    os.replace(tmp, path)


# ---- selection --------------------------------------------------------------

def importable_stem(stem: str) -> bool:
    """Whether a module file named `stem` + suffix is importable by name:
    FileFinder takes the last part of any dotted name, so any stem without a
    dot is (`importlib.import_module("_sysconfigdata__linux_x86_64-linux-gnu")`,
    as sysconfig imports its data module), not only identifiers."""
    return bool(stem) and "." not in stem and stem.isprintable() and not stem.isspace()


def extension_stem(filename: str) -> str | None:
    """The module name of an extension module's file name (`_json` of
    `_json.cpython-311-x86_64-linux-gnu.so`), else None."""
    from importlib.machinery import EXTENSION_SUFFIXES

    for suffix in EXTENSION_SUFFIXES:
        if filename.endswith(suffix) and importable_stem(filename[: -len(suffix)]):
            return filename[: -len(suffix)]
    return None


def _walk(root: str):
    """(path, is_extension) of every module file below `root`, packages
    entered (those with an `__init__.py`)."""
    skip = {"site-packages", "dist-packages", "__pycache__"}
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in skip and d.isidentifier()
                         and os.path.isfile(os.path.join(directory, d, "__init__.py")))
        for f in sorted(files):
            if f.endswith(".py") and importable_stem(f[:-3]):
                yield os.path.join(directory, f), False
            elif extension_stem(f) not in (None, "__init__"):
                yield os.path.join(directory, f), True


def sources_under(root: str, prefix: str = "") -> list[Source]:
    """Every module below a sys.path entry `root` (or below a package's
    directory, names under `prefix`). Where one name has several files, the
    one importlib's FileFinder takes: a package directory, then an extension
    module, then the source."""
    best: dict[str, tuple[int, Source]] = {}
    for path, extension in _walk(root):
        if extension:
            stem = extension_stem(os.path.basename(path))
            rel = os.path.relpath(os.path.join(os.path.dirname(path), stem + ".py"), root)
            name, is_package = module_name(root, os.path.join(root, rel))
        else:
            name, is_package = module_name(root, path)
        if prefix:
            name = prefix + "." + name if name else prefix
        if not name:
            continue
        rank = 0 if is_package else 1 if extension else 2
        if name in best and best[name][0] <= rank:
            continue
        best[name] = (rank, Source(name, os.path.abspath(path), is_package,
                                   [os.path.dirname(os.path.abspath(path))] if is_package else [], extension))
    return [s for _, s in best.values()]


def find_module(name: str, path: list[str] | None = None) -> list[Source]:
    """A module by name, found as PathFinder would on `path` (sys.path)
    without importing it; a package brings every module below it."""
    from importlib.machinery import ExtensionFileLoader, PathFinder, SourceFileLoader

    parts = name.split(".")
    search = path if path is not None else sys.path
    spec = None
    for i in range(len(parts)):
        spec = PathFinder.find_spec(".".join(parts[: i + 1]), search)
        if spec is None:
            return []
        search = list(spec.submodule_search_locations or [])
    if isinstance(spec.loader, ExtensionFileLoader) and not spec.submodule_search_locations:
        return [Source(name, os.path.abspath(spec.origin), False, extension=True)]
    if not isinstance(spec.loader, SourceFileLoader):
        return []
    if spec.submodule_search_locations:
        return sources_under(os.path.dirname(spec.origin), name)
    return [Source(name, os.path.abspath(spec.origin), False)]


def excluded(name: str) -> bool:
    # lazyexec's own modules load from disk, normally: the runtime that
    # serves the image is not served by it.
    return name == "lazyexec" or name.startswith("lazyexec.") or name in ("__main__", "sitecustomize")


def select(targets: list[str], stdlib: bool, traced: list[Source]) -> tuple[list[Source], list[str]]:
    """(modules in image order, problems). Traced modules first in first-use
    order, then the rest by name; the first found of a name wins."""
    import sysconfig

    problems = []
    found: list[Source] = []
    if stdlib:
        found += sources_under(sysconfig.get_paths()["stdlib"])
        # Its extension modules (lib-dynload: a sys.path entry of its own).
        dynload = os.path.join(sysconfig.get_paths()["stdlib"], "lib-dynload")
        if os.path.isdir(dynload):
            found += sources_under(dynload)
    search = [os.getcwd()] + [p for p in sys.path if p]  # as `python -m` sees them from here
    for t in targets:
        if all(part.isidentifier() for part in t.split(".")):
            got = find_module(t, search)
            if got:
                found += got
                continue
        if os.path.isdir(t):
            found += sources_under(os.path.abspath(t))
        elif os.path.isfile(t) and t.endswith(".py"):
            p = os.path.abspath(t)
            found.append(Source(os.path.basename(p)[:-3], p, False))
        else:
            problems.append(f"{t}: no such module, directory or .py file (source and extension modules)")
    by_name: dict[str, Source] = {}
    for s in found:
        by_name.setdefault(s.name, s)
    ordered: list[Source] = []
    seen = set()
    for s in traced:
        if s.name in seen or excluded(s.name):
            continue
        if by_name and s.name not in by_name:
            continue  # modules were named: the trace only orders them
        seen.add(s.name)
        ordered.append(by_name.get(s.name, s))
    for name in sorted(by_name):
        if name not in seen and not excluded(name):
            ordered.append(by_name[name])
    return ordered, problems
