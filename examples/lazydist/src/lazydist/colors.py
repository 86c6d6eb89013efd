"""Colours: a module the package imports but a program may never use."""

from collections import namedtuple

RELEASE = "1.0"

RGB = namedtuple("RGB", "r g b")
RED = RGB(255, 0, 0)


def release() -> str:
    return "colors " + RELEASE
