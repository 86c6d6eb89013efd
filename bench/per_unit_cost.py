"""What one deferred unit costs, by kind: the usage profile's cost model
(src/native/runtime/materialize.cpp, used_nearly_whole; docs/startup.md "The
usage profile").

    python bench/per_unit_cost.py [--kinds function,class,import,...] [--modules 50] [--units 40]

For each kind, MODULES generated modules of UNITS units of that kind
(`__lazy_module__ = True`), imported by one script that then reads every
unit's name ("all used") or none ("none used"); instructions counted by
callgrind, eager (LAZYEXEC=0) against the `.pth` activation (LAZYEXEC=1,
usage profile off, artifacts warm: built inline once before). Prints
(lazy - eager) / (MODULES * UNITS) per unit: what a unit costs lazily beyond
its eager cost when it runs, and what it saves when it does not. The
`forced-function` and `forced-class` kinds end each module with an eager
statement reading every unit, so the import runs them all (their code is
then one marshal stream per module: artifact format 12).
"""

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import callgrind_instructions  # noqa: E402

LOADED = ["os", "sys", "io", "abc", "stat", "codecs", "posixpath", "genericpath", "site", "encodings"]

KINDS = {
    "function": lambda j: f"def f{j}(a, b):\n    return a + b + {j}\n",
    "large-function": lambda j: (f"def f{j}(a, b):\n" + "".join(
        f"    if a == {k}:\n        return b * {k} + len(str(a)) - {j}\n" for k in range(20)) + "    return None\n"),
    "class": lambda j: (f"class C{j}:\n    def __init__(self, a):\n        self.a = a\n"
                        f"    def get(self):\n        return self.a\n    def put(self, v):\n        self.a = v\n"),
    "import": lambda j: f"import {LOADED[j % len(LOADED)]} as m{j}\n",
    "constant": lambda j: f"K{j} = ('a', {j}, 2.5)\n",
}
NAMES = {"function": "f{}", "large-function": "f{}", "class": "C{}", "import": "m{}", "constant": "K{}"}
# The same units read by an eager statement after them (an expression
# statement, always eager): the import runs them all (force steps).
for _kind in ("function", "class"):
    KINDS["forced-" + _kind] = KINDS[_kind]
    NAMES["forced-" + _kind] = NAMES[_kind]
FORCED_BY = {"forced-function": "f{}", "forced-class": "C{}"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="function,class,import")
    ap.add_argument("--modules", type=int, default=50)
    ap.add_argument("--units", type=int, default=40)
    ap.add_argument("--uses", default="all,none")
    ap.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it (callgrind it further)")
    args = ap.parse_args()
    py = sys.executable
    site = sysconfig.get_paths()["purelib"]
    subprocess.run([py, "-m", "lazyexec", "pth", "install", "--dir", site], check=True, capture_output=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC") and k != "PYTHONDONTWRITEBYTECODE"}
    base["PYTHONHASHSEED"] = "0"
    print(f"Python {sys.version.split()[0]} ({py}); {args.modules} modules x {args.units} units; "
          "instructions (callgrind), per unit: lazy - eager")
    print("| kind | used | eager | lazy | per unit |")
    print("| --- | --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        d = args.keep or tmp
        root = Path(d)
        root.mkdir(parents=True, exist_ok=True)
        config = root / "marked.toml"
        config.write_text('mode = "marked"\n')
        if args.keep:
            print(f"lazy: LAZYEXEC=1 LAZYEXEC_CONFIG={config} LAZYEXEC_CACHE_DIR={root / 'cache'} LAZYEXEC_PROFILE=0")
        for kind in args.kinds.split(","):
            pkg = root / ("gen_" + kind.replace("-", "_"))
            pkg.mkdir(exist_ok=True)
            (pkg / "__init__.py").write_text("")
            body = "__lazy_module__ = True\n" + "".join(KINDS[kind](j) for j in range(args.units))
            if kind in FORCED_BY:
                body += "(" + ", ".join(FORCED_BY[kind].format(j) for j in range(args.units)) + ",)\n"
            for i in range(args.modules):
                (pkg / f"m{i}.py").write_text(body)
            names = [NAMES[kind].format(j) for j in range(args.units)]
            for use in args.uses.split(","):
                main_py = root / f"main_{pkg.name}_{use}.py"
                lines = [f"import {pkg.name}.m{i}\n" for i in range(args.modules)]
                if use == "all":
                    lines.append(f"import {pkg.name}\nfor i in range({args.modules}):\n"
                                 f"    m = getattr({pkg.name}, 'm%d' % i)\n"
                                 f"    for n in {names!r}:\n        getattr(m, n)\n")
                main_py.write_text("".join(lines))
                cmd = [py, str(main_py)]
                lazy_env = {**base, "LAZYEXEC": "1", "LAZYEXEC_CONFIG": str(config),
                            "LAZYEXEC_CACHE_DIR": str(root / "cache"), "LAZYEXEC_PROFILE": "0"}
                subprocess.run(cmd, cwd=d, env={**lazy_env, "LAZYEXEC_BUILD": "inline"}, check=True)
                for _ in range(2):  # warm: .pyc and artifacts
                    subprocess.run(cmd, cwd=d, env={**base, "LAZYEXEC": "0"}, check=True)
                    subprocess.run(cmd, cwd=d, env=lazy_env, check=True)
                e = callgrind_instructions(cmd, {**base, "LAZYEXEC": "0"}, d)
                lz = callgrind_instructions(cmd, lazy_env, d)
                per = (lz - e) / (args.modules * args.units)
                print(f"| {kind} | {use} | {e / 1e6:.2f} M | {lz / 1e6:.2f} M | {per / 1e3:+.1f} K |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
