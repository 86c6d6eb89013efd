"""`lazyexec cache (info | prune | clear)`: where lazyexec's artifacts and
caches are, how much each build key holds, and removing what no program can
use any more (store/prune.py; docs/artifact-format.md "Trailer and pruning").

    lazyexec cache info  [--json] [--path DIR]...
    lazyexec cache prune [--dry-run] [--max-age DAYS] [--path DIR]...
    lazyexec cache clear [--dry-run] [--path DIR]...

Artifacts are looked for in lazyexec's cache directory, in the `__pycache__`
directories under this interpreter's `sys.path` (and `--path` trees: a
project's own sources) and under `PYTHONPYCACHEPREFIX`.
"""

from __future__ import annotations

import json
import os
import sys
import time

from lazyexec.cli.main import EXIT_USAGE

EXIT_FAILED = 1


def _parser():
    import argparse

    p = argparse.ArgumentParser(prog="lazyexec cache", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    for name, text in (("info", "where artifacts and caches live, how many, size per build key"),
                       ("prune", "remove artifacts no build of lazyexec can use (stale keys, sources gone), "
                                 "writers' leftovers and caches untouched for --max-age days"),
                       ("clear", "remove every artifact (every key) and every cache file")):
        a = sub.add_parser(name, help=text, description=text)
        a.add_argument("--path", action="append", default=[], metavar="DIR",
                       help="also look in the __pycache__ directories under DIR (repeatable)")
        a.add_argument("--no-sys-path", action="store_true",
                       help="look only in the cache directory and the --path trees, not under sys.path")
        if name == "info":
            a.add_argument("--json", action="store_true", help="machine-readable output")
            a.add_argument("--all", action="store_true", help="list every key (default: the 15 largest)")
        else:
            a.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
        if name == "prune":
            a.add_argument("--max-age", type=float, default=30.0, metavar="DAYS",
                           help="parse caches, usage profiles and summaries untouched for this long go too "
                                "(default 30)")
        if name != "clear":
            a.add_argument("--idle", type=float, default=7.0, metavar="DAYS",
                           help="artifacts without a trailer (written by an older lazyexec: their build cannot "
                                "be told) count as stale once unread for this long (default 7; 0: now)")
    return p


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _where(cache_dir: str, paths, sys_path: bool = True) -> tuple[list, list]:
    from lazyexec.store import prune

    prefix = getattr(sys, "pycache_prefix", None)
    roots = [r for r in prune.default_roots() if r != prefix] if sys_path else []
    for p in paths:
        if not os.path.isdir(p):
            raise NotADirectoryError(p)
        roots.append(os.path.abspath(p))
    return roots, [prefix] if prefix else []


def _cache_dir_origin() -> str:
    if os.environ.get("LAZYEXEC_CACHE_DIR"):
        return "LAZYEXEC_CACHE_DIR"
    if os.environ.get("XDG_CACHE_HOME"):
        return "$XDG_CACHE_HOME/lazyexec"
    return "default"


def info(args, cache_dir: str, roots, prefixes) -> int:
    from lazyexec.store import prune

    current = prune.current_key()
    judge = prune.Judge(current, idle=args.idle * 86400)
    entries = [judge.judge(e) for e in prune.scan(cache_dir, roots, prefixes)]
    keys: dict = {}
    for e in entries:
        if e.temp:
            continue
        k = keys.setdefault(e.key or "(none)", {"key": e.key or None, "files": 0, "bytes": 0, "status": {},
                                                 "reasons": {}, "where": {}})
        k["files"] += 1
        k["bytes"] += e.size
        k["status"][e.status] = k["status"].get(e.status, 0) + 1
        k["where"][e.where] = k["where"].get(e.where, 0) + 1
        if e.reason:
            k["reasons"][e.reason] = k["reasons"].get(e.reason, 0) + 1
    temps = [e for e in entries if e.temp]
    others: dict = {}
    for kind, _path, size, _last in prune.cache_files(cache_dir):
        o = others.setdefault(kind, {"files": 0, "bytes": 0})
        o["files"] += 1
        o["bytes"] += size
    prunable = [e for e in entries if e.status in prune.PRUNABLE]
    report = {
        "cache_dir": cache_dir,
        "cache_dir_from": _cache_dir_origin(),
        "caching": os.environ.get("LAZYEXEC_CACHE", "").lower() not in ("off", "0", "no"),
        "pycache_prefix": getattr(sys, "pycache_prefix", None),
        "searched": roots + list(prefixes),
        "current_key": current,
        "artifacts": {"files": sum(1 for e in entries if not e.temp), "bytes": sum(e.size for e in entries if not e.temp)},
        "keys": sorted(keys.values(), key=lambda k: (k["key"] != current, -k["bytes"])),
        "temporary_files": {"files": len(temps), "bytes": sum(e.size for e in temps)},
        "other_caches": others,
        "prunable": {"files": len(prunable), "bytes": sum(e.size for e in prunable)},
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(f"cache directory: {cache_dir} ({report['cache_dir_from']})"
          + ("" if report["caching"] else "  [LAZYEXEC_CACHE=off: not used]"))
    if report["pycache_prefix"]:
        print(f"PYTHONPYCACHEPREFIX: {report['pycache_prefix']}")
    print(f"searched: the cache directory and the __pycache__ directories under {len(report['searched'])} path(s)")
    print(f"current key: {current} (this interpreter and the configuration in force here)")
    a = report["artifacts"]
    print(f"artifacts: {a['files']} files, {_size(a['bytes'])} in {len(keys)} key(s)")
    if keys:
        print(f"  {'key':<10} {'files':>7} {'size':>10}  status")
        shown = report["keys"] if args.all else report["keys"][:15]
        for k in shown:
            status = ", ".join(f"{n} {s}" for s, n in sorted(k["status"].items()))
            if k["key"] == current:
                status = "current" + ("" if set(k["status"]) == {"current"} else f" ({status})")
            reasons = "; ".join(k["reasons"]) if k["reasons"] else ""
            print(f"  {k['key'] or '(none)':<10} {k['files']:>7} {_size(k['bytes']):>10}  {status}"
                  + (f": {reasons}" if reasons else ""))
        rest = report["keys"][len(shown):]
        if rest:
            print(f"  ... {len(rest)} more key(s): {sum(k['files'] for k in rest)} files, "
                  f"{_size(sum(k['bytes'] for k in rest))} (--all lists them)")
    if temps:
        print(f"temporary files of writers: {len(temps)} ({_size(report['temporary_files']['bytes'])})")
    for kind, o in sorted(others.items()):
        print(f"{kind}s: {o['files']} files, {_size(o['bytes'])}")
    p = report["prunable"]
    if p["files"]:
        print(f"`lazyexec cache prune` would remove {p['files']} artifact(s), {_size(p['bytes'])}")
    return 0


def _report_removal(removal, dry_run: bool, what: str) -> int:
    verb = "would remove" if dry_run else "removed"
    print(f"{verb} {removal.removed} {what}, {_size(removal.bytes)}")
    for directory, (count, size, message) in sorted(removal.failed.items()):
        print(f"lazyexec: cannot remove {count} file(s) ({_size(size)}) in {directory}: {message}", file=sys.stderr)
    return EXIT_FAILED if removal.failed else 0


def prune_cmd(args, cache_dir: str, roots, prefixes) -> int:
    from lazyexec.store import prune

    judge = prune.Judge(prune.current_key(), idle=args.idle * 86400)
    removal = prune.prune_entries(prune.scan(cache_dir, roots, prefixes), judge, dry_run=args.dry_run)
    prune.prune_cache_files(cache_dir, time.time(), args.max_age * 86400, dry_run=args.dry_run, removal=removal)
    return _report_removal(removal, args.dry_run, "file(s)")


def clear(args, cache_dir: str, roots, prefixes) -> int:
    from lazyexec.store import prune

    removal = prune.Removal()
    now = time.time()
    for e in prune.scan(cache_dir, roots, prefixes):
        if e.temp and now - e.mtime < prune.TEMP_GRACE:
            continue  # a write in progress
        removal.remove(e.path, e.size, args.dry_run)
    for kind, path, size, _last in prune.cache_files(cache_dir):
        removal.remove(path, size, args.dry_run)
    return _report_removal(removal, args.dry_run, "file(s)")


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.action is None:
        _parser().print_help()
        return EXIT_USAGE
    from lazyexec import store

    cache_dir = store.cache_dir()
    try:
        roots, prefixes = _where(cache_dir, args.path, not args.no_sys_path)
    except NotADirectoryError as e:
        print(f"lazyexec: --path {e}: not a directory", file=sys.stderr)
        return EXIT_USAGE
    try:
        return {"info": info, "prune": prune_cmd, "clear": clear}[args.action](args, cache_dir, roots, prefixes)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
