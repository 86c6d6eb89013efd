"""`lazyexec run --image APP.lzi`: the image's entry point (`image build
--main MODULE:FUNCTION`), read from the mapped header."""

from __future__ import annotations


def entry_point(path: str) -> tuple[str | None, str | None]:
    """(entry point or None, why the image cannot be read or None). Read
    without the interpreter and runtime checks: an image built by another
    Python or lazyexec still names its entry point, which then runs with its
    modules imported normally (activation warns)."""
    from lazyexec import _lazyexec

    try:
        return _lazyexec.Image(path).entry, None
    except (_lazyexec.ImageError, OSError, UnicodeError) as e:
        return None, str(e)


def call_entry(entry: str):
    import importlib

    module, _, function = entry.partition(":")
    target = importlib.import_module(module)
    for attr in function.split("."):
        target = getattr(target, attr)
    return target()


def source_roots(path: str) -> list[str]:
    """The sys.path entries the image's modules were built from (`/x` for
    module `a.b` at `/x/a/b.py`): when the image itself is refused (another
    interpreter or lazyexec build), its entry point's modules import normally
    from there."""
    import os

    from lazyexec import _lazyexec

    roots: list[str] = []
    try:
        records = _lazyexec.Image(path).records()
    except (_lazyexec.ImageError, OSError, UnicodeError):
        return roots
    for name, origin, is_package, *_ in records:
        root = os.path.dirname(origin)
        for _ in range(name.count(".") + (1 if is_package else 0)):
            root = os.path.dirname(root)
        if root not in roots:
            roots.append(root)
    return roots
