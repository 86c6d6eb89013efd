"""Differential semantics harness: each case is a small program (modules plus
main.py) run eagerly (`python main.py`) and under `python -m lazyexec run
main.py`; what it prints, its exit status and its stderr's last line must
match. main.py may check that laziness is real with `if LAZY:` assertions,
LAZY being `"lazyexec" in sys.modules` (true only under lazyexec);
`NAMESPACE(mod)` reads a module's namespace without completing it (a settled
module's `__dict__` runs its pending units first).

Case file format (cases.txt):

    === name
    --- path/to/file.py
    <contents>
    --- main.py
    <contents>
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CASES = Path(__file__).with_name("cases.txt")
PRELUDE = ('import sys\nLAZY = "lazyexec" in sys.modules\n'
           'NAMESPACE = type(sys).__dict__["__dict__"].__get__\n')


@dataclass
class Case:
    name: str
    files: dict
    line: int
    settle_modes: tuple = ("never", "now", "default")
    requires: tuple = ()  # third-party modules the case imports (requires=attr,pluggy)


def load(path: Path = CASES) -> list[Case]:
    cases, current, fname, buf = [], None, None, []

    def flush_file():
        if current is not None and fname is not None:
            current.files[fname] = "\n".join(buf) + "\n"

    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("=== "):
            flush_file()
            name, *opts = line[4:].split()
            current = Case(name, {}, i)
            for o in opts:  # settle=never,default: the modes this case runs in
                if o.startswith("settle="):
                    current.settle_modes = tuple(o[len("settle="):].split(","))
                elif o.startswith("requires="):
                    current.requires = tuple(o[len("requires="):].split(","))
            cases.append(current)
            fname, buf = None, []
        elif line.startswith("--- ") and current is not None:
            flush_file()
            fname, buf = line[4:].strip(), []
        elif fname is not None:
            buf.append(line)
    flush_file()
    return cases


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    def observed(self):
        last = self.stderr.strip().splitlines()[-1:] if self.stderr.strip() else []
        return self.returncode, self.stdout, last


def write(case: Case, root: Path) -> None:
    for name, text in case.files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if name == "main.py":
            text = PRELUDE + text
        p.write_text(text, encoding="utf-8")


def run(root: Path, lazy: bool, env_extra: dict | None = None, settle: str | None = None) -> Outcome:
    # PYTHONDONTWRITEBYTECODE would also stop artifacts being stored: the
    # second lazy run of each case must exercise the store.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONHASHSEED"] = "0"
    env["LAZYEXEC_BUILD"] = "inline"  # the first lazy run is lazy: semantics, not the build policy
    env["LAZYEXEC_PROFILE"] = "0"  # every lazy run is lazy: semantics, not the usage profile
    for k, v in (env_extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    cmd = [sys.executable, "-m", "lazyexec", "run", "main.py"] if lazy else [sys.executable, "main.py"]
    r = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    return Outcome(r.returncode, r.stdout, r.stderr)


def lazy_runs_match_eager(root: Path) -> Outcome:
    """The case written at `root` run eagerly, then lazily twice (built
    inline, then from the stored artifact): each lazy run's exit status,
    output and last line of stderr are eager's. Returns the eager outcome."""
    eager = run(root, lazy=False)
    assert eager.returncode == 0, eager.stderr
    for _ in range(2):
        lazy = run(root, lazy=True)
        assert (lazy.returncode, lazy.stdout, lazy.stderr.splitlines()[-1:]) == \
            (eager.returncode, eager.stdout, eager.stderr.splitlines()[-1:])
    return eager
