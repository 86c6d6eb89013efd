"""Third-party projects' own test suites, eagerly and lazily, compared case by
case (issue #12).

Each project's sdist (pinned version, from PyPI through pip) is unpacked under
build/thirdparty/; its tests run with pytest from the source tree, once as
`python -m pytest` and once as `python -m lazyexec run -m pytest` with the
whole program lazy (`mode = "all"`: the project, pytest, the stdlib), and
the JUnit XML outcomes (passed / failed / error / skipped) are compared per
test case. Exit status 1 if any case differs.

    python tools/thirdparty/run.py [--only NAME ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "build" / "thirdparty"

# name: (PyPI name, pinned version, test paths inside the sdist, extra pytest
# args, import root inside the sdist)
PROJECTS = {
    "six": ("six", "1.16.0", ["test_six.py"], [], "."),
    "toolz": ("toolz", "0.12.0", ["toolz/tests"], [], "."),
    "more-itertools": ("more-itertools", "10.1.0", ["tests"], [], "."),
    # test_diagram needs railroad-diagrams, not installed
    "pyparsing": ("pyparsing", "3.1.1", ["tests"], ["--ignore=tests/test_diagram.py"], "."),
    "attrs": ("attrs", "23.1.0", ["tests"], ["--ignore=tests/test_mypy.yml"], "src"),
}


def fetch(pypi: str, version: str) -> Path:
    """The unpacked sdist (downloaded once)."""
    WORK.mkdir(parents=True, exist_ok=True)
    base = f"{pypi}-{version}"
    src = WORK / base
    if src.is_dir():
        return src
    archive = next(WORK.glob(f"{pypi.replace('-', '[-_]')}-{version}.tar.gz"), None)
    if archive is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        f"{pypi}=={version}", "-d", str(WORK)], check=True)
        archive = next(WORK.glob(f"{pypi.replace('-', '[-_]')}-{version}.tar.gz"))
    with tarfile.open(archive) as t:
        t.extractall(WORK, filter="data") if hasattr(tarfile, "data_filter") else t.extractall(WORK)
    unpacked = next(p for p in WORK.iterdir() if p.is_dir() and p.name.lower().replace("_", "-") == base.lower())
    return unpacked


def outcomes(xml_path: Path) -> dict[str, str]:
    out = {}
    if not xml_path.exists():
        return out
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = "failed" if child.tag == "failure" else child.tag
                break
        out[key] = kind
    return out


def run_suite(src: Path, tests: list[str], extra: list[str], root: str, lazy: bool) -> tuple[dict, float, int, str]:
    xml = src / f"junit-{'lazy' if lazy else 'eager'}.xml"
    xml.unlink(missing_ok=True)
    config = src / "lazyexec-all.toml"
    config.write_text('mode = "all"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")}
    env["PYTHONPATH"] = str(src / root)
    env["PYTHONHASHSEED"] = "0"
    if lazy:
        env.update(LAZYEXEC_CONFIG=str(config), LAZYEXEC_BUILD="inline", LAZYEXEC_PROFILE="0")
        head = [sys.executable, "-m", "lazyexec", "run", "-m", "pytest"]
    else:
        env["LAZYEXEC"] = "0"
        head = [sys.executable, "-m", "pytest"]
    cmd = [*head, "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *extra, *tests]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, timeout=1800)
    return outcomes(xml), time.perf_counter() - start, proc.returncode, proc.stdout[-2000:] + proc.stderr[-2000:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", help="project names (default: all)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    names = args.only or list(PROJECTS)
    results, bad = {}, 0
    for name in names:
        pypi, version, tests, extra, root = PROJECTS[name]
        src = fetch(pypi, version)
        eager, te, ce, tail_e = run_suite(src, tests, extra, root, lazy=False)
        lazy, tl, cl, tail_l = run_suite(src, tests, extra, root, lazy=True)
        differ = sorted(k for k in set(eager) | set(lazy) if eager.get(k) != lazy.get(k))
        counts = {k: sum(1 for v in eager.values() if v == k) for k in ("passed", "failed", "error", "skipped")}
        ok = bool(eager) and not differ and ce == cl
        bad += not ok
        print(f"{name} {version}: {len(eager)} cases eagerly {counts}, exit {ce}/{cl}; "
              f"{'same' if ok else f'{len(differ)} differ'} (eager {te:.1f} s, lazy {tl:.1f} s)")
        if not eager:
            print(f"  no results eagerly:\n{tail_e}")
        for k in differ[:20]:
            print(f"  {k}: eager {eager.get(k, 'absent')}, lazy {lazy.get(k, 'absent')}")
        if differ or ce != cl:
            print(f"  lazy run tail:\n{tail_l}")
        results[name] = {"version": version, "cases": len(eager), "eager": counts, "differ": differ,
                         "exit": [ce, cl], "seconds": [te, tl]}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
