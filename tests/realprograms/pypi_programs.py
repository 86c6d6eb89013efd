"""The real programs' PyPI releases at pinned versions, for interpreters
Debian does not package them for (pyenv's 3.10-3.13).

    python tests/realprograms/pypi_programs.py DIR (all | ci)

installs the pins of every program (or of the CI subset) with `pip install
--target DIR` for the interpreter running it, once per set of pins (a stamp
in DIR); `make real-programs-pypi` then runs tests/realprograms with
LAZYEXEC_REALPROGRAMS_PYPI=DIR, which puts DIR on PYTHONPATH for the eager
and the lazy run alike and takes the console scripts from DIR/bin.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

# program name (tests/realprograms/test_real_programs.py) -> pinned requirements
PINS = {
    "black-diff": ["black==24.10.0"],
    "flake8": ["flake8==7.1.1"],
    "pygmentize-html": ["Pygments==2.18.0"],
    "pylint": ["pylint==3.3.2"],
    "http-offline": ["httpie==3.2.4"],
    "pytest-tiny-suite": ["pytest==8.3.4"],
    "sphinx-build-html": ["sphinx==8.1.3"],
    "rst2html": ["docutils==0.21.2"],
    "markdown-it": ["markdown-it-py==3.0.0"],
    "yaml-roundtrip": ["PyYAML==6.0.2"],
    "jinja2-render": ["Jinja2==3.1.4"],
    "pydoc-text": [],  # the interpreter's own
    "chardetect": ["chardet==5.2.0"],
}

# CI runs these on every pyenv interpreter: quick to install (pure Python or
# one wheel) and to run, and between them formatting, rendering, parsing and
# a test suite (pytest's assertion-rewriting import hook). The rest (flake8,
# pylint, sphinx, httpie, chardet) is `make real-programs-pypi`.
CI = ["black-diff", "pygmentize-html", "rst2html", "markdown-it", "yaml-roundtrip", "jinja2-render", "pydoc-text",
      "pytest-tiny-suite"]

STAMP = "realprograms-pins.json"


def installed(directory: Path) -> list[str]:
    """The programs whose pins DIR holds."""
    try:
        return json.loads((directory / STAMP).read_text())["programs"]
    except (OSError, ValueError, KeyError):
        return []


def install(directory: Path, which: str) -> None:
    programs = list(PINS) if which == "all" else CI
    pins = sorted({p for name in programs for p in PINS[name]})
    want = {"python": sys.version, "programs": programs, "pins": pins}
    try:
        if json.loads((directory / STAMP).read_text()) == want:
            return
    except (OSError, ValueError):
        pass
    shutil.rmtree(directory, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-warn-script-location", "--target", str(directory), *pins], check=True)
    (directory / STAMP).write_text(json.dumps(want))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in ("all", "ci"):
        sys.exit(__doc__)
    install(Path(sys.argv[1]).resolve(), sys.argv[2])
