"""`lazyexec explain --summary`: a census over a tree of sources.

Modules, units, percent lazy by kind, the most common reasons for eager, and
files that failed to parse. A progress bar on a terminal (rich).
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import time
from collections import Counter, defaultdict
from pathlib import Path

from lazyexec.analyze import analyze_source
from lazyexec.cli.main import fail

SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", ".git", ".venv", "node_modules"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def iter_sources(root: Path):
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".venv"))
        for f in sorted(filenames):
            if f.endswith(".py"):
                yield Path(dirpath) / f


def module_name(root: Path, path: Path) -> tuple[str | None, bool]:
    rel = path.relative_to(root) if root.is_dir() else Path(path.name)
    parts = list(rel.with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return None, is_package
    return ".".join(parts), is_package


class Census:
    def __init__(self) -> None:
        self.modules = 0
        self.units = 0
        self.by_kind: dict[str, Counter] = defaultdict(Counter)
        self.eager_reasons: Counter = Counter()
        self.module_eager: Counter = Counter()
        self.failures: list[tuple[str, str]] = []
        self.seconds = 0.0

    def add(self, result: dict) -> None:
        self.modules += 1
        if result["module_eager"]:
            self.module_eager[result["module_reason"]] += 1
        for u in result["units"]:
            self.units += 1
            self.by_kind[u["kind"]][u["verdict"]] += 1
            if u["verdict"] == "eager":
                self.eager_reasons[u["reason"]] += 1

    def to_json(self, top: int) -> dict:
        lazy = sum(c["lazy"] for c in self.by_kind.values())
        return {
            "modules": self.modules,
            "units": self.units,
            "lazy": lazy,
            "lazy_percent": round(100.0 * lazy / self.units, 1) if self.units else 0.0,
            "by_kind": {k: {"units": c["lazy"] + c["eager"], "lazy": c["lazy"],
                            "lazy_percent": round(100.0 * c["lazy"] / (c["lazy"] + c["eager"]), 1)}
                        for k, c in sorted(self.by_kind.items(), key=lambda kv: -sum(kv[1].values()))},
            "eager_reasons": self.eager_reasons.most_common(top),
            "module_eager": dict(self.module_eager),
            "failures": [{"file": f, "error": e} for f, e in self.failures],
            "seconds": round(self.seconds, 2),
        }


def _progress(total: int):
    """A rich progress bar on a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        return None
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        from rich.console import Console
    except ImportError:
        return None
    p = Progress(TextColumn("analysing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                 console=Console(stderr=True), transient=True)
    return p


def take(root: Path, cfg=None) -> Census:
    census = Census()
    files = list(iter_sources(root))
    progress = _progress(len(files))
    task = None
    if progress is not None:
        progress.start()
        task = progress.add_task("", total=len(files))
    start = time.perf_counter()
    try:
        for path in files:
            name, is_package = module_name(root, path)
            try:
                result = analyze_source(path.read_bytes(), str(path), name, is_package, cfg)
            except SyntaxError as e:
                census.failures.append((str(path), f"line {e.lineno}: {e.msg}"))
            except (ValueError, OSError, UnicodeError) as e:
                census.failures.append((str(path), str(e)))
            else:
                census.add(result)
            if progress is not None:
                progress.advance(task)
    finally:
        if progress is not None:
            progress.stop()
    census.seconds = time.perf_counter() - start
    return census


def print_text(root: Path, data: dict) -> None:
    print(f"census of {root}: {data['modules']} modules, {data['units']} units, "
          f"{data['lazy']} lazy ({data['lazy_percent']}%), {data['seconds']} s")
    print()
    print(f"{'kind':<22}{'units':>8}{'lazy':>8}{'lazy %':>9}")
    for kind, c in data["by_kind"].items():
        print(f"{kind:<22}{c['units']:>8}{c['lazy']:>8}{c['lazy_percent']:>8.1f}%")
    print()
    print("most common reasons for eager:")
    for reason, n in data["eager_reasons"]:
        print(f"  {n:>7}  {reason}")
    if data["module_eager"]:
        print()
        print("modules eager as a whole: " + ", ".join(f"{k} {v}" for k, v in data["module_eager"].items()))
    print()
    print(f"files that failed to parse: {len(data['failures'])}")
    for f in data["failures"]:
        print(f"  {f['file']}: {f['error']}")


def run(args, cfg) -> int:
    if args.stdlib:
        if args.target:
            return fail("give either --stdlib or a PATH, not both")
        root = stdlib_root()
    elif args.target:
        root = Path(args.target)
        if not root.exists():
            return fail(f"{root}: no such file or directory")
    else:
        return fail("--summary needs a PATH or --stdlib")
    data = take(root, cfg).to_json(args.top)
    if args.json:
        json.dump({"root": str(root), **data}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_text(root, data)
    return 0
