"""`lazyexec explain`: one module's verdicts, or (--summary) a census."""

from __future__ import annotations

import json
import os
import sys

from lazyexec import config as config_mod
from lazyexec.analyze import analyze_target, resolve_target
from lazyexec.cli.main import fail, syntax_error_line

SCHEMA_VERSION = 1


def run(args) -> int:
    try:
        cfg = config_mod.load()
    except config_mod.ConfigError as e:
        return fail(str(e))
    if args.summary:
        from lazyexec.cli import census

        return census.run(args, cfg)
    if args.stdlib:
        return fail("--stdlib goes with --summary")
    if not args.target:
        return fail("explain needs a FILE or MODULE (or --summary PATH)")
    try:
        target = resolve_target(args.target)
    except LookupError as e:
        return fail(str(e))
    from lazyexec.importer import installed_index, with_installed

    try:
        # Installed distributions' `never` entries, as the import hook uses them.
        result = analyze_target(target, with_installed(cfg, installed_index()))
    except SyntaxError as e:
        print(syntax_error_line(e, str(target.path)), file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:  # unreadable file, NUL bytes, bad encoding
        return fail(f"{target.path}: {e}")
    source_lines = _source_lines(target.path)
    from lazyexec.importer.distributions import selection

    # Absolute but not resolved: the finder compares the path as sys.path
    # spells it with the directories in the index (symlinks kept).
    selected = selection(target.module, os.path.abspath(target.path), cfg)
    if args.json:
        data = to_json(result, target, source_lines)
        data["selected"], data["selection"] = selected
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_text(result, target, source_lines, facts=args.facts, selection=selected[1])
    return 0


def _source_lines(path) -> list[str]:
    import tokenize

    try:
        with tokenize.open(path) as f:  # honours the encoding cookie
            return f.read().splitlines()
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []


def snippet(lines: list[str], line: int, width: int = 60) -> str:
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return text if len(text) <= width else text[: width - 1] + "…"


def to_json(result: dict, target, lines: list[str]) -> dict:
    units = []
    for u in result["units"]:
        units.append({**u, "source": snippet(lines, u["line"], 200)})
    return {
        "schema": SCHEMA_VERSION,
        "file": str(target.path),
        "module": target.module,
        "is_package": target.is_package,
        "lazy_marker": result["lazy_marker"],
        "future_annotations": result["future_annotations"],
        "module_eager": result["module_eager"],
        "module_reason": result["module_reason"],
        "module_message": result["module_message"],
        "statements": result["statements"],
        "units": units,
        "forces": result["forces"],
    }


def print_text(result: dict, target, lines: list[str], facts: bool = False, selection: str | None = None) -> None:
    units = result["units"]
    lazy = sum(1 for u in units if u["verdict"] == "lazy")
    name = target.module or "(script)"
    print(f"{target.path}  module {name}  marker {result['lazy_marker']}")
    if selection:  # whether the import hook loads it lazily, and why (marker, configuration, distribution)
        print(selection)
    print(f"{len(units)} units, {lazy} lazy, {len(units) - lazy} eager")
    if result["module_eager"]:
        print(f"module: {result['module_message']}")
    print()
    force_before = {f["before"]: f["units"] for f in result["forces"]}
    for u in units:
        indent = "  " * u["depth"]
        binds = ", ".join(u["binds"]) or "-"
        print(f"{u['line']:>5}  {u['verdict']:<5}  {indent}{snippet(lines, u['line'])}")
        print(f"       {'':5}  {indent}binds {binds}; {u['message']}")
        if facts:
            for key in ("def_reads", "call_reads", "global_writes"):
                if u[key]:
                    print(f"       {'':5}  {indent}{key}: {', '.join(u[key])}")
        if u["id"] in force_before:
            lines_forced = ", ".join(str(units[i]["line"]) for i in force_before[u["id"]])
            print(f"       {'':5}  {indent}forces first the lazy units at line(s) {lines_forced} (stable inputs)")
