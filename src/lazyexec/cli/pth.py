"""`lazyexec pth (install|remove|status) [--dir DIR]`: activation at
interpreter start for programs started by others. The .pth file does nothing
unless LAZYEXEC=1 is set in the program's environment."""

from __future__ import annotations

import os
import sysconfig

from lazyexec.cli.main import fail

# site runs .pth files in sorted order: "00-" comes before letters and "_", so
# the modules other .pth files import (certifi, distutils hacks, ...) load
# lazily too.
NAME = "00-lazyexec-activate.pth"
OLD_NAMES = ("lazyexec-activate.pth",)  # earlier releases: removed with it
# site executes .pth lines that start with "import". The line loads the
# start-up extension (_lazyexec_boot: activation and the finder) by its path
# with _imp.create_dynamic() and activates in C++ (`boot()`, importer/boot.cpp):
# no Python module of lazyexec's and no scan of site-packages at start-up.
# When boot() declines (a cache to build, a configuration error to report)
# it calls lazyexec.activate() itself. Only the guard is compiled at every
# start (site runs the line even without LAZYEXEC=1); the rest is one string
# constant, compiled (as an expression: cheaper than a statement) when used
# and kept as small as it can be: compiling it is a good part of what
# activation costs, and every call and keyword in it adds to that. site runs
# a venv's .pth files twice (once from venv(), once from main()): once the
# start-up extension is in sys.modules the guard is false, so the second run
# compiles nothing more (about 0.2 M instructions, half a percent of an
# empty start).
BOOT = ("__import__('_imp').create_dynamic(sys.modules['_frozen_importlib'].ModuleSpec('lazyexec._lazyexec_boot',"
        "None,origin={so!r})).boot()")
LINE = ("import os, sys; sys.modules.get('lazyexec._lazyexec_boot', os.environ.get('LAZYEXEC')) == '1' and "
        "eval({boot!r})\n")


def boot_extension() -> str:
    """The start-up extension, beside the full one (the same suffix)."""
    from lazyexec import _lazyexec

    directory, name = os.path.split(os.path.abspath(_lazyexec.__file__))
    return os.path.join(directory, "_lazyexec_boot" + name[len("_lazyexec"):])


def line() -> str:
    return LINE.format(boot=BOOT.format(so=boot_extension()))


def target_dir(explicit: str | None) -> str:
    return explicit or sysconfig.get_paths()["purelib"]


def run(argv: list[str]) -> int:
    directory = None
    if "--dir" in argv:
        i = argv.index("--dir")
        if i + 1 >= len(argv):
            return fail("--dir needs a directory")
        directory = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if len(argv) != 1 or argv[0] not in ("install", "remove", "status"):
        return fail("usage: lazyexec pth (install|remove|status) [--dir SITE-PACKAGES]")
    path = os.path.join(target_dir(directory), NAME)
    if argv[0] == "install":
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(line())
        except OSError as e:
            return fail(f"cannot write {path}: {e}")
        print(f"installed {path}; programs started with LAZYEXEC=1 now load lazily")
    elif argv[0] == "remove":
        for old in OLD_NAMES:
            try:
                os.unlink(os.path.join(os.path.dirname(path), old))
            except OSError:
                pass
        try:
            os.unlink(path)
            print(f"removed {path}")
        except FileNotFoundError:
            print(f"not installed ({path})")
        except OSError as e:
            return fail(f"cannot remove {path}: {e}")
    else:
        print(f"{'installed' if os.path.exists(path) else 'not installed'}: {path}")
    return 0
