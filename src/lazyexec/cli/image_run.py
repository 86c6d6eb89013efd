"""`lazyexec run --image APP.lzi`: the image's entry point (`image build
--main MODULE:FUNCTION`), read from the mapped header."""

from __future__ import annotations


def entry_point(path: str) -> str | None:
    """The entry point of the image at `path`; None when it has none or
    cannot be read (activation then warns and imports normally)."""
    from lazyexec import _lazyexec
    from lazyexec.image import open_image

    try:
        return open_image(path).entry
    except (_lazyexec.ImageError, OSError, UnicodeError):
        return None


def call_entry(entry: str):
    import importlib

    module, _, function = entry.partition(":")
    target = importlib.import_module(module)
    for attr in function.split("."):
        target = getattr(target, attr)
    return target()
