"""lazydist: the example of a distribution that opts in to lazyexec in its
metadata (pyproject.toml, [project.entry-points.lazyexec]); no module has a
marker."""

import json

from lazydist import colors
from lazydist.plugins import REGISTRY  # declared `never`: this import is never deferred either
from lazydist.shapes import Circle, Square

VERSION = "1.0"


def describe(shape) -> str:
    return json.dumps({"shape": type(shape).__name__, "area": round(shape.area(), 3), "version": VERSION})


__all__ = ["Circle", "Square", "REGISTRY", "colors", "describe", "VERSION"]
