"""The usage profile: modules a program used whole load eagerly next time.

A lazily loaded module whose every deferred unit ran before the program
exited bought nothing by being lazy; its bookkeeping (trapping namespace,
one code object per unit, materializing each) made it cost more than an
eager import. So did one used nearly whole: at most a quarter of its
deferred units still pending, none of them an import of a module the run
did not load (runtime::used_nearly_whole). So does a module with nothing to defer, read through
lazyexec's loader only to fall back to the `.pyc`. At exit lazyexec records
both, per program (the script or `-m` module and the configuration); at the
next start the finder hands them to the normal machinery untouched. Eager is
the reference behaviour, so this never changes what a program does; it only
stops paying for laziness that did not pay. Except for a module on an import
cycle through deferred imports: loaded whole while the cycle's other modules
stay lazy, its own imports would start the cycle at it, where eagerly another
module had started it (nbformat.reader, jupyter-nbconvert's circular
ImportError from its second lazy start): such a module is never recorded
(runtime::used_nearly_whole).

An entry expires (default one day, `LAZYEXEC_PROFILE_TTL` seconds) and the
module is then tried lazily again, so a program whose use changes finds its
new profile. `LAZYEXEC_PROFILE=0` or `usage_profile = false` turns it off.
"""

import os
import sys
import time

from lazyexec import _lazyexec

VERSION = 1
DEFAULT_TTL = 86400.0

_path = None           # this program's profile file
_known: dict = {}      # module -> expiry (epoch seconds), as read at start
_whole: set = set()    # modules to load eagerly this run (unexpired entries)
nothing_to_defer: list = _lazyexec.nothing_to_defer()  # loaded through lazyexec's loader, plan empty (C++'s list)


def enabled(config) -> bool:
    env = os.environ.get("LAZYEXEC_PROFILE")
    if env in ("0", "1"):
        return env == "1"
    return getattr(config, "usage_profile", None) is not False


