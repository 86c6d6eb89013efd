"""lazyexec's own cost (issue #10: never slower than eager), eager and lazy
alternating in one run, per-round ratios, medians and spread.

    python bench/startup_overhead.py [--rounds 11] [--json FILE]

Cases (mode "all", activation through the .pth file and LAZYEXEC=1):

- activation: `python -c pass` in a venv without system site-packages
  (nothing else on the path), LAZYEXEC=1 vs LAZYEXEC=0;
- everything used: bench/programs/use_everything.py (85 stdlib modules, every
  attribute read), artifacts warm; "steady" with the usage profile (the
  default), "no profile" with LAZYEXEC_PROFILE=0 (the mechanism alone);
- little used: bench/programs/use_little.py (a CLI's imports, little use), warm;
- first start: no artifacts (a fresh artifact key every round), build
  "background" (the default); bytecode on (.pyc warm in a private
  PYTHONPYCACHEPREFIX) and PYTHONDONTWRITEBYTECODE=1. After each first start
  the benchmark waits for the detached builder and checks that the second
  start is lazy.
"""

import argparse
import fcntl
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import measure_rss  # noqa: E402

HERE = Path(__file__).parent
PROGRAMS = HERE / "programs"


def base_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def summarize(pairs: list) -> dict:
    t = [lt / et for (et, er), (lt, lr) in pairs]
    m = [lr / er for (et, er), (lt, lr) in pairs]
    return {"rounds": len(pairs), "time_ratio": statistics.median(t), "time_min": min(t), "time_max": max(t),
            "rss_ratio": statistics.median(m), "rss_min": min(m), "rss_max": max(m),
            "eager_ms": statistics.median(e[0] for e, _ in pairs) * 1000,
            "lazy_ms": statistics.median(lz[0] for _, lz in pairs) * 1000,
            "rss_delta_mib": statistics.median((lz[1] - e[1]) / 1024 for e, lz in pairs)}


def run(cmd, env, cwd) -> tuple[float, int]:
    seconds, rss, _, _ = measure_rss(cmd, cwd, env)
    return seconds, rss


def alternate(eager, lazy, rounds: int, warmup: int = 2, before_lazy=None, after_lazy=None) -> dict:
    """eager and lazy are (cmd, env, cwd); before_lazy/after_lazy run outside
    the timed part of each lazy run."""
    for _ in range(warmup):
        run(*eager)
        if before_lazy:
            before_lazy()
        run(*lazy)
        if after_lazy:
            after_lazy()
    pairs = []
    for _ in range(rounds):
        e = run(*eager)
        if before_lazy:
            before_lazy()
        lz = run(*lazy)
        if after_lazy:
            after_lazy()
        pairs.append((e, lz))
    return summarize(pairs)


def clean_venv(root: Path) -> Path:
    """A venv that sees only the stdlib and lazyexec (linked in) with its .pth."""
    venv = root / "clean-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import lazyexec

    os.symlink(os.path.dirname(lazyexec.__file__), os.path.join(site, "lazyexec"))
    subprocess.run([str(py), "-m", "lazyexec", "pth", "install", "--dir", site], check=True, capture_output=True)
    return py


