"""The pattern cache's table, written by the builder (runtime/patterns.cpp).

A program's start compiles the regular expressions it compiled last time,
and the compiler (re._parser, re._compiler) is Python. What it produces is a
pure function of the pattern, the flags and the interpreter: the flags it
settles on, the code list, the groups and their names. At exit a program
queues the patterns it compiled (job version 3); the builder, off the
start-up path, compiles each again and keeps it when

- it compiles without a warning (re warns at compile time for some
  patterns, `FutureWarning: Possible nested set`; such a pattern keeps being
  compiled, so the program sees the warning as eagerly; the table says
  None for it, so that it is not queued again), and
- the Pattern `_sre.compile` builds from the kept parts equals the
  compiler's (`Pattern.__eq__` compares the pattern, the flags and the code).

The table is stamped with `sys.version`: another interpreter (an upgrade
in place) finds it foreign and rebuilds it. Its first 8 bytes are the
image format's blob_hash of the rest (little endian): a damaged table (a
flipped literal in a code list would compile, and match other text) is
ignored with one warning and rewritten. At most MAX_PATTERNS per
program, the most recently compiled kept.
"""

import marshal
import os
import sys
from array import array

VERSION = 2  # 2: the check before the marshal data
MAX_PATTERNS = 2048
DEBUG = 128  # SRE_FLAG_DEBUG


def _compiler():
    try:
        from re import _compiler, _parser
    except ImportError:  # 3.10
        import sre_compile as _compiler
        import sre_parse as _parser
    return _compiler, _parser


def pack(contents: dict) -> bytes:
    """A table file's bytes: the check, then the marshal data."""
    from lazyexec import _lazyexec

    data = marshal.dumps(contents)
    return _lazyexec.image_blob_hash(data).to_bytes(8, "little") + data


def unpack(raw: bytes):
    """What `pack` packed, or None when the check does not match."""
    from lazyexec import _lazyexec

    if len(raw) < 8 or int.from_bytes(raw[:8], "little") != _lazyexec.image_blob_hash(raw[8:]):
        return None
    return marshal.loads(raw[8:])


def read(path: str) -> dict:
    """The table at `path`: empty when missing, damaged or another
    interpreter's."""
    try:
        with open(path, "rb") as f:
            data = unpack(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    if not (isinstance(data, dict) and data.get("version") == VERSION and data.get("python") == sys.version
            and isinstance(data.get("patterns"), dict)):
        return {}
    return data["patterns"]


def entry(pattern, flags: int):
    """What the cache keeps for one pattern, or None when it must keep being
    compiled (a warning, an error, DEBUG output, a result it cannot rebuild)."""
    if type(pattern) not in (str, bytes) or type(flags) is not int or flags < 0 or flags & DEBUG:
        return None
    import _sre
    import warnings

    compiler, parser = _compiler()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parsed = parser.parse(pattern, flags)
            code = compiler._code(parsed, flags)
            expected = compiler.compile(pattern, flags)
        except Exception:  # noqa: BLE001 - the program's own compile raises it again
            return None
    if caught:
        return None
    state = parsed.state
    groupindex = dict(state.groupdict)
    indexgroup = [None] * state.groups
    for name, i in groupindex.items():
        indexgroup[i] = name
    try:
        words = array("I", [int(c) for c in code])
    except (OverflowError, TypeError):
        return None
    kept = (int(flags | state.flags), words.tobytes(), int(state.groups - 1), groupindex, tuple(indexgroup))
    try:
        rebuilt = _sre.compile(pattern, kept[0], list(words), kept[2], dict(groupindex), kept[4])
    except Exception:  # noqa: BLE001
        return None
    if rebuilt != expected or rebuilt.groupindex != expected.groupindex or rebuilt.groups != expected.groups:
        return None
    return kept


def build(job: dict) -> int:
    """A version-3 job: the patterns a program compiled, added to its table.
    Returns how many were added."""
    path = job.get("patterns_file")
    keys = job.get("patterns")
    if job.get("python") != sys.version or not isinstance(path, str) or not isinstance(keys, list):
        return 0  # another interpreter's job: its own builder takes the program's next one
    table = read(path)
    added = 0
    for key in keys:
        # A queued pattern was not in the table or its entry was unusable.
        # Keys are (is bytes, flags, pattern): the kind first, so that a str
        # and a bytes pattern are never compared (a BytesWarning under -b).
        if not (isinstance(key, tuple) and len(key) == 3 and key[0] is isinstance(key[2], bytes)):
            continue
        table.pop(key, None)  # re-added last: the most recent are the ones kept
        # None: compiled at every start, and not queued again (one that warns).
        table[key] = entry(key[2], key[1])
        added += 1
    if not added:
        return 0
    if len(table) > MAX_PATTERNS:
        table = dict(list(table.items())[-MAX_PATTERNS:])
    from lazyexec.store import write_atomic

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError:
        return 0
    write_atomic(path, pack({"version": VERSION, "python": sys.version, "patterns": table}))
    return added
