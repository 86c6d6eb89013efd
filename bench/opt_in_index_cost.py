"""What the index of opted-in distributions (docs/package-opt-in.md) costs a
start: instructions (valgrind's callgrind) of `python -c pass` with `.pth`
activation (`LAZYEXEC=1`, mode "marked") in a venv holding the example
distribution, with no index, a fresh index, a stale one, and a fresh index
of many opted-in modules; `eager` is the same start with lazyexec off.

    python bench/opt_in_index_cost.py [--runs 3] [--modules 2000] [--json OUT]

Instruction counts do not drift with the machine's load (docs/startup.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from startup_overhead import instructions  # noqa: E402


def build_example(tmp: Path) -> Path:
    src = tmp / "src"
    shutil.copytree(ROOT / "examples" / "lazydist", src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    env = dict(os.environ)
    backend = os.path.join(sys.prefix, "backend")  # `make setup`'s copy of setuptools
    if os.path.isdir(backend):
        env["PYTHONPATH"] = backend
    code = ("import os, sys; os.chdir(sys.argv[1]); from setuptools import build_meta; "
            "print(build_meta.build_wheel(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", code, str(src), str(tmp / "dist")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    (wheel,) = (tmp / "dist").glob("*.whl")
    return wheel


def fake_distribution(site: Path, name: str, modules: int, regular: bool) -> None:
    """A distribution whose RECORD lists `modules` modules in packages of 50,
    opted in whole (empty files: only the index's size matters here; 3.13's
    importlib.metadata lists only RECORD rows that exist). `regular`: the packages have an `__init__.py` (the index then
    holds one prefix entry each); else namespace packages (one entry per
    module: the worst case)."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[lazyexec]\nall-modules = lazy\n")
    rows = [f"{name}/pkg{i // 50}/mod{i}.py,," for i in range(modules)]
    if regular:
        rows += [f"{name}/__init__.py,,"] + [f"{name}/pkg{i}/__init__.py,," for i in range((modules + 49) // 50)]
    for row in rows:
        path = site / row[:-2]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    (info / "RECORD").write_text("\n".join(rows + [f"{info.name}/RECORD,,"]) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modules", type=int, default=2000, help="modules in the large index case")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    import lazyexec

    tmp = Path(tempfile.mkdtemp(prefix="lazyexec-optin-cost-"))
    try:
        wheel = build_example(tmp)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True)
        py = str(tmp / "venv" / "bin" / "python")
        site = Path(subprocess.run([py, "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                                   text=True, check=True).stdout.strip())
        # Sorted before 00-lazyexec-activate.pth, which imports lazyexec.
        (site / "0-lazyexec-under-test.pth").write_text(str(Path(lazyexec.__file__).parent.parent) + "\n")
        subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index",
                        str(wheel)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")}
        # A fixed hash seed: string hashing changes set and dict layouts, and
        # with them the count by about 100,000 instructions from run to run.
        env.update(LAZYEXEC_CACHE_DIR=str(tmp / "cache"), LAZYEXEC_PROFILE="0", LAZYEXEC_BUILD="off",
                   PYTHONHASHSEED="0")
        subprocess.run([py, "-m", "lazyexec", "pth", "install", "--dir", str(site)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        index = lambda: subprocess.run([py, "-m", "lazyexec", "compile", "--installed", "-q"], env=env,  # noqa: E731
                                       check=True)
        cmd = [py, "-c", "pass"]
        lazy_env = dict(env, LAZYEXEC="1")

        def count(e) -> int:
            for _ in range(2):  # warm: .pyc files, the configuration and knowledge caches
                subprocess.run(cmd, env=e, cwd=tmp, check=True)
            return int(statistics.median(instructions(cmd, e, tmp) for _ in range(args.runs)))

        figures = {"eager (LAZYEXEC unset)": count(env)}
        figures["lazy, no index"] = count(lazy_env)
        index()
        figures["lazy, fresh index (example: 3 modules)"] = count(lazy_env)
        (site / "touch").write_text("")  # any install changes the directory
        figures["lazy, stale index"] = count(lazy_env)
        fake_distribution(site, "manyregular", args.modules, regular=True)
        index()
        figures[f"lazy, fresh index (+{args.modules} modules in regular packages)"] = count(lazy_env)
        fake_distribution(site, "manynamespace", args.modules, regular=False)
        index()
        figures[f"lazy, fresh index (+{args.modules} more in namespace packages)"] = count(lazy_env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = figures["lazy, no index"]
    print(f"Python {sys.version.split()[0]}, instructions (callgrind, median of {args.runs}, warm):")
    for what, n in figures.items():
        print(f"  {what:<60} {n:>12,}  {n - base:>+10,} vs no index  {n / figures['eager (LAZYEXEC unset)']:.3f}x eager")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"python": sys.version.split()[0], "runs": args.runs,
                                               "instructions": figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
