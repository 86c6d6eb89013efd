"""Issue #13's `test_bisect` target with an image: `python -m test
test_bisect` eagerly vs served from an image built with `--trace` of the same
command (targets: 0.6 of eager time, 0.7 of its peak RSS). Modes alternate
within each round; the figures are medians of per-round ratios (wall time,
CPU time of the process, peak RSS), with their range; every mode warm
(`.pyc` files, artifacts, the image and the usage profile made by the
warm-up rounds; PYTHONDONTWRITEBYTECODE is dropped).

    python bench/image_test_bisect.py [--runs 15] [--test test_bisect] [--python PY] [--clean-site]
                                      [--callgrind N] [--dir DIR] [--extension SO]

Modes: `eager` (LAZYEXEC=0), `lazy .pth` (LAZYEXEC=1, no image: the
reference), `image .pth` (LAZYEXEC=1 LAZYEXEC_IMAGE=...: the C++ start
serves the image) and `run --image` (`lazyexec run --image ... -m test`).

--clean-site: run the modes in a fresh venv without the base interpreter's
site-packages (lazyexec copied in, its files' times kept, so its artifacts
stay valid). Why: a `.pth` file in the interpreter's own site-packages runs
in every start of every mode (on this machine a sandbox's `.pth` imports
`certifi`, which loads `importlib.resources`, `pathlib`, `typing`, `re`,
...: about 5 MB and 100 M instructions of an empty start); this gives the
figure of a machine without it.

--callgrind N: after the timed rounds, N alternating rounds of `eager` and
`image .pth` under callgrind (instructions: repeatable on a loaded
machine), medians. --dir DIR: work in DIR (kept: a profile can be taken
afterwards with the same venv, image and usage profile) instead of a
temporary directory. --extension SO (with --clean-site): this build of
`_lazyexec` copied into the venv before anything is built (an unstripped
one, for a profile with symbols; artifacts and image are then its own).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_env, callgrind_instructions, clean_venv, pth_installed, rusage_command, rusage_report  # noqa: E402


def run_child(cmd: list[str], cwd: str, env: dict) -> tuple[float, float, int]:
    """(wall s, CPU s user+system, peak RSS KiB) of one run: CPU time is
    less disturbed than wall time by the other jobs of a shared machine."""
    cmd, report = rusage_command(cmd)
    start = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    rss, cpu, wall, _ = rusage_report(report, usage, time.perf_counter() - start)
    if os.waitstatus_to_exitcode(status) != 0 or b"ignoring image" in err:
        raise RuntimeError(f"{' '.join(cmd)} exited {os.waitstatus_to_exitcode(status)}: {err.decode()[-2000:]}")
    return wall, cpu, rss


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--warmups", type=int, default=3)
    ap.add_argument("--test", default="test_bisect")
    ap.add_argument("--python", default=sys.executable, help="the interpreter (a venv's) to run")
    ap.add_argument("--clean-site", action="store_true", help="a fresh venv without the interpreter's site-packages")
    ap.add_argument("--callgrind", type=int, default=0, help="rounds of instruction counts (eager, image .pth)")
    ap.add_argument("--dir", help="work in this directory (kept) instead of a temporary one")
    ap.add_argument("--extension", help="with --clean-site: this _lazyexec library copied into the venv first")
    ap.add_argument("--out", help="JSON results (default: bench/results/image/test_bisect-VERSION[-clean].json)")
    args = ap.parse_args()
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    with (contextlib.nullcontext(args.dir) if args.dir else tempfile.TemporaryDirectory(prefix="lazyexec-image-bisect-")) as d:
        py = clean_venv(args.python, d) if args.clean_site else args.python
        if args.extension and args.clean_site:
            target = subprocess.run([py, "-c", "import lazyexec._lazyexec as m; print(m.__file__)"], check=True,
                                    capture_output=True, text=True).stdout.strip()
            shutil.copyfile(args.extension, target)
        config = Path(d, "all.toml")
        config.write_text('mode = "all"\n')
        env = bench_env({"LAZYEXEC_CONFIG": str(config)})
        version = subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        test = [py, "-m", "test", args.test]
        image = str(Path(d, "test.lzi"))
        t = time.perf_counter()
        subprocess.run([py, "-m", "lazyexec", "image", "build", "-q", "--mode", "all", "-o", image,
                        "--trace", " ".join(test)], check=True, env=env, cwd=d, capture_output=True)
        print(f"image built with --trace in {time.perf_counter() - t:.0f} s ({os.path.getsize(image) / 1e6:.1f} MB)")
        purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        modes = {
            "eager": (test, {**env, "LAZYEXEC": "0"}),
            "lazy .pth": (test, {**env, "LAZYEXEC": "1"}),
            "image .pth": (test, {**env, "LAZYEXEC": "1", "LAZYEXEC_IMAGE": image}),
            "run --image": ([py, "-m", "lazyexec", "run", "--image", image, "-m", "test", args.test],
                            env),
        }
        with pth_installed(py, purelib):
            for _ in range(args.warmups):
                for cmd, e in modes.values():
                    run_child(cmd, d, e)
            rows = {m: {"wall": [], "cpu": [], "rss": []} for m in modes}
            for _ in range(args.runs):
                for m, (cmd, e) in modes.items():
                    wall, cpu, rss = run_child(cmd, d, e)
                    rows[m]["wall"].append(wall)
                    rows[m]["cpu"].append(cpu)
                    rows[m]["rss"].append(rss)
            counts = {m: [] for m in ("eager", "image .pth")}
            for _ in range(args.callgrind):
                for m in counts:
                    cmd, e = modes[m]
                    counts[m].append(callgrind_instructions(cmd, e, d))
    load = os.getloadavg()[0]
    result = {"python": version, "test": args.test, "clean_site": args.clean_site, "runs": args.runs,
              "load_average": load, "modes": {}}
    print(f"Python {version}{' (clean site)' if args.clean_site else ''}: python -m test {args.test}, "
          f"{args.runs} alternating rounds, warm; medians of per-round ratios to eager (load average {load:.1f})")
    base = rows["eager"]
    for m, r in rows.items():
        out = {"wall_ms": statistics.median(r["wall"]) * 1e3, "cpu_ms": statistics.median(r["cpu"]) * 1e3,
               "rss_kib": statistics.median(r["rss"])}
        for k in ("wall", "cpu", "rss"):
            ratios = [a / b for a, b in zip(r[k], base[k])]
            out[f"ratio_{k}"] = statistics.median(ratios)
            out[f"ratio_{k}_range"] = (min(ratios), max(ratios))
        result["modes"][m] = out
        print(f"  {m:12} wall {out['wall_ms']:6.0f} ms x{out['ratio_wall']:.3f} "
              f"({out['ratio_wall_range'][0]:.2f}-{out['ratio_wall_range'][1]:.2f})  "
              f"CPU {out['cpu_ms']:6.0f} ms x{out['ratio_cpu']:.3f} "
              f"({out['ratio_cpu_range'][0]:.2f}-{out['ratio_cpu_range'][1]:.2f})  "
              f"peak RSS {out['rss_kib'] / 1024:5.1f} MiB x{out['ratio_rss']:.3f}")
    if args.callgrind:
        result["instructions"] = {m: c for m, c in counts.items()}
        eager, image_count = statistics.median(counts["eager"]), statistics.median(counts["image .pth"])
        print(f"  instructions (callgrind, {args.callgrind} alternating rounds, medians): eager {eager / 1e6:.1f} M, "
              f"image .pth {image_count / 1e6:.1f} M x{image_count / eager:.3f} "
              f"(runs: {', '.join(f'{c / 1e6:.1f}' for c in counts['image .pth'])})")
    path = Path(args.out) if args.out else (Path(__file__).parent / "results" / "image" /
                                            f"test_bisect-{version}{'-clean' if args.clean_site else ''}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"  -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
