"""The seed's headline (issue #5): `python -m test test_bisect` eagerly vs
with the whole standard library lazy. Medians of alternating runs, artifacts
warm. The 2018 patch measured 0.67 (time) and 0.70 (peak RSS).

    python bench/test_bisect.py [--runs 11] [--test test_bisect] [--activation run|pth|both]

Two ways to activate: `lazyexec run -m test` (after site has run: what the
.pth files in site-packages import stays eager) and the .pth file with
LAZYEXEC=1 (`lazyexec pth install`: activation while site runs, before the
other .pth files, as a patched interpreter would be).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import alternate, bench_env, pth_installed  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--test", default="test_bisect")
    ap.add_argument("--activation", choices=("run", "pth", "both", "image"), default="both",
                    help="image: an application image built with --trace of the test run (lazyexec run --image)")
    args = ap.parse_args()
    print(f"Python {sys.version.split()[0]}: python -m test {args.test}, eager vs whole-stdlib lazy, "
          f"median of {args.runs} alternating runs")
    with tempfile.TemporaryDirectory() as d:
        config = Path(d, "all.toml")
        config.write_text('mode = "all"\n')
        eager = [sys.executable, "-m", "test", args.test]
        if args.activation in ("run", "both"):
            env = bench_env({"LAZYEXEC_CONFIG": str(config)})
            lazy = [sys.executable, "-m", "lazyexec", "run", "-m", "test", args.test]
            report("lazyexec run -m test", alternate(eager, lazy, d, env, runs=args.runs, warmup=2))
        if args.activation == "image":
            env = bench_env({"LAZYEXEC_CONFIG": str(config)})
            image = str(Path(d, "test.lzi"))
            subprocess.run([sys.executable, "-m", "lazyexec", "image", "build", "-q", "--mode", "all", "-o", image,
                            "--trace", f"{sys.executable} -m test {args.test}"], check=True, env=env, cwd=d,
                           capture_output=True)
            lazy = [sys.executable, "-m", "lazyexec", "run", "--image", image, "-m", "test", args.test]
            report("lazyexec run --image (built with --trace)", alternate(eager, lazy, d, env, runs=args.runs, warmup=2))
            with pth_installed(sys.executable, sysconfig.get_paths()["purelib"]):
                r = alternate(eager, eager, d, bench_env({"LAZYEXEC": "0"}), runs=args.runs, warmup=2,
                              lazy_env=bench_env({"LAZYEXEC": "1", "LAZYEXEC_CONFIG": str(config),
                                                  "LAZYEXEC_IMAGE": image}))
            report(".pth + LAZYEXEC=1 LAZYEXEC_IMAGE", r)
        if args.activation in ("pth", "both"):
            with pth_installed(sys.executable, sysconfig.get_paths()["purelib"]):
                r = alternate(eager, eager, d, bench_env({"LAZYEXEC": "0"}), runs=args.runs, warmup=2,
                              lazy_env=bench_env({"LAZYEXEC": "1", "LAZYEXEC_CONFIG": str(config)}))
            report(".pth + LAZYEXEC=1", r)
    return 0


def report(how: str, r: dict) -> None:
    print(f"  {how}:")
    print(f"    wall time  eager {r['eager_s'] * 1000:.0f} ms, lazy {r['lazy_s'] * 1000:.0f} ms, ratio {r['time_ratio']:.2f}")
    print(f"    peak RSS   eager {r['eager_rss_kib'] / 1024:.1f} MiB, lazy {r['lazy_rss_kib'] / 1024:.1f} MiB, "
          f"ratio {r['rss_ratio']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
