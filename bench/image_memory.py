"""Where a program's memory is at exit, eagerly and served from an image
(issue #13's peak RSS target: 0.7 of eager for `python -m test test_bisect`).
At exit the peak is the end (`VmHWM` equals `VmRSS` in these runs), so an
`atexit` hook (a `sitecustomize` on `PYTHONPATH`, in every mode) reads:
`/proc/self/status`, the resident pages of each mapping (`/proc/self/smaps`:
libpython, libc, lazyexec's two extensions, the image's mapping, anonymous
memory and the `malloc` heap), Python's allocator (`sys._debugmallocstats()`:
bytes in allocated blocks, bytes free in partly used and unused pools) and
`malloc`'s bytes in use (`mallinfo2`). Every mode warm (`.pyc` files,
artifacts, the image and the usage profile made by the warm-up runs); the
figures are medians of `--runs` runs of each mode, alternating.

    python bench/image_memory.py [--runs 3] [--test test_bisect] [--python PY] [--clean-site]

Modes: `eager` (LAZYEXEC=0), `lazy .pth` (LAZYEXEC=1, no image) and
`image .pth` (LAZYEXEC=1 LAZYEXEC_IMAGE=...). --clean-site: as in
bench/image_test_bisect.py (a venv without the interpreter's site-packages).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_env, clean_venv, pth_installed  # noqa: E402

PROBE = r'''
import atexit, os, sys

def _lazyexec_memory_probe():
    out = os.environ.get("IMAGE_MEMORY_OUT")
    if not out:
        return
    with open("/proc/self/status") as f:
        status = {l.split(":")[0]: l.split(":")[1].split() for l in f if ":" in l}
    maps, mapping = {}, None
    with open("/proc/self/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                mapping = os.path.basename(parts[5]) if len(parts) > 5 else "[anonymous]"
            elif parts[0] == "Rss:":
                maps[mapping] = maps.get(mapping, 0) + int(parts[1])
    r = {k: int(status[k][0]) for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile") if k in status}
    r["maps"] = maps
    err = out + ".malloc"
    fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(fd)
        os.close(saved)
    stats = open(err).read().splitlines()
    os.unlink(err)
    def field(prefix):
        for l in stats:
            if l.startswith(prefix):
                return int(l.split("=")[-1].replace(",", "").strip())
        return 0
    unused = [l for l in stats if "unused pools" in l]
    r["pymalloc_allocated"] = field("# bytes in allocated blocks")
    r["pymalloc_free"] = field("# bytes in available blocks") + (
        int(unused[0].split("=")[-1].replace(",", "").strip()) if unused else 0)
    try:
        import ctypes

        class MallInfo2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in
                        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        m = libc.mallinfo2()
        r["malloc_in_use"] = m.uordblks + m.hblkhd
    except (OSError, AttributeError, ImportError):
        pass
    import json
    with open(out, "w") as f:
        json.dump(r, f)

atexit.register(_lazyexec_memory_probe)
'''

GROUPS = (("libpython", "libpython"), ("libc", "libc.so"), ("_lazyexec", "_lazyexec.cpython"),
          ("_lazyexec_boot", "_lazyexec_boot"), ("image", ".lzi"), ("heap", "[heap]"), ("anonymous", "[anonymous]"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmups", type=int, default=3)
    ap.add_argument("--test", default="test_bisect")
    ap.add_argument("--python", default=sys.executable, help="the interpreter (a venv's) to run")
    ap.add_argument("--clean-site", action="store_true", help="a fresh venv without the interpreter's site-packages")
    ap.add_argument("--out", help="JSON results (default: bench/results/image/memory-VERSION[-clean].json)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lazyexec-image-memory-") as d:
        py = clean_venv(args.python, d) if args.clean_site else args.python
        config = Path(d, "all.toml")
        config.write_text('mode = "all"\n')
        probe_dir = Path(d, "probe")
        probe_dir.mkdir()
        (probe_dir / "sitecustomize.py").write_text(PROBE)
        env = bench_env({"LAZYEXEC_CONFIG": str(config)})
        version = subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        test = [py, "-m", "test", args.test]
        image = str(Path(d, "test.lzi"))
        subprocess.run([py, "-m", "lazyexec", "image", "build", "-q", "--mode", "all", "-o", image,
                        "--trace", " ".join(test)], check=True, env=env, cwd=d, capture_output=True)
        purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        probe_env = {**env, "PYTHONPATH": str(probe_dir)}
        modes = {"eager": {**probe_env, "LAZYEXEC": "0"}, "lazy .pth": {**probe_env, "LAZYEXEC": "1"},
                 "image .pth": {**probe_env, "LAZYEXEC": "1", "LAZYEXEC_IMAGE": image}}
        rows: dict[str, list[dict]] = {m: [] for m in modes}
        with pth_installed(py, purelib):
            for i in range(args.warmups + args.runs):
                for m, e in modes.items():
                    out = Path(d, "probe.json")
                    subprocess.run(test, cwd=d, env={**e, "IMAGE_MEMORY_OUT": str(out)}, check=True,
                                   capture_output=True)
                    if i >= args.warmups:
                        rows[m].append(json.loads(out.read_text()))
    result = {"python": version, "test": args.test, "clean_site": args.clean_site, "runs": args.runs, "modes": {}}
    print(f"Python {version}{' (clean site)' if args.clean_site else ''}: python -m test {args.test} at exit, "
          f"KiB, medians of {args.runs} warm runs")
    cols = ["VmHWM", "RssAnon", "RssFile", *(g for g, _ in GROUPS), "pymalloc_allocated", "pymalloc_free",
            "malloc_in_use"]
    print("  " + " ".join(f"{c[:12]:>12}" for c in ["mode", *cols]))
    for m, runs in rows.items():
        med = {}
        for c in cols:
            key = dict(GROUPS).get(c)
            values = [sum(v for k, v in r["maps"].items() if key in k) if key else r.get(c, 0) // (1024 if "malloc" in c else 1)
                      for r in runs]
            med[c] = statistics.median(values)
        result["modes"][m] = med
        print("  " + f"{m:>12} " + " ".join(f"{med[c]:12.0f}" for c in cols))
    path = Path(args.out) if args.out else (Path(__file__).parent / "results" / "image" /
                                            f"memory-{version}{'-clean' if args.clean_site else ''}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"  -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
