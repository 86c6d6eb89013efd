"""Installed packages' own test suites (`pytest --pyargs`), eagerly and
lazily, compared case by case with tools/thirdparty/run.py's machinery
(`run` and `pth` modes, the probe plugin, JUnit XML outcomes). For the large
scientific packages whose wheels carry their tests (numpy, pandas, scipy,
networkx, sympy): install them into the venv running this, then

    python tools/thirdparty/pyargs.py numpy-lib,pandas-series-methods [run,pth]

Each suite runs from an empty directory under build/sci/NAME (its own
pytest.ini); REUSE_EAGER=1 takes the eager outcomes of an earlier run there.
"""

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402

NOT_SLOW = ["-m", "not slow and not network and not db"]
SUITES = {
    "numpy-lib": (["--pyargs", "numpy.lib.tests"], []),
    "numpy-multiarray": (["--pyargs", "numpy._core.tests.test_multiarray"], []),
    "pandas-series-methods": (["--pyargs", "pandas.tests.series.methods"], NOT_SLOW),
    "pandas-frame-methods": (["--pyargs", "pandas.tests.frame.methods"], NOT_SLOW),
    "pandas-groupby": (["--pyargs", "pandas.tests.groupby"], NOT_SLOW),
    "sympy-core": (["--pyargs", "sympy.core.tests", "sympy.printing.tests", "sympy.sets.tests"], ["-m", "not slow"]),
    "networkx": (["--pyargs", "networkx"], []),
    "scipy-linalg": (["--pyargs", "scipy.linalg.tests"], []),
}


def main() -> int:
    names = sys.argv[1].split(",")
    modes = sys.argv[2].split(",") if len(sys.argv) > 2 else list(R.MODES)
    python_pth = str(R.pth_python()) if "pth" in modes else None
    bad = 0
    for name in names:
        tests, extra = SUITES[name]
        project = R.Project(name, "installed", tests, extra)
        src = R.ROOT / "build" / "sci" / name
        src.mkdir(parents=True, exist_ok=True)
        R.pin_rootdir(src)
        cache = R.WORK / "cache" / R.VENV_TAG / name
        shutil.rmtree(cache, ignore_errors=True)
        old = src / f"junit-eager-{R.VENV_TAG}.xml"
        if os.environ.get("REUSE_EAGER") and old.exists():
            eager = R.Run(R.outcomes(old), 0.0, 0, "", {})
        else:
            eager = R.run_suite(src, project, "", "eager", cache)
        counts = {k: sum(1 for v in eager.cases.values() if v == k) for k in ("passed", "failed", "error", "skipped")}
        print(f"{name}: {len(eager.cases)} cases eagerly {counts}, exit {eager.code} ({eager.seconds:.1f} s)", flush=True)
        entry = {"cases": len(eager.cases), "eager": counts, "modes": {}}
        for mode in modes:
            if mode == "pth":
                R.run_suite(src, project, "", "pth", cache, python_pth, tag="pth-first",
                            extra_env={"LAZYEXEC_BUILD": "background"})
                R.wait_for_builder(cache)
                lazy = R.run_suite(src, project, "", "pth", cache, python_pth)
            else:
                lazy = R.run_suite(src, project, "", mode, R.WORK / "cache-run" / R.VENV_TAG)
            ok, entry["modes"][mode] = R.compare(name, "installed", eager, lazy, mode)
            bad += not ok
            sys.stdout.flush()
        (src / "result.json").write_text(json.dumps(entry, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
