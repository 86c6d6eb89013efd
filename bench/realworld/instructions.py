"""Instructions executed (valgrind's callgrind) eagerly and under the `.pth`
activation, per workload, on a base directory the real-program harness
(run.py) has set up and warmed: the same count on a busy machine as on an
idle one, where wall-time ratios of alternating rounds drift.

    python bench/realworld/instructions.py [--base build/bench/debian] [--workloads 'pygmentize -V,...']
        [--modes 'lazyexec .pth,lazyexec run'] [--setup] [--fresh]

One warm run per mode first (it may learn the usage profile or start a
builder, which is waited for), then one counted run. Prints workload, eager,
then per lazy mode its count and lazy/eager, as tab-separated lines; --json
FILE also writes them (after each workload), for report.py's README table
(`make bench-instructions`).

--fresh: the method of docs/benchmarks.md's issue 11 passes (twelfth pass
on), whose counts repeat to a few hundred instructions: every mode gets its own
PYTHONPYCACHEPREFIX and PYTHONHASHSEED=0; per workload and lazy mode, that
mode's prefix and lazyexec's cache directory (artifacts, usage profiles)
are removed, every artifact is built by two LAZYEXEC_PROFILE=0
LAZYEXEC_BUILD=inline runs, the usage profile is learnt by four ordinary
runs, then the count. A lazy mode whose output differs from eager's is
marked "output differs".
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import callgrind_instructions as count  # noqa: E402



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=("debian", "pypi"), default="debian",
                    help="as run.py's: Debian's packages and python3, or pinned PyPI packages on this interpreter")
    ap.add_argument("--base", help="venvs and state (default: run.py's for the target)")
    ap.add_argument("--workloads", help="comma-separated workload names, or all", default="pygmentize -V,flake8 --version,pytest --version,pylint --version,"
                                           "sphinx-build --version,import requests")
    ap.add_argument("--modes", default="lazyexec .pth",
                    help="comma-separated lazy modes the harness runs (run.py --modes), each against eager")
    ap.add_argument("--setup", action="store_true",
                    help="first make the venvs (lazyexec built from this tree) and the state, as run.py does")
    ap.add_argument("--fresh", action="store_true",
                    help="fresh artifacts and profile per workload, private bytecode caches, PYTHONHASHSEED=0")
    ap.add_argument("--json", help="also write the counts here (report.py's instructions table)")
    args = ap.parse_args()
    modes = ["eager", *args.modes.split(",")]
    record = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "interpreter": f"{platform.python_implementation()} {platform.python_version()}",
              "lazyexec_commit": _commit(), "fresh": args.fresh, "modes": modes[1:], "workloads": {}}
    R.T = R.Target(args.target)
    ver = ".".join(map(str, sys.version_info[:2]))
    base = Path(args.base or R.ROOT / "build/bench" / ("debian" if args.target == "debian" else f"pypi-{ver}")).resolve()
    venvs = {venv: base / venv for venv, _, _ in R.T.modes.values()}
    state = base / "state"
    if args.setup:
        venvs = R.setup(base, modes)
        R.prepare_state(state)
    if args.target == "pypi":
        R.T.bin = str(venvs["apps"] / "bin")  # as run.py's setup_pypi() sets it
        record["interpreter"] += " (pinned PyPI packages: run.py's PYPI_PINS)"
    workloads = list(R.WORKLOADS) if args.workloads == "all" else args.workloads.split(",")
    # The image modes' images, one per workload (run.py's build_images(): --trace of the workload).
    R.build_images(workloads, modes, venvs, state)
    for w in workloads:
        counted, outputs = {}, {}
        for mode in modes:
            if mode in R.IMAGE_MODES and not R.image_path(R.T.args(w)).exists():
                raise SystemExit(f"{w}: no image for {mode} (its build failed: see above)")
            # With the workload's arguments: an image mode's LAZYEXEC_IMAGE names its image (without
            # them it was empty, and "lazyexec image .pth" counted the plain .pth start).
            env = R.mode_env(mode, R.base_env(state, False), state, R.T.args(w))
            cmd = R.command(mode, R.T.args(w), venvs)
            if args.fresh:
                outputs[mode] = fresh_warm(mode, cmd, env, state, venvs[R.T.lazy_venv])
            else:
                subprocess.run(cmd, cwd=state / "work", env=env, capture_output=True, stdin=subprocess.DEVNULL)
                R.wait_for_builders(venvs[R.T.lazy_venv])
            counted[mode] = count(cmd, env, state / "work")
        e = counted["eager"]
        # Compared as the harness's guard compares them (run.py's normalise(): venv paths,
        # timestamps, durations, regrtest's seed and memory addresses replaced).
        seen = {m: (o[0], R.normalise(o[1], venvs)) for m, o in outputs.items()}
        differs = [m for m in modes[1:] if args.fresh and seen[m] != seen["eager"]]
        print("\t".join([w, str(e), *(f"{counted[m]}\t{counted[m] / e:.4f}" + ("\toutput differs" if m in differs else "")
                                       for m in modes[1:])]), flush=True)
        record["workloads"][w] = {"eager": e, **{m: {"instructions": counted[m], "ratio": counted[m] / e,
                                                     "output_differs": m in differs} for m in modes[1:]}}
        if args.json:
            Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0


def _commit() -> str:
    r = subprocess.run(["git", "-C", str(R.ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def fresh_warm(mode: str, cmd: list, env: dict, state: Path, lazy_venv: Path):
    """--fresh: sets the mode's private bytecode cache and hash seed in
    `env`, then warms as the pass's method says; returns the last run's
    (exit status, stdout)."""
    prefix = state / ("pycache-" + mode.replace(" ", "_"))
    env.update({"PYTHONHASHSEED": "0", "PYTHONPYCACHEPREFIX": str(prefix)})
    lazy = mode != "eager"

    def run(extra=None):
        r = subprocess.run(cmd, cwd=state / "work", env={**env, **(extra or {})}, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        R.wait_for_builders(lazy_venv)
        return r.returncode, r.stdout

    if not lazy:
        return run()
    shutil.rmtree(prefix, ignore_errors=True)
    shutil.rmtree(Path(env["XDG_CACHE_HOME"]) / "lazyexec", ignore_errors=True)
    for _ in range(2):
        run({"LAZYEXEC_PROFILE": "0", "LAZYEXEC_BUILD": "inline"})
    for _ in range(4):
        out = run()
    return out


if __name__ == "__main__":
    sys.exit(main())
