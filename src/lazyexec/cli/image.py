"""`lazyexec image build|verify`: the application image (docs/image-format.md).

    lazyexec image build -o APP.lzi [--trace "COMMAND"] [--stdlib] [--main MODULE:FUNCTION]
                         [--mode all|marked|eager] [--check none|mtime|hash] [MODULES/PATHS...]
    lazyexec image verify APP.lzi [--sources]
"""

from __future__ import annotations

import argparse
import os
import sys

from lazyexec.cli.main import fail


def _parser():
    p = argparse.ArgumentParser(prog="lazyexec image", description="One memory-mapped image for a whole application.")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    b = sub.add_parser("build", help="write an image of the selected modules")
    b.add_argument("targets", nargs="*", metavar="MODULES/PATHS",
                   help="module or package names, directories (sys.path entries) or .py files")
    b.add_argument("-o", "--output", required=True, help="the image file to write (APP.lzi)")
    b.add_argument("--trace", metavar="COMMAND",
                   help="run COMMAND once: its modules (when none are named) in first-use order")
    b.add_argument("--stdlib", action="store_true", help="every module of the standard library")
    b.add_argument("--main", metavar="MODULE:FUNCTION",
                   help="an executable image: `./APP.lzi ARGS` runs sys.exit(MODULE.FUNCTION())")
    b.add_argument("--mode", choices=("all", "marked", "eager"),
                   help="which modules get a lazy plan (default: the configuration's mode; 'all' with --stdlib); "
                        "eager: code objects only")
    b.add_argument("--check", choices=("none", "mtime", "hash"), default="none",
                   help="the staleness check programs use by default (LAZYEXEC_IMAGE_CHECK overrides)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    v = sub.add_parser("verify", help="check an image: structure, every payload, and its sources on disk")
    v.add_argument("image")
    v.add_argument("--check", choices=("mtime", "hash"), default="hash",
                   help="how to compare the sources with the image (default: hash)")
    return p


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.action == "build":
        return build(args)
    if args.action == "verify":
        return verify(args)
    _parser().print_help()
    return 2


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        return None
    from rich.console import Console

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[module]}"), console=Console(stderr=True), transient=True)


def build(args) -> int:
    from lazyexec import config as config_mod
    from lazyexec.image import build as b

    if args.main and (":" not in args.main or not all(args.main.split(":", 1))):
        return fail(f"--main {args.main!r}: expected MODULE:FUNCTION")
    try:
        config = config_mod.load()
    except config_mod.ConfigError as e:
        return fail(str(e))
    mode = args.mode or ("all" if args.stdlib else config.mode)
    traced = []
    if args.trace:
        from lazyexec.image.trace import trace

        traced, status = trace(args.trace)
        if status != 0:
            print(f"lazyexec image: note: the traced command exited with status {status}", file=sys.stderr)
    if not (args.targets or args.stdlib or traced):
        return fail("image build: name modules or paths, --stdlib, or --trace COMMAND")
    sources, problems = b.select(args.targets, args.stdlib, traced)
    for p in problems:
        print(f"lazyexec image: {p}", file=sys.stderr)
    if problems:
        return 2
    policy = None
    if mode != "eager":
        from lazyexec.importer import Policy

        config = config_mod.Config(**{**{k: getattr(config, k) for k in config.__slots__}, "mode": mode})
        policy = Policy(config)
    import warnings

    warnings.simplefilter("ignore", SyntaxWarning)  # test data in the stdlib; compileall's -q
    entries, skipped = [], []
    progress = _progress(args.quiet)
    if progress is not None:
        progress.start()
        task = progress.add_task("building image", total=len(sources), module="")
    try:
        for s in sources:
            if progress is not None:
                progress.update(task, module=s.name)
            e = b.build_entry(s, policy, config)
            if e is None:
                skipped.append(s.name)
            else:
                entries.append(e)
            if progress is not None:
                progress.advance(task)
    finally:
        if progress is not None:
            progress.stop()
    prefix = b.shebang() if args.main else b""
    if len(prefix) > 255:
        print("lazyexec image: warning: the #! line is longer than Linux reads (255 bytes)", file=sys.stderr)
    data = b.layout(entries, args.main, traced=bool(traced), check=args.check, prefix=prefix)
    b.write(args.output, data, executable=bool(args.main))
    if args.trace and any(e.unit_code for e in entries):
        # Run COMMAND again, served from this image, for the order in which
        # its deferred units first run: their code goes first, together.
        from lazyexec.image.trace import trace_units

        if not args.quiet:
            print("lazyexec image: running the command again from the image for its units' first-use order",
                  file=sys.stderr)
        unit_order = trace_units(args.trace, args.output)
        if unit_order:
            data = b.layout(entries, args.main, traced=True, check=args.check, prefix=prefix, unit_order=unit_order)
            b.write(args.output, data, executable=bool(args.main))
    lazy = sum(e.is_plan for e in entries)
    ext = sum(e.source.extension for e in entries)
    print(f"lazyexec image: {args.output}: {len(entries)} modules ({lazy} lazy, {len(entries) - lazy - ext} eager, "
          f"{ext} extension), "
          f"{len(data) / 1e6:.1f} MB" + (f", {len(skipped)} skipped (unreadable or invalid)" if skipped else ""))
    return 0


def verify(args) -> int:
    """Exit 0 when the image is sound and every source matches it; 1 with one
    line per problem otherwise (2 when it cannot be read at all)."""
    from lazyexec import _lazyexec
    from lazyexec.image import open_image

    try:
        image = open_image(args.image)
    except (_lazyexec.ImageError, OSError) as e:
        print(f"lazyexec image verify: {e}", file=sys.stderr)
        return 2
    try:
        records = image.records()
    except _lazyexec.ImageError as e:
        print(f"lazyexec image verify: {e}", file=sys.stderr)
        return 1
    problems = []
    for name, origin, _pkg, _locs, _plan, mtime_ns, size, source_hash, _code, _ext in records:
        found = image.find(name)
        if found is None or found[0] != name:
            problems.append(f"{name}: not reachable through the index")
            continue
        bad = image.check_payload(name)
        if bad is not None:
            problems.append(bad)
            continue
        try:
            st = os.stat(origin)
        except OSError:
            problems.append(f"{name}: source {origin} is gone")
            continue
        if args.check == "mtime":
            if st.st_mtime_ns != mtime_ns or st.st_size != size:
                problems.append(f"{name}: {origin} changed since the image was built (mtime or size)")
        else:
            with open(origin, "rb") as f:
                if _lazyexec.image_blob_hash(f.read()) != source_hash:
                    problems.append(f"{name}: {origin} changed since the image was built (content)")
    for p in problems:
        print(f"lazyexec image verify: {p}")
    entry = f", entry {image.entry}" if image.entry else ""
    print(f"lazyexec image verify: {args.image}: {len(records)} modules{entry}, "
          f"default check {image.check}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0
