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
from common import bench_env, measure_rss  # noqa: E402


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


def run_one(name: str, lazy: bool, workdir: Path, timeout: int, config: Path) -> dict:
    xml = workdir / f"{name}.{'lazy' if lazy else 'eager'}.xml"
    base = [sys.executable]
    if lazy:
        base += ["-m", "lazyexec", "run", "-m", "test"]
    else:
        base += ["-m", "test"]
    cmd = base + ["--junit-xml", str(xml), "--timeout", str(timeout), name]
    env = bench_env({"LAZYEXEC_CONFIG": str(config)} if lazy else {})
    try:
        seconds, rss, out, _ = measure_rss(cmd, str(workdir), env, check=False)
        status = "ran"
    except Exception as e:  # noqa: BLE001
        return {"status": f"crashed: {e}", "results": {}, "seconds": 0, "rss": 0}
    return {"status": status, "results": results(xml), "seconds": seconds, "rss": rss, "tail": out[-400:]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tests", nargs="*")
    ap.add_argument("--ci", action="store_true", help="the CI subset of the curated list")
    ap.add_argument("--all", action="store_true", help="the whole curated list (default)")
    ap.add_argument("--json", help="write the parity table as JSON here")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--cold", action="store_true",
                    help="do not store the stdlib's artifacts first (lazy runs then include analysis)")
    args = ap.parse_args()
    names = args.tests or curated(ci_only=args.ci)
    names = [n for n in names if available(n)]
    rules = accepted()
    rows = []
    differing = 0
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        config = work / "lazyexec-all.toml"
        config.write_text('mode = "all"\n')
        if not args.cold:
            # Artifacts ahead of time (`lazyexec compile`, as compileall for
            # .pyc): per-module figures then compare warm starts, not analysis.
            import subprocess
            import time

            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "lazyexec", "compile", "--stdlib"], capture_output=True,
                               text=True, env=bench_env({"LAZYEXEC_CONFIG": str(config)}))
            print(f"{r.stdout.strip() or r.stderr.strip()} ({time.perf_counter() - t:.0f} s)", flush=True)
        for name in names:
            e = run_one(name, False, work, args.timeout, config)
            l = run_one(name, True, work, args.timeout, config)
            er, lr = e["results"], l["results"]
            diff = sorted(t for t in set(er) | set(lr) if er.get(t) != lr.get(t))
            unexplained = [t for t in diff if not explained(name, t, rules)]
            same = not unexplained and bool(er)
            differing += not same
            rows.append({"test": name, "tests": len(er), "same": same, "different": unexplained[:20],
                         "explained": len(diff) - len(unexplained),
                         "eager_s": round(e["seconds"], 2), "lazy_s": round(l["seconds"], 2),
                         "eager_rss_mib": round(e["rss"] / 1024, 1), "lazy_rss_mib": round(l["rss"] / 1024, 1)})
            r = rows[-1]
            mark = ("same" if not diff else f"same+{len(diff)} explained") if same else \
                ("NO RESULTS" if not er else f"DIFFERENT ({len(unexplained)})")
            print(f"{name:<28}{r['tests']:>6} tests  {mark:<16} time {r['eager_s']:>7.2f}s -> {r['lazy_s']:>7.2f}s"
                  f"  rss {r['eager_rss_mib']:>6.1f} -> {r['lazy_rss_mib']:>6.1f} MiB", flush=True)
            for t in unexplained[:5]:
                print(f"    {t}: eager {er.get(t)}, lazy {lr.get(t)}")
            if not er:
                print("    " + e.get("tail", "").strip().replace("\n", "\n    ")[-300:])
    print(f"{len(rows)} test modules: {len(rows) - differing} same, {differing} different (unexplained)")
    if args.json:
        Path(args.json).write_text(json.dumps({"python": sys.version.split()[0], "rows": rows}, indent=2))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
