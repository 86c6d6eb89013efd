"""The seed's headline (issue #5): `python -m test test_bisect` eagerly vs
with the whole standard library lazy. Medians of alternating runs, artifacts
warm. The 2018 patch measured 0.67 (time) and 0.70 (peak RSS).

    python bench/test_bisect.py [--runs 11] [--test test_bisect]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import alternate, bench_env  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--test", default="test_bisect")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        config = Path(d, "all.toml")
        config.write_text('mode = "all"\n')
        env = bench_env({"LAZYEXEC_CONFIG": str(config)})
        eager = [sys.executable, "-m", "test", args.test]
        lazy = [sys.executable, "-m", "lazyexec", "run", "-m", "test", args.test]
        r = alternate(eager, lazy, d, env, runs=args.runs, warmup=2)
    print(f"Python {sys.version.split()[0]}: python -m test {args.test}, eager vs whole-stdlib lazy, "
          f"median of {args.runs} alternating runs")
    print(f"  wall time  eager {r['eager_s'] * 1000:.0f} ms, lazy {r['lazy_s'] * 1000:.0f} ms, ratio {r['time_ratio']:.2f}")
    print(f"  peak RSS   eager {r['eager_rss_kib'] / 1024:.1f} MiB, lazy {r['lazy_rss_kib'] / 1024:.1f} MiB, "
          f"ratio {r['rss_ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
