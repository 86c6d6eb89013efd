"""lazyexec's own cost (issue #10: never slower than eager), eager and lazy
alternating in one run, per-round ratios, medians and spread.

    python bench/startup_overhead.py [--rounds 11] [--json FILE]

Cases (mode "all", activation through the .pth file and LAZYEXEC=1):

- activation: `python -c pass` in a venv without system site-packages
  (nothing else on the path), LAZYEXEC=1 vs LAZYEXEC=0;
- run: `lazyexec run empty.py` against `python empty.py` in that venv (the
  command's own start-up path: its script, its modules, activation);
- everything used: bench/programs/use_everything.py (85 stdlib modules, every
  attribute read), artifacts warm; "steady" with the usage profile (the
  default), "no profile" with LAZYEXEC_PROFILE=0 (the mechanism alone);
- little used: bench/programs/use_little.py (a CLI's imports, little use), warm;
- many small modules: 100 generated modules (an import, two constants, five
  functions, a class), imported and nothing used, warm: what the import hook
  costs per lazily loaded module beyond what laziness saves;
- first start: no artifacts and no usage profile (deleted before every lazy
  round; .pyc files and lazyexec's parse caches warm, as after an install),
  build "background" (the default); bytecode on (.pyc and artifacts in a
  private PYTHONPYCACHEPREFIX) and PYTHONDONTWRITEBYTECODE=1, and with the
  standard library read-only (a read-only bind mount in a private mount
  namespace, as a distribution's /usr/lib/python3 is to its users: .pyc files
  warm beside the sources, artifacts in lazyexec's cache directory; needs
  root, else skipped). After each first start the benchmark waits for the
  detached builder and checks that the second start is lazy.
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
from common import callgrind_instructions, clean_venv, clean_venv_command, rusage_command, rusage_report  # noqa: E402


HERE = Path(__file__).parent
PROGRAMS = HERE / "programs"


def base_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def summarize(pairs: list) -> dict:
    """Per-round lazy/eager ratios of wall time, CPU time and peak RSS."""
    def ratios(i):
        return [lz[i] / e[i] for e, lz in pairs]

    out = {"rounds": len(pairs)}
    for name, i in (("time", 0), ("rss", 1), ("cpu", 2)):
        r = ratios(i)
        out.update({f"{name}_ratio": statistics.median(r), f"{name}_min": min(r), f"{name}_max": max(r)})
    out.update({"eager_ms": statistics.median(e[0] for e, _ in pairs) * 1000,
                "lazy_ms": statistics.median(lz[0] for _, lz in pairs) * 1000,
                "rss_delta_mib": statistics.median((lz[1] - e[1]) / 1024 for e, lz in pairs)})
    return out


def run(cmd, env, cwd) -> tuple[float, int, float]:
    """(wall seconds, peak RSS KiB, user+sys CPU seconds) of one child."""
    cmd, report = rusage_command(cmd)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child: output discarded
        try:
            os.chdir(cwd)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execvpe(cmd[0], cmd, env)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    rss, cpu, wall, _ = rusage_report(report, usage, time.perf_counter() - start)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {os.waitstatus_to_exitcode(status)}")
    return wall, rss, cpu


INSTRUCTIONS = False  # --instructions: count instructions under callgrind instead of timing


INSTRUCTION_SEEDS = 3  # --seeds
WARM_STARTS = 5  # warm-up pairs of the warm cases (see below)


def instructions(cmd, env, cwd, seed: int = 0) -> int:
    """Instructions executed by one run. The string hash seed is fixed per
    pair (a random one moves an empty start by ±0.3%) and varied across
    pairs."""
    return callgrind_instructions(cmd, {**env, "PYTHONHASHSEED": str(seed)}, cwd)


def pair(measure, eager, lazy, before_lazy=None, after_lazy=None) -> tuple:
    """One eager run and one lazy run, measured; before_lazy/after_lazy run
    outside the measured part of the lazy run."""
    e = measure(*eager)
    if before_lazy:
        before_lazy()
    lz = measure(*lazy)
    if after_lazy:
        after_lazy()
    return e, lz


def alternate(eager, lazy, rounds: int, warmup: int = 2, before_lazy=None, after_lazy=None) -> dict:
    """eager and lazy are (cmd, env, cwd), alternated after `warmup` pairs;
    with --instructions one counted pair."""
    for _ in range(warmup):
        pair(run, eager, lazy, before_lazy, after_lazy)
    if INSTRUCTIONS:
        counts = [pair(lambda *run_args, s=seed: instructions(*run_args, seed=s), eager, lazy, before_lazy,
                       after_lazy) for seed in range(INSTRUCTION_SEEDS)]
        return {"rounds": len(counts), "instructions_eager": statistics.median(e for e, _ in counts),
                "instructions_lazy": statistics.median(lz for _, lz in counts),
                "instructions_ratio": statistics.median(lz / e for e, lz in counts)}
    return summarize([pair(run, eager, lazy, before_lazy, after_lazy) for _ in range(rounds)])


def make_read_only(path: str, content: str) -> bool:
    """`path` read-only for this process and its children from now on,
    showing `content`: a private mount namespace with a read-only bind mount
    over it. False where that cannot be done (not root, not Linux)."""
    import ctypes

    clone_newns = 0x00020000
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(clone_newns) != 0:
            return False
    except (OSError, AttributeError):
        return False
    for words in (["mount", "--make-rprivate", "/"], ["mount", "--bind", content, path],
                  ["mount", "-o", "remount,bind,ro", path]):
        if subprocess.run(words, capture_output=True).returncode != 0:
            return False
    return not os.access(path, os.W_OK) or not _writable(path)


def _writable(path: str) -> bool:
    try:
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


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
    ap.add_argument("--seeds", type=int, default=3,
                    help="with --instructions: pairs counted, one string hash seed each (median of ratios)")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions (valgrind's callgrind, one run per mode after warm-ups) instead of timing")
    ap.add_argument("--only", help="comma-separated case names: activation, run, everything, little, many, first")
    ap.add_argument("--first-start", action="append", metavar="COMMAND",
                    help="a command (run with this interpreter) for the first-start case; repeatable; "
                         "default bench/programs/use_little.py")
    args = ap.parse_args()
    global INSTRUCTIONS, INSTRUCTION_SEEDS
    INSTRUCTIONS = args.instructions
    INSTRUCTION_SEEDS = max(1, args.seeds)
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
            clean = Path(clean_venv(sys.executable, str(root), pth=True))
            cmd = [str(clean), "-c", "pass"]
            r = alternate((cmd, base_env(LAZYEXEC="0"), d), (cmd, base_env(**lazy_base), d), args.rounds, warmup=3)
            results["cases"]["activation: python -c pass"] = r

        if want("run"):
            # `lazyexec run` on an empty script against `python` on it: the
            # command's own start-up path (no LAZYEXEC: the .pth line stays off).
            clean = Path(clean_venv(sys.executable, str(root), pth=True))
            command = clean_venv_command(clean)
            script = root / "empty.py"
            script.write_text("")
            eager = ([str(clean), str(script)], base_env(LAZYEXEC="0"), d)
            lazy_env = {k: v for k, v in lazy_base.items() if k != "LAZYEXEC"}
            lazy = ([str(command), "run", str(script)], base_env(**lazy_env), d)
            results["cases"]["run: lazyexec run empty.py"] = alternate(eager, lazy, args.rounds, warmup=3)

        for name, program in (("everything used", "use_everything.py"), ("little used", "use_little.py")):
            if not want(name.split()[0]):
                continue
            cmd = [py, str(PROGRAMS / program)]
            eager = (cmd, base_env(LAZYEXEC="0"), d)
            # Warm: artifacts built inline once, then the default policies
            # until the state settles. After a new build it takes a few
            # starts: the usage profile learns in steps and the background
            # builder rewrites artifacts with cross-module summaries
            # (use_everything.py on 3.11.7: 103 modules lazy in the inline
            # run, then 34, 34, 15, 15, 15); two warm-up pairs measured 1.035
            # of eager there instead of 0.990.
            subprocess.run(cmd, cwd=d, env=base_env(**lazy_base, LAZYEXEC_BUILD="inline"), check=True,
                           capture_output=True)
            r = alternate(eager, (cmd, base_env(**lazy_base), d), args.rounds, warmup=WARM_STARTS)
            results["cases"][f"{name}, warm ({program})"] = r
            if name == "everything used":
                r = alternate(eager, (cmd, base_env(**lazy_base, LAZYEXEC_PROFILE="0"), d), args.rounds,
                              warmup=WARM_STARTS)
                results["cases"][f"{name}, warm, no usage profile"] = r

        if want("many"):
            pkg = root / "many" / "smallmods"
            pkg.mkdir(parents=True)
            (pkg / "__init__.py").write_text("")
            body = ("import os\nX = 1\nY = (1, 2, 'a')\n" + "".join(
                f"def f{j}(a, b=2):\n    return a + b + {j}\n" for j in range(5)) +
                "class C:\n    def m(self):\n        return 1\n")
            for i in range(100):
                (pkg / f"m{i}.py").write_text(body)
            main = root / "many" / "main.py"
            main.write_text("".join(f"import smallmods.m{i}\n" for i in range(100)))
            cmd = [py, str(main)]
            subprocess.run(cmd, cwd=d, env=base_env(**lazy_base, LAZYEXEC_BUILD="inline"), check=True,
                           capture_output=True)
            r = alternate((cmd, base_env(LAZYEXEC="0"), d), (cmd, base_env(**lazy_base), d), args.rounds)
            results["cases"]["many small modules, nothing used, warm"] = r

        if want("first"):
            import shlex

            commands = [shlex.split(c) for c in args.first_start] if args.first_start else [[str(PROGRAMS / "use_little.py")]]
            stdlib = sysconfig.get_paths()["stdlib"]
            variants = [("bytecode on", {}), ("PYTHONDONTWRITEBYTECODE=1", {"PYTHONDONTWRITEBYTECODE": "1"}),
                        ("read-only stdlib", None)]
            for (label, extra), words in [(e, w) for e in variants for w in commands]:
                prefix = root / "pycache-prefix"
                cmd = [py, *words]
                if extra is None:  # last: the mount namespace stays for the rest of this process
                    # .pyc files beside the sources, written before the directory turns read-only;
                    # a private copy of it without any artifact (other runs, other engineers,
                    # left theirs in __pycache__) is what the read-only mount shows.
                    subprocess.run(cmd, cwd=d, env=base_env(LAZYEXEC="0"), capture_output=True)
                    view = root / "stdlib-view"
                    shutil.copytree(stdlib, view, symlinks=True, ignore=shutil.ignore_patterns(
                        "*.lzx", "test", "tests", "idle_test", "site-packages", "dist-packages"))
                    if not make_read_only(stdlib, str(view)):
                        print(f"skipped: first start, {label} (needs root and mount namespaces)", file=sys.stderr)
                        continue
                    extra = {"PYTHONPYCACHEPREFIX": None}
                pycache = {} if "PYTHONPYCACHEPREFIX" in extra else {"PYTHONPYCACHEPREFIX": str(prefix)}
                extra = {k: v for k, v in extra.items() if v is not None}
                eager_env = base_env(LAZYEXEC="0", **pycache, **extra)
                second_lazy = []
                first_cache = root / "first-cache"
                env = base_env(LAZYEXEC="1", LAZYEXEC_CONFIG=str(config), LAZYEXEC_CACHE_DIR=str(first_cache),
                               **pycache, **extra)

                def no_artifacts():
                    # As after an install: .pyc files warm (in the prefix), no
                    # lazyexec artifact, no usage profile; parse caches kept.
                    for where in (prefix, first_cache):
                        for p in where.rglob("*.lzx") if where.exists() else ():
                            p.unlink()
                    shutil.rmtree(first_cache / "profiles", ignore_errors=True)

                def second_start():
                    wait_for_builder(first_cache)
                    second_lazy.append(lazily_loaded(cmd, env, d))

                no_artifacts()
                if (early := lazily_loaded(cmd, env, d)) != 0:
                    # Artifacts the benchmark does not own (beside a package's sources outside
                    # the standard library, left by other runs) make this start partly warm.
                    print(f"note: first start, {label}: {early} module(s) loaded lazily already", file=sys.stderr)
                second_lazy.clear()
                r = alternate((cmd, eager_env, d), (cmd, env, d), args.rounds, before_lazy=no_artifacts,
                              after_lazy=second_start)
                r["second_start_lazy_modules"] = statistics.median(second_lazy)
                results["cases"][f"first start, {label} ({' '.join(os.path.basename(w) for w in words)})"] = r

    print(f"Python {results['python']} ({py}), {results['machine']}, {results['date']}; " + (
        f"instructions counted by callgrind after warm-ups, median of {INSTRUCTION_SEEDS} pairs "
        f"(hash seeds 0-{INSTRUCTION_SEEDS - 1})" if INSTRUCTIONS else
        f"{args.rounds} alternating rounds, lazy/eager per round: median [min-max]"))
    if INSTRUCTIONS:
        print("| case | instructions lazy/eager | eager | lazy |")
        print("| --- | --- | --- | --- |")
    else:
        print("| case | wall time | CPU time | peak RSS | eager ms | lazy ms | RSS delta MiB |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results["cases"].items():
        extra = f" (second start: {r['second_start_lazy_modules']:.0f} modules lazy)" if "second_start_lazy_modules" in r else ""
        if INSTRUCTIONS:
            print(f"| {name}{extra} | {r['instructions_ratio']:.3f} | {r['instructions_eager'] / 1e6:.1f} M | "
                  f"{r['instructions_lazy'] / 1e6:.1f} M |")
            continue
        print(f"| {name}{extra} | {r['time_ratio']:.3f} [{r['time_min']:.2f}-{r['time_max']:.2f}] | "
              f"{r['cpu_ratio']:.3f} [{r['cpu_min']:.2f}-{r['cpu_max']:.2f}] | "
              f"{r['rss_ratio']:.3f} [{r['rss_min']:.2f}-{r['rss_max']:.2f}] | {r['eager_ms']:.1f} | "
              f"{r['lazy_ms']:.1f} | {r['rss_delta_mib']:+.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
