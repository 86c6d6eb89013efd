"""`lazyexec` / `python -m lazyexec`: argument parsing and error reporting.

Errors a user can fix (bad path, syntax error, bad configuration) print one
line, `file:line: message` where there is a place, and exit 2: no traceback.
"""

# No `from __future__ import annotations` here or in cli/run.py: it loads
# the __future__ module (about 1 M instructions, 2% of an empty start) on
# `lazyexec run`'s path, and every annotation below is valid at run time on
# 3.10+.
import sys

import lazyexec

EXIT_USAGE = 2


def _parser():
    import argparse

    p = argparse.ArgumentParser(prog="lazyexec", description="Run each module's top-level definitions only when first used.")
    p.add_argument("--version", action="version", version=f"lazyexec {lazyexec.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("pth", help="install, remove or show the .pth file that activates lazyexec when LAZYEXEC=1",
                   add_help=False)
    sub.add_parser("check", help="run a command eagerly and lazily, compare its output, find the module "
                                 "responsible for a difference: check [OPTIONS] -- CMD [ARGS...]", add_help=False)
    sub.add_parser("run", help="run a program with lazy loading: run (SCRIPT.py | -m MODULE | COMMAND) [ARGS...]",
                   add_help=False)

    sub.add_parser("image", help="one memory-mapped image for a whole application: image (build|verify) ...",
                   add_help=False)
    sub.add_parser("why", help="every module a run loads and what caused it: why [--json] [--html FILE] -- COMMAND",
                   add_help=False)
    sub.add_parser("cache", help="where artifacts and caches live, per build key; remove stale ones: "
                                 "cache (info | prune | clear)", add_help=False)
    ex = sub.add_parser("explain", help="show each top-level statement's verdict (lazy or eager) and why",
                        description="Show every top-level statement of a module with its verdict and the reason. "
                                    "With --summary, a census over a tree of sources.")
    ex.add_argument("target", nargs="?", help="a source FILE, a dotted MODULE name, or with --summary a directory")
    ex.add_argument("--json", action="store_true", help="machine-readable output (schema: docs/explain-json.md)")
    ex.add_argument("--summary", action="store_true", help="census over a directory tree instead of one module")
    ex.add_argument("--stdlib", action="store_true", help="with --summary: the running interpreter's standard library")
    ex.add_argument("--top", type=int, default=15, help="with --summary: how many eager reasons to list (default 15)")
    ex.add_argument("--facts", action="store_true", help="also show def_reads, call_reads and the force plan")
    co = sub.add_parser("compile", help="analyse and store artifacts ahead of time, as compileall does for .pyc",
                        description="Analyse a tree of sources (each directory a sys.path entry) and store their "
                                    "artifacts, so no program pays for analysis at its first lazy start.")
    co.add_argument("paths", nargs="*", help="directories (sys.path entries) or files")
    co.add_argument("--stdlib", action="store_true", help="the running interpreter's standard library (mode all)")
    co.add_argument("--installed", action="store_true",
                    help="index the installed distributions that opted in (entry points [lazyexec]) and store "
                         "their artifacts: a post-install step (docs/package-opt-in.md)")
    co.add_argument("-q", "--quiet", action="store_true", help="with --installed: print nothing but errors")
    co.add_argument("-v", "--verbose", action="store_true", help="name the files that cannot be analysed")
    co.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                    help="analyse in N worker processes (0: one per CPU), as compileall -j (default 1)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        # Everything after the target belongs to the program: no argparse here.
        from lazyexec.cli import run

        return run.run(argv[1:])
    if argv and argv[0] == "why":
        from lazyexec.cli import why

        try:
            return why.run(argv[1:])
        except BrokenPipeError:  # `lazyexec why ... | head`
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    if argv and argv[0] == "check":
        from lazyexec.cli import check

        return check.run(argv[1:])
    if argv and argv[0] == "image":
        from lazyexec.cli import image

        return image.run(argv[1:])
    if argv and argv[0] == "cache":
        from lazyexec.cli import cache

        return cache.run(argv[1:])
    if argv and argv[0] == "pth":
        from lazyexec.cli import pth

        return pth.run(argv[1:])
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return EXIT_USAGE
    try:
        if args.command == "explain":
            from lazyexec.cli import explain

            return explain.run(args)
        if args.command == "compile":
            from lazyexec.cli import compile as compile_cli

            return compile_cli.run(args)
    except BrokenPipeError:  # `lazyexec explain ... | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


def fail(message: str) -> int:
    print(f"lazyexec: {message}", file=sys.stderr)
    return EXIT_USAGE


def syntax_error_line(e: SyntaxError, fallback: str) -> str:
    where = e.filename or fallback
    line = f":{e.lineno}" if e.lineno else ""
    return f"{where}{line}: {e.__class__.__name__}: {e.msg}"


if __name__ == "__main__":
    sys.exit(main())
