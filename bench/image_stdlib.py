"""Importing every standard-library module from the application image vs
from `.pyc` files (issue #13's target: time at most 0.7x, no file-system call
per served module). Modes alternate within one run; medians of per-round
ratios; `.pyc` files and artifacts warm (built during the warm-up).

    python bench/image_stdlib.py [--runs 11] [--instructions] [--keep DIR] [--clean-site]

--clean-site: every mode in a fresh venv without the interpreter's
site-packages (bench/common.py clean_venv): on this machine that
site-packages holds docutils and pygments, which distutils.command.check
imports when present (36 non-stdlib modules, loaded from .pyc in every
mode), and a sandbox .pth importing certifi at start.

Modes: `pyc` (plain interpreter, the normal import system), `image-eager`
(an image holding every module's code object: the image's own saving, no
laziness), `image-lazy` (mode "all": lazy plans where analysis defers
something; usage profile off), `image-lazy-profile` (the same image, the
usage profile learned in the warm-up runs: modules used whole run their eager
code from the image) and `image-lazy-mtime` (staleness check `mtime`). Each process imports the same list of modules (those that import
eagerly without error, tests, GUI and demo packages left out) and reports the
time (wall and CPU) its import loop took; wall time is the whole process.
--instructions: each mode's loop in instructions (callgrind: the process
with the list minus with an empty list), the stable measure on a shared
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_env, clean_venv, measure_rss, rusage_command, rusage_report  # noqa: E402 - measure_rss: the warm-up

SKIP_PREFIXES = ("test", "idlelib", "tkinter", "turtle", "turtledemo", "lib2to3.tests", "ctypes.test",
                 "distutils.tests", "unittest.test", "sqlite3.test", "this", "antigravity", "__phello__",
                 "pydoc_data", "ensurepip._bundled")

DRIVER = r'''
import sys, time, os, warnings
warnings.simplefilter("ignore")
names = open(sys.argv[2]).read().split()
if sys.argv[1] != "pyc":
    import lazyexec, lazyexec.image
    lazyexec.activate(image=sys.argv[1])  # as `lazyexec run --image` does (the usage profile: LAZYEXEC_PROFILE)
    if lazyexec.image._active is None:
        raise SystemExit("image not active")
    import lazyexec.image.importlib_bootstrap, lazyexec.importer.importlib_bootstrap, lazyexec.runtime, lazyexec.store
if os.environ.get("BENCH_MARK"):
    os.write(1, b"IMPORT-LOOP-BEGIN\n")
t = time.perf_counter()
cpu = time.process_time()
ok = 0
for n in names:
    try:
        __import__(n)
        ok += 1
    except BaseException:
        pass
t = time.perf_counter() - t
cpu = time.process_time() - cpu
if os.environ.get("BENCH_MARK"):
    os.write(1, b"IMPORT-LOOP-END\n")
print(ok, t, cpu)
'''


def run_child(cmd: list[str], cwd: str, env: dict) -> tuple[float, float, int, str]:
    """(wall s, CPU s user+system, peak RSS KiB, stdout): CPU time is less
    disturbed than wall time by the other jobs of a shared machine."""
    cmd, report = rusage_command(cmd)
    start = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    rss, cpu, wall, _ = rusage_report(report, usage, time.perf_counter() - start)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}")
    return wall, cpu, rss, out.decode()


def skipped(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in SKIP_PREFIXES) or name.endswith(".__main__")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--instructions", action="store_true", help="also count instructions (valgrind callgrind)")
    ap.add_argument("--strace", action="store_true", help="also count file-system calls per served module")
    ap.add_argument("--keep", help="build the images in DIR and keep them")
    ap.add_argument("--clean-site", action="store_true", help="a fresh venv without the interpreter's site-packages")
    args = ap.parse_args()
    d = args.keep or tempfile.mkdtemp(prefix="lazyexec-image-bench-")
    os.makedirs(d, exist_ok=True)
    # The standard library's own distutils: setuptools' shim (its .pth in a
    # venv) would swap in its copy and bring about 170 site-packages modules
    # into every mode's loop, none of them stdlib.
    env = bench_env({"SETUPTOOLS_USE_DISTUTILS": "stdlib"})
    py = clean_venv(sys.executable, d) if args.clean_site else sys.executable
    images = {"image-eager": os.path.join(d, "eager.lzi"), "image-lazy": os.path.join(d, "lazy.lzi")}
    for mode, path in images.items():
        if not os.path.exists(path):
            t = time.perf_counter()
            subprocess.run([py, "-m", "lazyexec", "image", "build", "-q", "--stdlib", "--mode",
                            "eager" if mode == "image-eager" else "all", "-o", path], check=True, env=env, cwd=d)
            print(f"built {path} in {time.perf_counter() - t:.0f} s ({os.path.getsize(path) / 1e6:.1f} MB)")
    from lazyexec.image import open_image

    # The source modules (the list of every pass before format 5): extension
    # modules are in the image too (format 5), imported when a listed module
    # imports them, as before.
    names = [r[0] for r in open_image(images["image-eager"]).records() if not skipped(r[0]) and not r[9]]
    driver = os.path.join(d, "driver.py")
    Path(driver).write_text(DRIVER)
    # The list: what imports eagerly in one process (a module failing eagerly is left out).
    probe = os.path.join(d, "probe.py")
    Path(probe).write_text(DRIVER.replace("print(ok, t, cpu)", "print('\\n'.join(good))").replace(
        "        ok += 1", "        ok += 1; good.append(n)").replace("ok = 0", "ok = 0; good = []"))
    all_list = os.path.join(d, "all.txt")
    Path(all_list).write_text("\n".join(names))
    good = subprocess.run([py, probe, "pyc", all_list], env=env, cwd=d, capture_output=True, text=True,
                          check=True).stdout.split()
    modules = os.path.join(d, "modules.txt")
    Path(modules).write_text("\n".join(good))
    print(f"Python {sys.version.split()[0]}: importing {len(good)} stdlib modules, {args.runs} alternating rounds, "
          f"warm .pyc and artifacts")
    cmds = {"pyc": [py, driver, "pyc", modules]}
    cmds.update({m: [py, driver, p, modules] for m, p in images.items()})
    # The usage profile (on by default; learned in the warm-up runs): modules
    # a run used whole load their eager code from the image.
    cmds["image-lazy-profile"] = cmds["image-lazy"]
    # The staleness check's cost (its default is "none"): one stat per served module.
    cmds["image-lazy-mtime"] = cmds["image-lazy"]
    envs = {m: {**env, "LAZYEXEC_PROFILE": "0"} for m in cmds}
    envs["image-lazy-profile"] = {**env, "LAZYEXEC_PROFILE": "1"}
    envs["image-lazy-mtime"] = {**env, "LAZYEXEC_PROFILE": "0", "LAZYEXEC_IMAGE_CHECK": "mtime"}
    for _ in range(2):  # warm-up: .pyc files, page cache
        for m, c in cmds.items():
            measure_rss(c, d, envs[m])
    rows = {m: {"wall": [], "cpu": [], "loop": [], "loop_cpu": [], "rss": [], "ok": []} for m in cmds}
    for _ in range(args.runs):
        for m, c in cmds.items():
            s, cpu, rss, out = run_child(c, d, envs[m])
            ok, loop, loop_cpu = out.split()[-3:]
            rows[m]["loop_cpu"].append(float(loop_cpu))
            rows[m]["cpu"].append(cpu)
            rows[m]["wall"].append(s)
            rows[m]["loop"].append(float(loop))
            rows[m]["rss"].append(rss)
            rows[m]["ok"].append(int(ok))
    result = {"python": sys.version.split()[0], "clean_site": args.clean_site, "modules": len(good), "runs": args.runs,
              "load_average": os.getloadavg()[0], "modes": {}}
    base = rows["pyc"]
    for m, r in rows.items():
        ratios = {k: statistics.median(a / b for a, b in zip(r[k], base[k])) for k in ("wall", "cpu", "loop", "loop_cpu", "rss")}
        spread = (min(a / b for a, b in zip(r["wall"], base["wall"])), max(a / b for a, b in zip(r["wall"], base["wall"])))
        result["modes"][m] = {"imported": statistics.median(r["ok"]), "wall_ms": statistics.median(r["wall"]) * 1e3,
                              "loop_ms": statistics.median(r["loop"]) * 1e3, "rss_kib": statistics.median(r["rss"]),
                              "cpu_ms": statistics.median(r["cpu"]) * 1e3, "ratio_cpu": ratios["cpu"],
                              "ratio_wall": ratios["wall"], "ratio_loop": ratios["loop"], "ratio_rss": ratios["rss"],
                              "ratio_wall_range": spread, "loop_cpu_ms": statistics.median(r["loop_cpu"]) * 1e3,
                              "ratio_loop_cpu": ratios["loop_cpu"]}
        print(f"  {m:16} imported {statistics.median(r['ok']):.0f}  wall {statistics.median(r['wall']) * 1e3:7.1f} ms "
              f"(x{ratios['wall']:.3f}, range {spread[0]:.2f}-{spread[1]:.2f})  CPU x{ratios['cpu']:.3f}  import loop "
              f"{statistics.median(r['loop']) * 1e3:7.1f} ms (x{ratios['loop']:.3f}, CPU x{ratios['loop_cpu']:.3f})  "
              f"peak RSS x{ratios['rss']:.3f}")
    if args.strace:
        result["fs_calls"] = fs_calls(cmds, d, envs, images, len(good))
    if args.instructions:
        empty = os.path.join(d, "empty.txt")
        Path(empty).write_text("")
        result["instructions"] = instructions(cmds, d, envs, modules, empty)
    out = Path(__file__).parent / "results" / "image" / f"stdlib-{result['python']}{'-clean' if args.clean_site else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"  -> {out}")
    return 0


def fs_calls(cmds, d, envs, images, n) -> dict:
    """File-system calls made in the import loop: in total, and on the files
    of served modules (their source, their `.pyc`, a package's directory)."""
    from lazyexec.image import open_image

    from importlib.util import cache_from_source

    served_paths = set()
    for r in open_image(images["image-eager"]).records():
        if r[9]:
            continue  # an extension module: the dynamic loader opens its library in every mode
        origin = r[1]
        served_paths.add(origin + '"')  # the source itself, its .pyc, its package directory
        served_paths.add(cache_from_source(origin) + '"')
        if r[2]:
            served_paths.add(os.path.dirname(origin) + '"')
    out = {}
    for m, c in cmds.items():
        log = os.path.join(d, f"strace-{m}.log")
        subprocess.run(["strace", "-f", "-o", log, "-e", "trace=%file,%desc", *c], cwd=d, check=True,
                       env={**envs[m], "BENCH_MARK": "1"}, capture_output=True)
        lines = Path(log).read_text().splitlines()
        b = next(i for i, l in enumerate(lines) if 'write(1, "IMPORT-LOOP-BEGIN' in l)
        e = next(i for i, l in enumerate(lines) if 'write(1, "IMPORT-LOOP-END' in l)
        loop = lines[b + 1:e]
        on_served = [l for l in loop if any(f'"{p}' in l for p in served_paths)]
        out[m] = {"fs_calls": len(loop), "on_served_module_files": len(on_served), "per_module": len(on_served) / n}
        print(f"  {m:16} file-system calls in the import loop: {len(loop)}, on served modules' files: "
              f"{len(on_served)} ({len(on_served) / n:.2f} per module)")
    return out


def instructions(cmds, d, envs, modules, empty) -> dict:
    """Instructions of each mode's import loop (valgrind callgrind): the
    process with the module list minus the process with an empty list (the
    interpreter's start, site and the image's activation are in both)."""
    def count(cmd, env):
        r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd], cwd=d, env=env,
                           capture_output=True, text=True)
        line = next(l for l in r.stderr.splitlines() if "Collected" in l)
        return int(line.split()[-1])

    out = {}
    for m, c in cmds.items():
        full = count(c, envs[m])
        base = count([x if x != modules else empty for x in c], envs[m])
        out[m] = {"process": full, "empty_list": base, "loop": full - base}
    for m in cmds:
        print(f"  {m:16} instructions: process {out[m]['process'] / 1e9:.3f} G, loop {out[m]['loop'] / 1e6:.1f} M "
              f"(x{out[m]['loop'] / out['pyc']['loop']:.3f})")
    return out


if __name__ == "__main__":
    sys.exit(main())
