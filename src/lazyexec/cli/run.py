"""`lazyexec run (script.py | -m module | console-script) [args]`: start a
program with lazy loading active. The main script itself runs as usual; the
modules it imports load lazily as policy selects."""

from __future__ import annotations

import os
import sys

from lazyexec.cli.main import fail

USAGE = "usage: lazyexec run (SCRIPT.py | -m MODULE | CONSOLE-SCRIPT) [ARGS...]"


def run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from lazyexec import activate

    if argv[0] == "-m":
        if len(argv) < 2:
            return fail(USAGE)
        module, rest = argv[1], argv[2:]
        from lazyexec.importer.profile import usage

        activate(program="-m " + module + usage(rest))
        import runpy  # after activating: runpy's own imports load lazily too

        sys.argv = [module, *rest]  # runpy replaces argv[0] with the module's path
        # `python -m lazyexec` already put the working directory first, as
        # `python -m module` would.
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    target, rest = argv[0], argv[1:]
    if os.path.exists(target):
        path = target
    else:
        import shutil  # only for console scripts: shutil pulls in re, bz2, lzma

        path = shutil.which(target)
    if path is None:
        return fail(f"{target}: no such script or command")
    from lazyexec.importer.profile import usage

    activate(program=os.path.abspath(path) + usage(rest))
    import runpy

    sys.argv = [path, *rest]
    # As `python script.py`: the script's directory replaces the working
    # directory that `python -m lazyexec` put first.
    sys.path[0] = os.path.dirname(os.path.abspath(path))
    runpy.run_path(path, run_name="__main__")
    return 0
