"""`lazyexec check [options] -- CMD [ARGS...]`: does a program behave the same
with lazy loading? Runs CMD eagerly and lazily, compares exit status, stdout
and stderr (normalised: docs/check.md), and where they differ finds the
lazily loaded module responsible by bisection.

How CMD runs lazily:
- a Python program (a `.py` file, a file whose `#!` line names a Python
  interpreter, `python SCRIPT`, `python -m MODULE`): both runs use this
  interpreter, eagerly as `python SCRIPT ARGS`, lazily as `python -m
  lazyexec run SCRIPT ARGS`;
- anything else (a shell script that starts Python, `python -c`): CMD as is,
  eagerly with LAZYEXEC=0 and lazily with LAZYEXEC=1, which needs the .pth
  activation (`lazyexec pth install`) in the interpreter CMD uses.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile

from lazyexec.cli.main import fail

USAGE = "usage: lazyexec check [--pth] [--no-bisect] [--timeout SECONDS] [--show N] -- CMD [ARGS...]"

# Normalisation (docs/check.md): what legitimately differs between two runs of
# one program, eager or not.
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{4,}\b")
_DURATION = re.compile(r"\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\s?(?:ns|us|µs|ms|s|sec|secs|seconds?|msec|usec|min)\b")
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b")


def normalise(text: str) -> str:
    text = _ADDRESS.sub("0xADDR", text)
    text = _DURATION.sub("<TIME>", text)
    return _CLOCK.sub("<CLOCK>", text)


class Outcome:
    def __init__(self, proc: subprocess.CompletedProcess | None, timeout: float):
        if proc is None:
            self.code, self.stdout, self.stderr = "timeout", "", f"(killed after {timeout:g} s)\n"
        else:
            self.code, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr

    def key(self):
        return self.code, normalise(self.stdout), normalise(self.stderr)


def _python_target(cmd: list[str]) -> tuple[str, list[str]] | None:
    """(interpreter, args after it) when CMD is a Python program lazyexec run
    can start, else None."""
    first = cmd[0]
    base = os.path.basename(first)
    if re.fullmatch(r"python[0-9.]*", base):
        rest = cmd[1:]
        if rest and (rest[0] == "-m" and len(rest) > 1 or not rest[0].startswith("-")):
            return shutil.which(first) or first, rest
        return None
    path = first if os.path.exists(first) else shutil.which(first)
    if path is None or os.path.isdir(path):
        return None
    if path.endswith(".py"):
        return sys.executable, [path, *cmd[1:]]
    try:
        with open(path, "rb") as f:
            line = f.readline(200)
    except OSError:
        return None
    if line.startswith(b"#!") and b"python" in line:
        return sys.executable, [path, *cmd[1:]]
    return None


class Runner:
    def __init__(self, cmd: list[str], pth: bool, timeout: float):
        self.cmd, self.timeout = cmd, timeout
        self.python = None if pth else _python_target(cmd)
        self.base_env = dict(os.environ)
        for key in ("LAZYEXEC", "LAZYEXEC_STATS"):
            self.base_env.pop(key, None)

    def describe(self) -> str:
        if self.python:
            return f"eagerly `{self.python[0]} ...`, lazily `{self.python[0]} -m lazyexec run ...`"
        return "eagerly with LAZYEXEC=0, lazily with LAZYEXEC=1 (the .pth activation)"

    def run(self, lazy: bool, env: dict | None = None) -> Outcome:
        e = dict(self.base_env)
        if lazy:
            # Analyse modules without artifacts at once: by default the first
            # lazy start loads them eagerly and builds in the background.
            e.setdefault("LAZYEXEC_BUILD", "inline")
            # Every run as lazy as the analysis allows: the usage profile would
            # make later runs load used modules eagerly, and bisection unstable.
            e.setdefault("LAZYEXEC_PROFILE", "0")
        e.update(env or {})
        if self.python:
            interpreter, rest = self.python
            args = [interpreter, "-m", "lazyexec", "run", *rest] if lazy else [interpreter, *rest]
            if not lazy:
                e["LAZYEXEC"] = "0"
        else:
            args = self.cmd
            e["LAZYEXEC"] = "1" if lazy else "0"
        try:
            proc = subprocess.run(args, env=e, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=self.timeout, errors="replace", text=True)
        except subprocess.TimeoutExpired:
            proc = None
        return Outcome(proc, self.timeout)


def lazy_modules(runner: Runner) -> list[tuple[str, int, int]]:
    """The modules a lazy run loaded lazily, with units and units
    materialized (LAZYEXEC_STATS=1: every process of the run appends its
    table to the file LAZYEXEC_STATS_JSON names)."""
    import json

    fd, path = tempfile.mkstemp(prefix="lazyexec-check-", suffix=".jsonl")
    os.close(fd)
    try:
        runner.run(True, {"LAZYEXEC_STATS": "1", "LAZYEXEC_STATS_JSON": path})
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    finally:
        os.unlink(path)
    seen: dict[str, tuple[int, int]] = {}
    for line in lines:
        try:
            rows = json.loads(line)
        except ValueError:
            continue  # a process killed while writing
        for row in rows:
            old = seen.get(row["module"], (0, 0))
            seen[row["module"]] = (max(row["units"], old[0]), max(row["materialized"], old[1]))
    return [(n, u, m) for n, (u, m) in seen.items()]


def _toml_list(values) -> str:
    import json

    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


class Excluder:
    """Lazy runs with extra modules kept eager: the configuration in force
    plus `exclude` globs, written to a file LAZYEXEC_CONFIG names."""

    def __init__(self, runner: Runner):
        from lazyexec import config as config_mod

        self.runner = runner
        self.config = config_mod.load()
        self.dir = tempfile.mkdtemp(prefix="lazyexec-check-")
        self.count = 0

    def run(self, modules) -> Outcome:
        c = self.config
        lines = [f"mode = {_toml_list([c.mode])[1:-1]}", f"defer = {_toml_list([c.defer])[1:-1]}"]
        for key in ("include", "never", "pure", "pure_bases", "pure_metaclasses", "eager_imports"):
            lines.append(f"{key} = {_toml_list(getattr(c, key))}")
        lines.append(f"exclude = {_toml_list([*c.exclude, *sorted(modules)])}")
        for key in ("settle_threshold", "settle_complete", "build"):
            v = getattr(c, key)
            if v is not None:
                lines.append(f"{key} = {str(v).lower() if isinstance(v, bool) else _toml_list([v])[1:-1] if isinstance(v, str) else v}")
        self.count += 1
        path = os.path.join(self.dir, f"config-{self.count}.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return self.runner.run(True, {"LAZYEXEC_CONFIG": path})

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def bisect(excluder: Excluder, eager_key, modules: list[str], say) -> list[str] | None:
    """The smallest set found whose exclusion (eager loading) makes the lazy
    run the same as the eager one: halves while one half alone explains the
    difference. None when even excluding every module does not."""
    if excluder.run(modules).key() != eager_key:
        return None
    suspects = list(modules)
    while len(suspects) > 1:
        half = len(suspects) // 2
        first, second = suspects[:half], suspects[half:]
        say(f"  {len(suspects)} suspects: keeping {len(second)} eager ...")
        if excluder.run(first).key() == eager_key:
            suspects = first
        elif excluder.run(second).key() == eager_key:
            suspects = second
        else:
            break  # it takes modules from both halves together
    return suspects


def _diff(name: str, eager: str, lazy: str, show: int) -> list[str]:
    a, b = normalise(eager).splitlines(), normalise(lazy).splitlines()
    lines = list(difflib.unified_diff(a, b, f"{name} (eager)", f"{name} (lazy)", lineterm="", n=2))
    if len(lines) > show:
        lines = lines[:show] + [f"... ({len(lines) - show} more diff lines)"]
    return lines


def run(argv: list[str]) -> int:
    if "--" in argv:
        i = argv.index("--")
        opts, cmd = argv[:i], argv[i + 1:]
    else:  # options up to the first word that is not one
        i = 0
        while i < len(argv) and argv[i].startswith("-"):
            i += 2 if argv[i] in ("--timeout", "--show") else 1
        opts, cmd = argv[:i], argv[i:]
    p = argparse.ArgumentParser(prog="lazyexec check", usage=USAGE,
                                description="Run a command eagerly and lazily and compare what it prints and "
                                            "its exit status; on a difference, find the module responsible.")
    p.add_argument("--pth", action="store_true", help="run CMD as is under LAZYEXEC=0/1 (the .pth activation)")
    p.add_argument("--no-bisect", action="store_true", help="do not search for the module responsible")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per run (default 300)")
    p.add_argument("--show", type=int, default=40, help="diff lines to show per stream (default 40)")
    if any(o in ("-h", "--help") for o in opts):
        p.print_help()
        return 0
    args = p.parse_args(opts)
    if not cmd:
        return fail(USAGE)
    if not args.pth and _python_target(cmd) is None and shutil.which(cmd[0]) is None and not os.path.exists(cmd[0]):
        return fail(f"{cmd[0]}: no such command")

    def say(text: str) -> None:
        print(text, flush=True)

    runner = Runner(cmd, args.pth, args.timeout)
    if runner.python and runner.python[0] != sys.executable:
        probe = subprocess.run([runner.python[0], "-c", "import lazyexec"], capture_output=True)
        if probe.returncode != 0:
            return fail(f"{runner.python[0]} cannot import lazyexec: install it there, or run "
                        f"`{runner.python[0]} -m lazyexec check ...` with an interpreter that has it")
    say(f"lazyexec check: {' '.join(cmd)}")
    say(f"  runs {runner.describe()}")
    eager = runner.run(False)
    lazy = runner.run(True)
    if lazy.code == "timeout" and eager.code != "timeout":
        # A first lazy start analyses every module it loads (inline builds):
        # `pydoc -k`, which imports every package on sys.path, took 13x the
        # eager CPU time cold. What it built is stored even when it is killed.
        say(f"  the lazy run timed out after {args.timeout:g} s; again, with the artifacts its builds stored")
        lazy = runner.run(True)
        if lazy.code == "timeout":
            say(f"not comparable: the lazy run timed out twice ({args.timeout:g} s each) where the eager run "
                f"finished; a first lazy start analyses every module it loads: run check again (the artifacts "
                f"are kept) or raise --timeout")
            return 3
    if lazy.key() == eager.key():
        say(f"same: exit status {eager.code}, {len(eager.stdout)} bytes of stdout, {len(eager.stderr)} bytes of "
            f"stderr (timings and addresses normalised)")
        return 0
    again = runner.run(False)
    if again.key() != eager.key():
        say("not comparable: two eager runs already differ (the command's output is not deterministic):")
        for stream in ("stdout", "stderr"):
            for line in _diff(stream, getattr(eager, stream), getattr(again, stream), args.show):
                say("  " + line)
        return 3
    say("DIFFERENT")
    if lazy.code != eager.code:
        say(f"  exit status: eager {eager.code}, lazy {lazy.code}")
    for stream in ("stderr", "stdout"):  # a traceback says most
        for line in _diff(stream, getattr(eager, stream), getattr(lazy, stream), args.show):
            say("  " + line)
    modules = lazy_modules(runner)
    if not modules:
        say("  no module was loaded lazily (is lazy loading active for this command? see `lazyexec pth`)")
        return 1
    say(f"  {len(modules)} module(s) loaded lazily; {sum(1 for _, _, m in modules if m)} ran deferred units "
        f"(LAZYEXEC_STATS=1)")
    if args.no_bisect:
        return 1
    excluder = Excluder(runner)
    try:
        culprits = bisect(excluder, eager.key(), sorted(n for n, _, _ in modules), say)
    finally:
        excluder.close()
    if culprits is None:
        say("  keeping every lazily loaded module eager does not remove the difference: it is not a module's "
            "laziness (the `lazyexec run` entry point, or state outside Python modules)")
        return 1
    units = {n: (u, m) for n, u, m in modules}
    label = "module" if len(culprits) == 1 else "modules, together,"
    say(f"  responsible {label} (the difference goes once {'it loads' if len(culprits) == 1 else 'they load'} "
        f"eagerly):")
    for name in culprits:
        u, m = units.get(name, (0, 0))
        say(f"    {name}: {u} units, {m} run deferred; see `lazyexec explain {name}`")
    say(f"  to keep {'it' if len(culprits) == 1 else 'them'} eager: exclude = {_toml_list(culprits)} in "
        f"[tool.lazyexec] (or `never`)")
    return 1
