"""`lazyexec compile (DIR | FILE)... | --stdlib`: analyse and store the
artifacts of a tree of sources ahead of time, as `compileall` does for .pyc
files, so that no program pays for analysis at its first lazy start (a
packager's post-install step; the regrtest harness's warm-up).

A directory given is a `sys.path` entry: module names are the dotted paths
below it. Modules the configuration would not load lazily (never-lazy set,
`exclude`, no marker in mode "marked") are skipped, as the import hook would.
"""

from __future__ import annotations

import os
import sys
import sysconfig

from lazyexec.cli.main import fail


def module_name(root: str, path: str) -> tuple[str, bool]:
    rel = os.path.relpath(path, root)[: -len(".py")].split(os.sep)
    is_package = rel[-1] == "__init__"
    if is_package:
        rel = rel[:-1]
    return ".".join(rel), is_package


def sources(root: str):
    skip = {"site-packages", "dist-packages", "__pycache__"}
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in skip and d.isidentifier())
        for f in sorted(files):
            if f.endswith(".py") and f[:-3].isidentifier():
                yield os.path.join(directory, f)


def run(args) -> int:
    from lazyexec import config as config_mod
    from lazyexec.importer import Policy

    try:
        config = config_mod.load()
    except config_mod.ConfigError as e:
        return fail(str(e))
    if args.installed:
        if args.stdlib or args.paths:
            return fail("--installed goes alone: it indexes this environment's site-packages")
        return installed(args, config)
    from lazyexec.importer import installed_index, with_installed

    config = with_installed(config, installed_index())  # as the import hook will: artifacts keyed alike
    if args.stdlib:
        config = config_mod.Config(**{**{k: getattr(config, k) for k in config.__slots__}, "mode": "all"})
    roots = [sysconfig.get_paths()["stdlib"]] if args.stdlib else list(args.paths)
    if not roots:
        return fail("usage: lazyexec compile (DIR | FILE)... | --stdlib")
    policy = Policy(config)
    import warnings

    if not args.verbose:
        warnings.simplefilter("ignore", SyntaxWarning)  # the stdlib's test data; compileall's -q
    counts = {"stored": 0, "nothing to defer": 0, "skipped": 0, "unreadable or invalid": 0}
    if args.jobs < 0:
        return fail("--jobs: a number of processes, 0 for one per CPU")
    selected: list[tuple[str, str, bool]] = []
    for root in roots:
        if os.path.isfile(root):
            files, base = [root], os.path.dirname(os.path.abspath(root))
        elif os.path.isdir(root):
            # Absolute (not resolved): the installed index's directories are.
            root = os.path.abspath(root)
            files, base = sources(root), root
        else:
            return fail(f"{root}: no such file or directory")
        for path in files:
            name, is_package = module_name(base, os.path.abspath(path))
            if not name or not policy.claims(name, path):
                counts["skipped"] += 1
                continue
            selected.append((path, name, is_package))
    for outcome in build_all(selected, config, args.verbose, args.jobs):
        counts[outcome] += 1
    print("lazyexec compile: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0


_job_config = None  # the configuration, for worker processes (inherited by fork)


def _build_job(job: tuple[str, str, bool, bool]) -> str:
    path, name, is_package, verbose = job
    return build_one(path, name, is_package, _job_config, verbose)


def build_all(selected: list[tuple[str, str, bool]], config, verbose: bool, jobs: int):
    """The count each module goes to, built in this process or in `jobs`
    worker processes (0: one per CPU). Each artifact is written whole
    (renamed into place) and depends only on sources, so workers need no
    order among them; each keeps its own caches of the sources it read."""
    import multiprocessing

    workers = jobs or os.cpu_count() or 1
    methods = multiprocessing.get_all_start_methods()
    if workers <= 1 or len(selected) < 2 or "fork" not in methods:
        for path, name, is_package in selected:
            yield build_one(path, name, is_package, config, verbose)
        return
    global _job_config
    _job_config = config
    from concurrent.futures import ProcessPoolExecutor

    # fork: the workers start with this process's configuration and imports
    # (the configuration holds compiled matchers, which do not pickle).
    with ProcessPoolExecutor(min(workers, len(selected)), mp_context=multiprocessing.get_context("fork")) as pool:
        yield from pool.map(_build_job, [(p, n, pkg, verbose) for p, n, pkg in selected],
                            chunksize=max(1, len(selected) // (workers * 8)))


def build_one(path: str, name: str, is_package: bool, config, verbose: bool) -> str:
    """Build and store one module's artifact beside its source; the count it
    goes to: "stored", "nothing to defer" or "unreadable or invalid"."""
    from lazyexec.importer.importlib_bootstrap import load_or_build_plan

    try:
        plan = load_or_build_plan(path, name, is_package, config, next_to_source=True)
    except (SyntaxError, ValueError, UnicodeDecodeError) as e:  # broken test data in the stdlib, NUL bytes
        if verbose:
            print(f"{path}: {e.__class__.__name__}: {e}", file=sys.stderr)
        plan = None
    if plan is None:
        return "unreadable or invalid"
    return "stored" if plan.units else "nothing to defer"


def installed(args, config) -> int:
    """`compile --installed`: index the environment's opted-in distributions
    (importer/distributions.py) for the start-up path, then store their
    modules' artifacts. Idempotent: run it after every install (the index is
    ignored once a site-packages directory changes)."""
    from lazyexec.importer import Policy, distributions, installed_index, with_installed

    index, decls = distributions.build_index()
    try:
        path = distributions.write_index(index)
    except OSError as e:
        return fail(f"the index of installed distributions: {e}")
    config = with_installed(config, installed_index())  # as the import hook will: artifacts keyed alike
    policy = Policy(config)  # reads the index just written
    counts = {"stored": 0, "nothing to defer": 0, "not selected": 0, "unreadable or invalid": 0}
    for d in decls:
        for problem in d.problems:
            print(f"lazyexec compile: {d.name} {d.version}: ignored {problem}", file=sys.stderr)
        for name in d.lazy:
            file = _module_file(d.directory, name)
            if file is None or not policy.claims(name, file):
                counts["not selected"] += 1
                continue
            counts[build_one(file, name, file.endswith("__init__.py"), config, args.verbose)] += 1
    if not args.quiet:
        for d in decls:
            never = f", never: {', '.join(d.never)}" if d.never else ""
            print(f"  {d.name} {d.version} ({d.directory}): {len(d.lazy)} of {len(d.modules)} modules lazy{never}")
        print(f"lazyexec compile --installed: {len(decls)} distribution(s) opted in, in "
              f"{len(index[1])} site-packages director{'y' if len(index[1]) == 1 else 'ies'}; index {path}; "
              + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0


def _module_file(directory: str, name: str) -> str | None:
    base = os.path.join(directory, *name.split("."))
    for candidate in (os.path.join(base, "__init__.py"), base + ".py"):
        if os.path.isfile(candidate):
            return candidate
    return None
