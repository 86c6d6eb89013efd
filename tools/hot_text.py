#!/usr/bin/env python3
"""Write src/native/hot_text.ld: the full extension's warm-path functions,
laid out together at the front of its code.

A warm process maps the full extension's code 64 KiB at a time around each
page it executes (the kernel's fault-around). Spread over the whole library,
the few dozen functions a warm start runs made about 700 KiB resident;
grouped, they fit in a few such windows (docs/startup.md, peak RSS).

The list comes from running workloads under valgrind's callgrind with an
extension that keeps its symbols:

    pip install --no-build-isolation --no-deps \\
        --config-settings=install.strip=false \\
        --config-settings=cmake.define.LAZYEXEC_HOT_TEXT=OFF \\
        --config-settings=build-dir=build/hot-text .
    python tools/hot_text.py --python A/bin/python --python B/bin/python

(the union over the interpreters given; the default is this one). Then,
so that no function the list in use names leaves the warm code (a path
another workload or interpreter ran), merge the two without profiling:

    python tools/hot_text.py --output new.ld --python ...
    python tools/hot_text.py --merge src/native/hot_text.ld --merge new.ld

Programs outside the workloads (third-party ones) run other warm paths
(the usage profile's cost model at exit, a unit whose code raised): profile
their warm starts under the same build and add what they ran:

    valgrind --tool=callgrind --demangle=no --callgrind-out-file=prog.cg PYTHON PROG...
    python tools/hot_text.py --merge src/native/hot_text.ld --callgrind prog.cg ...

A stale list costs only layout: a function missing from it is placed with
the rest of the code, and a name no longer defined matches nothing.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "native" / "hot_text.ld"

# Warm starts of programs that use much, little and nothing of what they
# import, and a run of the standard library's own command-line tools.
WORKLOADS = [
    [str(ROOT / "bench" / "programs" / "use_everything.py")],
    # Every module lazy (no usage profile to load some whole): what settles a module runs too.
    ([str(ROOT / "bench" / "programs" / "use_everything.py")], {"LAZYEXEC_PROFILE": "0"}),
    [str(ROOT / "bench" / "programs" / "use_little.py")],
    ["-m", "json.tool", "--help"],
    ["-m", "http.server", "--help"],
    ["-m", "unittest", "--help"],
    ["-c", "import email.message, urllib.request, logging.handlers, argparse, dataclasses, typing"],
]
# The same modules served from an image (LAZYEXEC_IMAGE): the image
# reader's and its finder's functions are on a warm path too.
IMAGE_MODULES = ["email.message", "urllib.request", "logging.handlers", "argparse", "dataclasses", "typing"]
IMAGE_WORKLOAD = ["-c", "import " + ", ".join(IMAGE_MODULES)]
# A program served from an image that runs what it imports: its main
# module's code (runpy asks the loader's get_code), units materialized from
# the mapping, a package binding its own submodule's name (unittest's
# `from .main import main`), and, once the usage profile has
# learned (IMAGE_LEARN runs first), modules loaded whole from their eager
# code in the image. Without it these ran in the cold code: test_bisect
# from its image kept four 64 KiB windows of it resident (256 KB at exit).
IMAGE_PROGRAM_MODULES = ["unittest", "argparse", "json", "textwrap", "difflib", "pprint"]
IMAGE_PROGRAM = ["-m", "unittest", "discover", "-s", ".", "-p", "test_image_program.py"]
IMAGE_PROGRAM_TEST = "import unittest\n\n\nclass T(unittest.TestCase):\n    def test(self):\n        self.assertEqual(1, 1)\n"
IMAGE_LEARN = 3


def executed_functions(out: Path, library: str) -> set[str]:
    """Names of the functions of `library` that ran, from a callgrind file
    (names compressed as `(id) name` on first use)."""
    objects: dict[str, str] = {}
    functions: dict[str, str] = {}
    ran: set[str] = set()
    current_object = ""
    pattern = re.compile(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$")
    for line in out.read_text(errors="replace").splitlines():
        m = pattern.match(line)
        if not m:
            continue
        kind, ident, name = m.groups()
        table = objects if kind.endswith("ob") else functions
        if name is not None:
            table[ident] = name
        name = table.get(ident, "")
        if kind == "ob":
            current_object = name
        elif kind == "fn" and library in current_object:
            ran.add(name)
    return ran


def warm_functions(python: str, library: str) -> set[str]:
    """The functions of `library` that the workloads' warm starts run under `python`."""
    names: set[str] = set()
    with tempfile.TemporaryDirectory() as d:
        config = Path(d) / "all.toml"
        config.write_text('mode = "all"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(LAZYEXEC="1", LAZYEXEC_CONFIG=str(config), LAZYEXEC_CACHE_DIR=str(Path(d) / "cache"))
        image = Path(d) / "modules.lzi"
        subprocess.run([os.path.abspath(python), "-m", "lazyexec", "image", "build", "-q", "-o", str(image),
                        *IMAGE_MODULES], cwd=d, env=env, capture_output=True, check=True)
        program_image = Path(d) / "program.lzi"
        (Path(d) / "test_image_program.py").write_text(IMAGE_PROGRAM_TEST)  # one test: none exits 5 on 3.12+
        subprocess.run([os.path.abspath(python), "-m", "lazyexec", "image", "build", "-q", "-o", str(program_image),
                        *IMAGE_PROGRAM_MODULES], cwd=d, env=env, capture_output=True, check=True)
        runs = [w if isinstance(w, tuple) else (w, {}) for w in WORKLOADS]
        runs.append((IMAGE_WORKLOAD, {"LAZYEXEC_IMAGE": str(image)}))
        runs.append((IMAGE_PROGRAM, {"LAZYEXEC_IMAGE": str(program_image)}, IMAGE_LEARN))
        for i, (words, extra, *learn) in enumerate(runs):
            cmd = [os.path.abspath(python), *words]
            # The first run builds the artifacts; the second is the warm start measured.
            for _ in range(learn[0] if learn else 1):
                subprocess.run(cmd, cwd=d, env={**env, **extra, "LAZYEXEC_BUILD": "inline"}, capture_output=True)
            out = Path(d) / f"callgrind.{i}"
            subprocess.run(["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}", *cmd],
                           cwd=d, env={**env, **extra}, capture_output=True, check=True)
            names |= executed_functions(out, library)
    return names


def section_names(name: str) -> list[str]:
    """The section names a function of that symbol name can be in. GCC
    emits a constructor or destructor once, under its base-object name (C2,
    D2), with the complete-object name (C1, D1) as an alias: callgrind may
    report either, the section is named after the first."""
    names = {name}
    for complete, base in (("C1E", "C2E"), ("D1E", "D2E")):
        for m in re.finditer(complete, name):
            names.add(name[:m.start()] + base + name[m.end():])
    return sorted(names)


def listed_functions(text: str) -> set[str]:
    """The functions a list this tool wrote names (the first section name
    of each line: the name callgrind reported, or its base-object twin)."""
    return {m.group(1) for m in re.finditer(r"^    \*\(\.text\.(\S+) ", text, re.M)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", action="append", help="an interpreter with lazyexec installed unstripped "
                    "(repeat for the union over several; default: this one)")
    ap.add_argument("--output", type=Path, default=OUT)
    ap.add_argument("--merge", type=Path, action="append",
                    help="no profiling: the union of the functions these lists (files this tool wrote) name, "
                    "e.g. the list in use and a new profile's, so that no function a workload or interpreter "
                    "profiled before leaves the warm code")
    ap.add_argument("--callgrind", type=Path, action="append",
                    help="no profiling: also the functions that ran in these callgrind outputs (warm starts of "
                    "programs the workloads above do not cover, run with --demangle=no under an unstripped "
                    "extension laid out without this list); with --merge")
    args = ap.parse_args()
    library = "_lazyexec.cpython"
    names: set[str] = set()
    if args.merge:
        for listed in args.merge:
            names |= listed_functions(listed.read_text())
    for out in args.callgrind or ():
        names |= executed_functions(out, library)
    for python in [] if args.merge or args.callgrind else args.python or [sys.executable]:
        names |= warm_functions(python, library)
    names = {n for n in names if re.fullmatch(r"[A-Za-z_][\w.$]*", n)}
    if sum(n.startswith("_ZN8lazyexec") for n in names) < 20:
        print("no lazyexec function names found: is the extension stripped, or laid out by\n"
              "hot_text.ld already (build with cmake.define.LAZYEXEC_HOT_TEXT=OFF)?", file=sys.stderr)
        return 1
    lines = [
        "/* Generated by tools/hot_text.py: the functions a warm start runs, laid",
        "   out together ahead of the rest of the code (see that file). */",
        "SECTIONS",
        "{",
        "  .text.lazyexec_warm :",
        "  {",
        # Also where GCC puts static constructors; libgcc's CPU probe and
        # crtbegin keep their code in plain .text, named by object below.
        *(f"    *({' '.join(f'.text.{s} .text.startup.{s}' for s in section_names(n))})" for n in sorted(names)),
        "    *libgcc.a:cpuinfo.o(.text .text.*)",
        # crtbegin's frame_dummy and register_tm_clones: run by every load (.init_array).
        "    *crtbeginS.o(.text .text.*)",
        "  }",
        "}",
        "INSERT BEFORE .text;",
        "",
    ]
    args.output.write_text("\n".join(lines))
    print(f"{len(names)} functions -> {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