def wait_for_builder(cache: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    lock = cache / "build.lock"
    while time.monotonic() < deadline:
        queue = cache / "queue"
        if not (queue.exists() and any(queue.glob("*.job"))):
            if not lock.exists():
                return
            with open(lock, "a") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(f, fcntl.LOCK_UN)
                    return
                except OSError:
                    pass
        time.sleep(0.05)
    raise RuntimeError("the artifact builder did not finish")


def lazily_loaded(cmd, env, cwd) -> int:
    r = subprocess.run(cmd, cwd=cwd, env={**env, "LAZYEXEC_STATS": "1"}, capture_output=True, text=True)
    for line in r.stderr.splitlines():
        if line.startswith("lazyexec: ") and "lazily loaded module" in line:
            return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--only", help="comma-separated case names")
    args = ap.parse_args()
    py = sys.executable
    results = {"python": sys.version.split()[0], "executable": py, "machine": f"{platform.machine()}, "
               f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"), "rounds": args.rounds, "cases": {}}
    wanted = set(args.only.split(",")) if args.only else None

    def want(name):
        return wanted is None or name in wanted

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        config = root / "all.toml"
        config.write_text('mode = "all"\n')
        cache = root / "cache"
        lazy_base = {"LAZYEXEC": "1", "LAZYEXEC_CONFIG": str(config), "LAZYEXEC_CACHE_DIR": str(cache)}
        site = sysconfig.get_paths()["purelib"]
        subprocess.run([py, "-m", "lazyexec", "pth", "install", "--dir", site], check=True, capture_output=True)

        if want("activation"):
            clean = clean_venv(root)
            cmd = [str(clean), "-c", "pass"]
            r = alternate((cmd, base_env(LAZYEXEC="0"), d), (cmd, base_env(**lazy_base), d), args.rounds, warmup=3)
            results["cases"]["activation: python -c pass"] = r

        for name, program in (("everything used", "use_everything.py"), ("little used", "use_little.py")):
            if not want(name.split()[0]):
                continue
            cmd = [py, str(PROGRAMS / program)]
            eager = (cmd, base_env(LAZYEXEC="0"), d)
            # Warm: artifacts built inline once, then the default policies.
            subprocess.run(cmd, cwd=d, env=base_env(**lazy_base, LAZYEXEC_BUILD="inline"), check=True,
                           capture_output=True)
            r = alternate(eager, (cmd, base_env(**lazy_base), d), args.rounds)
            results["cases"][f"{name}, warm ({program})"] = r
            if name == "everything used":
                r = alternate(eager, (cmd, base_env(**lazy_base, LAZYEXEC_PROFILE="0"), d), args.rounds)
                results["cases"][f"{name}, warm, no usage profile"] = r

        if want("first"):
            for label, extra in (("bytecode on", {}), ("PYTHONDONTWRITEBYTECODE=1", {"PYTHONDONTWRITEBYTECODE": "1"})):
                prefix = root / "pycache-prefix"
                cmd = [py, str(PROGRAMS / "use_little.py")]
                eager_env = base_env(LAZYEXEC="0", PYTHONPYCACHEPREFIX=str(prefix), **extra)
                counter = iter(range(10 ** 6))
                second_lazy = []
                state = {}

                def fresh_key():
                    # A new knowledge-base entry: a new artifact key, so no artifact exists.
                    cfg = root / "first.toml"
                    cfg.write_text(f'mode = "all"\npure = ["bench.fresh{next(counter)}"]\n')
                    state["cache"] = root / f"cache-{next(counter)}"

                def lazy_env():
                    return base_env(LAZYEXEC="1", LAZYEXEC_CONFIG=str(root / "first.toml"),
                                    LAZYEXEC_CACHE_DIR=str(state["cache"]), PYTHONPYCACHEPREFIX=str(prefix), **extra)

                def second_start():
                    wait_for_builder(state["cache"])
                    second_lazy.append(lazily_loaded(cmd, lazy_env(), d))
                    shutil.rmtree(state["cache"], ignore_errors=True)

                pairs = []
                for i in range(args.rounds + 2):
                    e = run(cmd, eager_env, d)
                    fresh_key()
                    lz = run(cmd, lazy_env(), d)
                    second_start()
                    if i >= 2:
                        pairs.append((e, lz))
                r = summarize(pairs)
                r["second_start_lazy_modules"] = statistics.median(second_lazy)
                results["cases"][f"first start, {label} (use_little.py)"] = r

    print(f"Python {results['python']} ({py}), {results['machine']}, {results['date']}; "
          f"{args.rounds} alternating rounds, lazy/eager per round: median [min-max]")
    print(f"| case | time | peak RSS | eager ms | lazy ms | RSS delta MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in results["cases"].items():
        extra = f" (second start: {r['second_start_lazy_modules']:.0f} modules lazy)" if "second_start_lazy_modules" in r else ""
        print(f"| {name}{extra} | {r['time_ratio']:.3f} [{r['time_min']:.2f}-{r['time_max']:.2f}] | "
              f"{r['rss_ratio']:.3f} [{r['rss_min']:.2f}-{r['rss_max']:.2f}] | {r['eager_ms']:.1f} | "
              f"{r['lazy_ms']:.1f} | {r['rss_delta_mib']:+.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