def program_identity(argv=None) -> str:
    """What names the program: its script (absolute path), `-m module`, or
    `-c`, from the interpreter's own command line (`sys.orig_argv`), with
    the shape of its arguments (`usage`)."""
    args = list(argv if argv is not None else getattr(sys, "orig_argv", sys.argv))[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-c":
            return "-c" + usage(args[i + 2:])
        if a == "-m" and i + 1 < len(args):
            return "-m " + args[i + 1] + usage(args[i + 2:])
        if a.startswith("-m") and len(a) > 2:
            return "-m " + a[2:] + usage(args[i + 1:])
        if a in ("-X", "-W", "--check-hash-based-pycs"):
            i += 2
            continue
        if a.startswith("-") and a != "-":
            i += 1
            continue
        return os.path.abspath(a) + usage(args[i + 1:])
    return "-"


def usage(args) -> str:
    """The shape of a command line: its options, its first positional
    argument when it is a word (a subcommand: `git commit`, `pip list`) and
    how many positionals follow. One program used two ways (`pylint
    --version`, `pylint pkg/`) has two profiles, so modules a heavy use needed
    whole are not loaded eagerly by a light one; a file or other value is not
    part of the shape, so `black a.py` and `black b.py`, or `pytest
    tests/test_a.py` and `pytest tests/test_b.py`, share theirs."""
    options = [a.split("=", 1)[0] for a in args if a.startswith("-")]
    positionals = [a for a in args if not a.startswith("-")]
    first = positionals[0] if positionals and _is_word(positionals[0]) else ""
    return f"\0{' '.join(options)}\0{first}\0{len(positionals)}"


_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _is_word(arg: str) -> bool:
    """An ASCII letter, then letters, digits, `_` and `-` (boot.cpp's
    is_word): a path (`/`, `.`), a `module:function` or a number is not."""
    return arg[:1].isascii() and arg[:1].isalpha() and all(c in _WORD_CHARS for c in arg)


def load(config, program: str | None = None) -> set:
    """The modules to load eagerly this run (read once, at activation)."""
    global _path, _known, _whole
    from lazyexec import _lazyexec
    from lazyexec.config import cache_dir, caching_enabled

    if not caching_enabled() or not enabled(config):
        return set()
    program = program or program_identity()
    if program.startswith("-"):
        # `-m pkg` or `-c`: what runs depends on the working directory
        # (first on sys.path), so it is part of the name.
        program += "\0" + os.getcwd()
    ident = f"{program}\0{config.plan_key()}\0{config.include}\0{config.exclude}"
    _path = os.path.join(cache_dir(), "profiles", _lazyexec.fingerprint(ident) + ".profile")
    try:
        with open(_path, "rb") as f:
            import marshal

            data = marshal.loads(f.read())
        if not (isinstance(data, dict) and data.get("version") == VERSION and isinstance(data.get("eager"), dict)):
            raise ValueError("unexpected contents")
        now = time.time()
        _known = {k: v for k, v in data["eager"].items() if isinstance(v, float) and v > now}
    except OSError:
        _known = {}  # none yet: every module is tried lazily
    except (EOFError, ValueError, TypeError) as e:
        _known = {}
        import warnings

        warnings.warn(f"lazyexec: ignoring damaged usage profile {_path} ({e}); it is rewritten at exit",
                      RuntimeWarning, stacklevel=2)
    _whole = set(_known)
    import atexit

    atexit.register(_save_at_exit)
    return _whole


def marks_path() -> str | None:
    """Where the finder keeps this program's marker verdicts (mode
    "marked"): beside its profile, None when the profile is off."""
    if _path is None:
        return None
    return _path[: -len(".profile")] + ".marks" if _path.endswith(".profile") else _path + ".marks"


def adopt(path: str | None, known: dict) -> None:
    """What activation in C++ (boot.cpp) read, as load() would have set it."""
    global _path, _known, _whole
    if path is None:
        return
    _path, _known, _whole = path, dict(known), set(known)
    import atexit

    atexit.register(_save_at_exit)


def save_adopted(path: str, known: dict) -> None:
    """At exit of a start activated in C++ whose run learned something (the
    C++ loader compared first): write the profile as save() does."""
    global _path, _known, _whole
    if _path is None:
        _path, _known, _whole = path, dict(known), set(known)
    _save_at_exit()


def ttl() -> float:
    try:
        return float(os.environ.get("LAZYEXEC_PROFILE_TTL", DEFAULT_TTL))
    except ValueError:
        return DEFAULT_TTL


_module_dict = type(sys).__dict__["__dict__"]  # a module's namespace, not through its class


def observed() -> dict:
    """This run's verdicts: module -> True (used whole or nearly, or nothing
    to defer: eager next time) or False (units still pending: laziness paid)."""
    out = {name: True for name in nothing_to_defer}
    # Top-level modules that were not there: left to PathFinder at once next
    # time (the finder would search sys.path for them before it).
    for finder in sys.meta_path:
        if type(finder).__name__ == "Finder" and type(finder).__module__ == "lazyexec._lazyexec":
            out.update(dict.fromkeys(finder.misses(), True))
    for name in _lazyexec.loaded_modules():
        m = sys.modules.get(name)
        if not isinstance(m, type(sys)):
            continue
        try:
            s = _lazyexec.module_stats(_module_dict.__get__(m))
        except (ValueError, TypeError):
            continue
        out[name] = s["used_nearly_whole"]  # runtime::used_nearly_whole, as the C++ loader's check
    return out


def _save_at_exit() -> None:
    try:
        save()
    except Exception:  # noqa: BLE001 - a profile not written only costs laziness next time
        pass


def save() -> None:
    """At exit: entries for modules used whole, none for modules that kept
    units pending; unexpired entries of modules loaded eagerly stay as they
    are (their expiry is not renewed: they are tried lazily again then)."""
    if _path is None:
        return
    now = time.time()
    new = {k: v for k, v in _known.items() if v > now}
    for name, whole in observed().items():
        if whole:
            new.setdefault(name, now + ttl())
        else:
            new.pop(name, None)
    if set(new) == set(_known):
        return  # nothing learned: no write
    import marshal

    from lazyexec.store import write_atomic

    try:
        os.makedirs(os.path.dirname(_path), exist_ok=True)
    except OSError:
        return
    write_atomic(_path, marshal.dumps({"version": VERSION, "eager": new}))
