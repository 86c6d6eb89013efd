"""Instructions executed (valgrind's callgrind) eagerly and under the `.pth`
activation, per workload, on a base directory the real-program harness
(run.py) has set up and warmed: the same count on a busy machine as on an
idle one, where wall-time ratios of alternating rounds drift.

    python bench/realworld/instructions.py [--base build/bench/debian] [--workloads 'pygmentize -V,...']
        [--modes 'lazyexec .pth,lazyexec run']

One warm run per mode first (it may learn the usage profile or start a
builder, which is waited for), then one counted run. Prints workload, eager,
then per lazy mode its count and lazy/eager, as tab-separated lines.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import callgrind_instructions as count  # noqa: E402



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default=str(R.ROOT / "build/bench/debian"))
    ap.add_argument("--workloads", default="pygmentize -V,flake8 --version,pytest --version,pylint --version,"
                                           "sphinx-build --version,import requests")
    ap.add_argument("--modes", default="lazyexec .pth",
                    help="comma-separated lazy modes the harness runs (run.py --modes), each against eager")
    args = ap.parse_args()
    modes = ["eager", *args.modes.split(",")]
    base = Path(args.base).resolve()
    venvs = {"eager": base / "eager", "lazyexec": base / "lazyexec"}
    state = base / "state"
    R._image_dir = state / "images"  # the image modes' images, built by run.py (build_images)
    for w in args.workloads.split(","):
        counted = {}
        for mode in modes:
            # With the workload's arguments: an image mode's LAZYEXEC_IMAGE names its image (without
            # them it was empty, and "lazyexec image .pth" counted the plain .pth start).
            env = R.mode_env(mode, R.base_env(state, False), state, R.T.args(w))
            cmd = R.command(mode, R.T.args(w), venvs)
            subprocess.run(cmd, cwd=state / "work", env=env, capture_output=True, stdin=subprocess.DEVNULL)
            R.wait_for_builders(venvs["lazyexec"])
            counted[mode] = count(cmd, env, state / "work")
        e = counted["eager"]
        print("\t".join([w, str(e), *(f"{counted[m]}\t{counted[m] / e:.3f}" for m in modes[1:])]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
