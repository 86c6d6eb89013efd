"""Real code after start-up (issue #4): a subset of pyperformance's
benchmarks run with the standard library loaded lazily (`mode = "all"`,
default settle policy) vs eagerly, through pyperf. The benchmark scripts come
from the pyperformance wheel on PyPI (downloaded into build/, not committed).

Each benchmark script runs as __main__ (eagerly, as runpy runs any script);
the stdlib modules it uses (json, logging, pathlib, re, copy, pickle, ...) and
pyperf itself load lazily. pyperf's worker processes are activated through
lazyexec's .pth file with LAZYEXEC=1.

    python bench/pyperformance_subset.py [--fast] [--rounds 3] [--json FILE] [BENCHMARK ...]
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
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "pyperformance"
BENCHMARKS = ["richards", "nbody", "float", "chaos", "deltablue", "go", "hexiom", "json_dumps", "json_loads",
              "logging", "pathlib", "regex_compile", "deepcopy", "pickle_pure_python", "unpack_sequence"]


def fetch() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE.glob("pyperformance-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(CACHE), "pyperformance"],
                       check=True)
        wheels = sorted(CACHE.glob("pyperformance-*.whl"))
    extracted = CACHE / "benchmarks"
    if not extracted.exists():
        with zipfile.ZipFile(wheels[-1]) as z:
            for name in z.namelist():
                if name.startswith("pyperformance/data-files/benchmarks/bm_"):
                    target = extracted / name[len("pyperformance/data-files/benchmarks/"):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(name))
    return extracted


def run(script: Path, out: Path, env: dict, fast: bool) -> list[float]:
    if out.exists():
        out.unlink()
    args = [sys.executable, str(script), "-o", str(out), "--quiet",
            "--inherit-environ=LAZYEXEC,LAZYEXEC_CONFIG,LAZYEXEC_SETTLE,PYTHONDONTWRITEBYTECODE"]
    args += ["--fast"] if fast else ["--processes", "2", "--values", "3"]
    subprocess.run(args, cwd=script.parent, env=env, check=True, capture_output=True, text=True)
    data = json.loads(out.read_text())
    return [v for b in data["benchmarks"] for r in b["runs"] for v in r.get("values", [])]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--rounds", type=int, default=3, help="alternating eager/lazy rounds (2 processes each)")
    ap.add_argument("--aa", action="store_true",
                    help="A/A control: both sides eager, to show the machine's noise floor")
    ap.add_argument("benchmarks", nargs="*")
    args = ap.parse_args()
    bench_dir = fetch()
    site = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "lazyexec", "pth", "install", "--dir", site], check=True,
                   capture_output=True)
    rows = {}
    try:
        with tempfile.TemporaryDirectory() as d:
            config = Path(d, "all.toml")
            config.write_text('mode = "all"\n')
            base = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") and k != "PYTHONDONTWRITEBYTECODE"}
            eager_env = {**base, "LAZYEXEC": "0"}
            lazy_env = {**base, "LAZYEXEC": "1", "LAZYEXEC_CONFIG": str(config)}
            if args.aa:
                lazy_env = eager_env
            for name in args.benchmarks or BENCHMARKS:
                src = bench_dir / f"bm_{name}"
                if not src.exists():
                    print(f"{name}: not in this pyperformance release, skipped")
                    continue
                work = Path(d, name)
                shutil.copytree(src, work)
                script = work / "run_benchmark.py"
                run(script, work / "warm.json", lazy_env, True)  # artifacts warm
                # Eager and lazy alternate, so a change in machine load hits both.
                eager, lazy = [], []
                for _ in range(args.rounds):
                    eager += run(script, work / "eager.json", eager_env, args.fast)
                    lazy += run(script, work / "lazy.json", lazy_env, args.fast)
                rows[name] = statistics.median(lazy) / statistics.median(eager)
                print(f"{name:<22} lazy/eager {rows[name]:.3f}", flush=True)
    finally:
        subprocess.run([sys.executable, "-m", "lazyexec", "pth", "remove", "--dir", site], capture_output=True)
    geo = statistics.geometric_mean(rows.values())
    print(f"geometric mean over {len(rows)} benchmarks: {geo:.3f} (target <= 1.01)")
    slow = {k: v for k, v in rows.items() if v > 1.02}
    print("above 1.02:", ", ".join(f"{k} {v:.3f}" for k, v in slow.items()) or "none")
    if args.json:
        Path(args.json).write_text(json.dumps({"python": sys.version.split()[0], "ratios": rows, "geomean": geo}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
