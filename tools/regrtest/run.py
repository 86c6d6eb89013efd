"""Parity harness (issue #5): CPython's own regression suite, each test
module run eagerly and with the whole standard library lazy (`mode = "all"`),
compared test by test from regrtest's JUnit XML, with wall time and peak RSS.

    python tools/regrtest/run.py [--ci | --all | TEST ...] [--json FILE] [--timeout S]

Exit status 1 when any test module differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1] / "bench"))
from common import bench_env  # noqa: E402


def curated(ci_only: bool) -> list[str]:
    names = []
    for line in (HERE / "curated.txt").read_text().splitlines():
        body, _, comment = line.partition("#")
        name = body.strip()
        if not name or (ci_only and "ci" not in comment):
            continue
        if name not in names:
            names.append(name)
    return names


def accepted() -> list[tuple[str, str]]:
    out = []
    for line in (HERE / "accepted.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pattern, _, reason = line.partition(" | ")
            out.append((pattern.strip(), reason.strip()))
    return out


def explained(module: str, test_id: str, rules) -> str | None:
    import fnmatch

    for pattern, reason in rules:
        if fnmatch.fnmatchcase(f"{module}:{test_id}", pattern):
            return reason
    return None


def available(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(f"test.{name}") is not None
    except (ImportError, ValueError):
        return False


def results(xml_path: Path) -> dict[str, str]:
    """test id -> outcome (ok, failure, error, skipped)."""
    out = {}
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError):
        return out
    for case in root.iter("testcase"):
        tid = f"{case.get('classname', '')}.{case.get('name', '')}"
        outcome = "ok"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
        out[tid] = outcome
    return out


def measure_killable(cmd: list[str], cwd: str, env: dict, wall: float) -> tuple[float, int, str, bool]:
    """bench.common.measure_rss with a wall-clock limit: the child runs in its
    own session and the whole process group is killed after `wall` seconds, so
    a hung test module (or one of its subprocesses) cannot stall the campaign."""
    import os
    import signal
    import threading
    import time

    start = time.perf_counter()
    r_fd, w_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.setsid()
            os.chdir(cwd)
            os.dup2(w_fd, 1)
            os.dup2(w_fd, 2)
            os.close(r_fd)
            os.execvpe(cmd[0], cmd, env)
        finally:
            os._exit(127)
    os.close(w_fd)
    killed = threading.Event()

    def kill():
        killed.set()
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass

    timer = threading.Timer(wall, kill)
    timer.start()
    chunks = []
    try:
        while True:
            b = os.read(r_fd, 65536)
            if not b:
                break
            chunks.append(b)
        _, status, usage = os.wait4(pid, 0)
    finally:
        timer.cancel()
        timer.join()  # no thread left at the next fork (3.12+ warns about forking with threads)
        os.close(r_fd)
    try:  # stragglers the test module left behind in its session
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    return time.perf_counter() - start, usage.ru_maxrss, b"".join(chunks).decode(errors="replace"), killed.is_set()


def run_one(name: str, lazy: bool, workdir: Path, timeout: int, config: Path, wall: float,
            ignore: tuple = ()) -> dict:
    xml = workdir / f"{name}.{'lazy' if lazy else 'eager'}.xml"
    base = [sys.executable]
    if lazy:
        base += ["-m", "lazyexec", "run", "-m", "test"]
    else:
        base += ["-m", "test"]
    cmd = base + ["--junit-xml", str(xml), "--timeout", str(timeout), *(a for p in ignore for a in ("-i", p)), name]
    env = bench_env({"LAZYEXEC_CONFIG": str(config)} if lazy else {})
    try:
        seconds, rss, out, killed = measure_killable(cmd, str(workdir), env, wall)
        status = f"killed after {wall:.0f}s wall clock" if killed else "ran"
    except Exception as e:  # noqa: BLE001
        return {"status": f"crashed: {e}", "results": {}, "seconds": 0, "rss": 0}
    return {"status": status, "results": results(xml), "seconds": seconds, "rss": rss, "tail": out[-1500:]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tests", nargs="*")
    ap.add_argument("--ci", action="store_true", help="the CI subset of the curated list")
    ap.add_argument("--all", action="store_true", help="the whole curated list (default)")
    ap.add_argument("--json", help="write the parity table as JSON here")
    ap.add_argument("--timeout", type=int, default=600, help="regrtest's per-test timeout")
    ap.add_argument("--wall", type=float, help="kill a test module's run after this many seconds "
                    "(default: 3 x --timeout)")
    ap.add_argument("--ignore", action="append", default=[], metavar="PATTERN",
                    help="regrtest -i PATTERN for every module, eager and lazy (e.g. '*VSOCK*': the VSOCK "
                    "socket tests hang in accept() on a VM without a vsock peer)")
    ap.add_argument("--workdir", help="keep the JUnit XML files here instead of a temporary directory")
    ap.add_argument("--jobs", type=int, default=0, metavar="N",
                    help="worker processes for the artifacts stored first (lazyexec compile -j; default 0: one per CPU)")
    ap.add_argument("--cold", action="store_true",
                    help="do not store the stdlib's artifacts first (lazy runs then include analysis)")
    args = ap.parse_args()
    names = args.tests or curated(ci_only=args.ci)
    names = [n for n in names if available(n)]
    rules = accepted()
    rows = []
    differing = 0
    no_results = 0
    wall = args.wall or 3 * args.timeout
    with tempfile.TemporaryDirectory() as d:
        work = Path(args.workdir or d)
        work.mkdir(parents=True, exist_ok=True)
        config = work / "lazyexec-all.toml"
        config.write_text('mode = "all"\n')
        if not args.cold:
            # Artifacts ahead of time (`lazyexec compile`, as compileall for
            # .pyc): per-module figures then compare warm starts, not analysis.
            import subprocess
            import time

            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "lazyexec", "compile", "--stdlib", "-j", str(args.jobs)], capture_output=True,
                               text=True, env=bench_env({"LAZYEXEC_CONFIG": str(config)}))
            print(f"{r.stdout.strip() or r.stderr.strip()} ({time.perf_counter() - t:.0f} s)", flush=True)
        for name in names:
            e = run_one(name, False, work, args.timeout, config, wall, tuple(args.ignore))
            l = run_one(name, True, work, args.timeout, config, wall, tuple(args.ignore))
            er, lr = e["results"], l["results"]
            diff = sorted(t for t in set(er) | set(lr) if er.get(t) != lr.get(t))
            unexplained = [t for t in diff if not explained(name, t, rules)]
            same = not unexplained and bool(er)
            # Eager itself produced nothing (hang, crash, needs a resource):
            # there is nothing to compare, which is not a lazyexec difference.
            eager_failed = not er
            no_results += eager_failed
            differing += not same and not eager_failed
            rows.append({"test": name, "tests": len(er), "same": same, "different": unexplained[:20],
                         "explained": len(diff) - len(unexplained), "eager_no_results": eager_failed,
                         "eager_status": e["status"], "lazy_status": l["status"],
                         "eager_s": round(e["seconds"], 2), "lazy_s": round(l["seconds"], 2),
                         "eager_rss_mib": round(e["rss"] / 1024, 1), "lazy_rss_mib": round(l["rss"] / 1024, 1)})
            r = rows[-1]
            mark = ("same" if not diff else f"same+{len(diff)} explained") if same else \
                ("NO RESULTS (eager)" if not er else f"DIFFERENT ({len(unexplained)})")
            print(f"{name:<28}{r['tests']:>6} tests  {mark:<16} time {r['eager_s']:>7.2f}s -> {r['lazy_s']:>7.2f}s"
                  f"  rss {r['eager_rss_mib']:>6.1f} -> {r['lazy_rss_mib']:>6.1f} MiB", flush=True)
            for t in unexplained[:5]:
                print(f"    {t}: eager {er.get(t)}, lazy {lr.get(t)}")
            for run, label in ((e, "eager"), (l, "lazy")):
                if run["status"] != "ran":
                    print(f"    {label}: {run['status']}")
            if not er:
                print("    eager also failed to produce results:")
                print("    " + e.get("tail", "").strip().replace("\n", "\n    ")[-300:])
            elif not lr:
                print("    lazy produced no results:")
                print("    " + l.get("tail", "").strip().replace("\n", "\n    ")[-600:])
            if args.json:  # after every module, so a cut-short campaign keeps what it measured
                Path(args.json).write_text(json.dumps({"python": sys.version.split()[0], "rows": rows}, indent=2))
    te = sum(r["eager_s"] for r in rows)
    tl = sum(r["lazy_s"] for r in rows)
    print(f"{len(rows)} test modules: {len(rows) - differing - no_results} same, {differing} different "
          f"(unexplained), {no_results} no results eagerly; total time eager {te:.1f}s, lazy {tl:.1f}s")
    if args.json:
        Path(args.json).write_text(json.dumps({"python": sys.version.split()[0], "rows": rows}, indent=2))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
