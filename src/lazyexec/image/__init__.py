"""The application image (docs/image-format.md): every module an application
uses in one memory-mapped, indexed file, served by a finder placed ahead of
importlib's PathFinder with no file-system call per module.

    lazyexec image build -o APP.lzi [--trace CMD] [--stdlib] [MODULES/PATHS...]
    lazyexec run --image APP.lzi ...      LAZYEXEC_IMAGE=APP.lzi (with the .pth)

This module is on the start-up path of a program using an image: it imports
nothing beyond what activation already loaded.
"""

import os
import sys

FORMAT = 6
ENV = "LAZYEXEC_IMAGE"
CHECK_ENV = "LAZYEXEC_IMAGE_CHECK"
CHECKS = ("none", "mtime", "hash")

_external = sys.modules["_frozen_importlib_external"]
PYTHON_MAGIC = _external.MAGIC_NUMBER


def _booted():
    from lazyexec import _lazyexec

    return _lazyexec.image_booted()


# The installed ImageFinder (one image per process): the one the C++ boot
# installed at start (LAZYEXEC_IMAGE, _lazyexec.image_boot), if it did.
_active = _booted()


def runtime_key() -> bytes:
    """16 bytes naming the lazyexec runtime that can run an image's plans
    (version, artifact and image formats, the built core): another build
    refuses the image rather than run plans it may read differently.
    fingerprint("VERSION:PLAN_FORMAT:FORMAT:BUILD_IDENTITY") (the store's
    format and _build_identity()), computed in C++ (no import of
    lazyexec.store at activation)."""
    from lazyexec import _lazyexec

    return _lazyexec.image_runtime_key()


def open_image(path: str, check_runtime: bool = True):
    """The mapped, validated image; ImageError (a ValueError) saying what is wrong."""
    from lazyexec import _lazyexec

    return _lazyexec.Image(os.fspath(path), PYTHON_MAGIC, runtime_key() if check_runtime else b"")


def activate(path: str, check: str | None = None, config=None):
    """Serve the modules of the image at `path` from now on, ahead of
    PathFinder and of lazyexec's own finder. A damaged, truncated, foreign or
    missing image gives one RuntimeWarning and changes nothing: modules import
    normally. `check` (else LAZYEXEC_IMAGE_CHECK, else the image's own
    default): "none" serves without looking at the sources, "mtime" stats
    each source and "hash" reads it; a changed source is imported from the
    file instead, with a warning."""
    global _active
    if _active is not None:
        return _active
    from lazyexec import _lazyexec

    try:
        image = open_image(path)
    except (_lazyexec.ImageError, OSError, UnicodeError) as e:
        _warn(f"lazyexec: ignoring image {e}; modules import normally")
        return None
    if image.optimize != sys.flags.optimize:
        # Its code was compiled for another -O level (asserts, __debug__,
        # docstrings): as a .pyc of another opt- tag, not used.
        _warn(f"lazyexec: ignoring image {path}: built at optimization level {image.optimize}, "
              f"this interpreter runs at {sys.flags.optimize} (-O); modules import normally")
        return None
    check = check or os.environ.get(CHECK_ENV) or image.check
    if check not in CHECKS:
        _warn(f"lazyexec: {CHECK_ENV}={check!r} is not one of {', '.join(CHECKS)}; using {image.check!r}")
        check = image.check
    from lazyexec.image.importlib_bootstrap import ImageLoader, make_runner

    loader_class = type("ImageLoader", (ImageLoader,), {"image": image, "config": config,
                                                       "__module__": ImageLoader.__module__})
    finder = _lazyexec.ImageFinder(image, loader_class, check, _on_stale, whole=_used_whole(),
                                   make_runner=make_runner, config=config,
                                   watchers=_lazy_watchers(_lazyexec.Finder))
    sys.meta_path.insert(_position(_lazyexec.Finder), finder)
    _active = finder
    return finder


def _position(lazy_finder) -> int:
    """Where the image finder goes in sys.meta_path: ahead of PathFinder and
    lazyexec's Finder (a served module is found without any path search),
    and ahead of importlib's BuiltinImporter and FrozenImporter right before
    them (the finder leaves their modules to them; asking it first saves two
    Python calls per served module). A finder a tool put first stays first."""
    bootstrap = sys.modules["_frozen_importlib"]
    at = len(sys.meta_path)
    for i, f in enumerate(sys.meta_path):
        if f is _external.PathFinder or _is_lazy_finder(f, lazy_finder):
            at = i
            break
    while at > 0 and sys.meta_path[at - 1] in (bootstrap.BuiltinImporter, bootstrap.FrozenImporter):
        at -= 1
    return at


def _lazy_watchers(lazy_finder):
    """The patch points of lazyexec's Finder in sys.meta_path ({name:
    callback(spec)}, the dict itself, so that a watch added later is seen
    too): the image finder, ahead of it, runs them for the modules it
    serves. None when lazyexec's finder is not installed."""
    for f in sys.meta_path:
        if _is_lazy_finder(f, lazy_finder):
            return getattr(f, "watchers", None)
    return None


def _is_lazy_finder(f, lazy_finder) -> bool:
    """lazyexec's Finder, made by either extension (_lazyexec_boot's, the
    .pth activation's, is another type of the same name)."""
    return isinstance(f, lazy_finder) or (
        type(f).__name__ == lazy_finder.__name__ and type(f).__module__ == lazy_finder.__module__)


def _used_whole():
    """The usage profile's modules this program used whole last time
    (lazyexec.importer.profile, read at activation): a plan module among
    them runs its eager code from the image, as lazyexec's finder leaves
    such a module to the normal .pyc path. None when no profile is read."""
    profile = sys.modules.get("lazyexec.importer.profile")
    whole = getattr(profile, "_whole", None)
    return whole if isinstance(whole, set) and whole else None


def deactivate() -> None:
    global _active
    if _active is not None and _active in sys.meta_path:
        sys.meta_path.remove(_active)
    _active = None


def out_of_line(code):
    """The marshalled code a plan unit keeps out of line in an image (read
    from the mapping when the unit first runs): a unit's code bytes, or a
    plain function's ("function", bytes), a plain class's ("class", bytes,
    bases). None for the rest (eager units, constants stored as values)."""
    if isinstance(code, bytes):
        return code
    if isinstance(code, tuple) and len(code) == 2 and code[0] == "function":
        return code[1]
    if isinstance(code, tuple) and len(code) == 3 and code[0] == "class":
        return code[1]
    return None


def _unit_from_source(name: str, origin: str, is_package: bool, k: int, expected: int):
    """The marshalled code of unit code entry `k` of module `name`, compiled
    again from its source, when it is exactly the code the image was built
    with (its blob hash is `expected`): the image's copy is damaged. Else
    None (the source or the configuration changed since the build)."""
    from lazyexec import _lazyexec, config as config_mod
    from lazyexec.importer.importlib_bootstrap import load_or_build_plan

    try:
        plan = load_or_build_plan(origin, name, is_package, config_mod.load(), build="inline")
    except Exception:
        return None
    code = [c for c in (out_of_line(u[0]) for u in (plan.units if plan is not None else ())) if c is not None]
    if k < len(code) and _lazyexec.image_blob_hash(code[k]) == expected:
        return code[k]
    return None


def _warn(message: str) -> None:
    import warnings

    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _on_stale(fullname: str, origin, why: str) -> None:
    where = f" ({origin})" if origin else ""
    _warn(f"lazyexec: image {_active.image.path if _active else ''}: {fullname}{where}: {why}; "
          f"importing it normally")
