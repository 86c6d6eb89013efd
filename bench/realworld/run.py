"""Real programs, every start-up mode side by side (issue #9).

    python bench/realworld/run.py [--quick] [--rounds N] [--warmups N]
        [--envs warm,first,first-nobytecode,nobytecode] [--workloads a,b] [--modes a,b]
        [--no-probe] [--no-strace] [--out DIR]

Runs each workload (Debian-packaged programs, started by Debian's
/usr/bin/python3) in each mode, alternating within a round (eager, mode 2,
mode 3, ..., eager, mode 2, ...), and writes results.json, results.md and
PNG charts (bench/realworld/report.py). Every run's stdout and exit code
must equal eager's after normalisation (normalise()); a mismatch is a
failure, reported instead of a figure. docs/benchmarks.md explains the
modes, environments, state fixes and the normalisation rule.

Runs under the interpreter lazyexec was built for (`make bench` uses
.venv-debian, built from /usr/bin/python3): its pip builds the lazyexec wheel
and fills one venv per mode under build/bench/debian/.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import json
import os
import platform
import py_compile
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import rusage_command, rusage_report  # noqa: E402 - peak RSS not floored at the driver's size
ROOT = HERE.parents[1]
DATA = HERE / "data"
TARGET_PY = "/usr/bin/python3"  # --target debian; pypi targets: the interpreter running this script

# Debian package -> a file it installs (present = installed).
PACKAGES = {
    "black": "/usr/bin/black",
    "httpie": "/usr/bin/http",
    "python3-sphinx": "/usr/bin/sphinx-build",
    "ansible-core": "/usr/bin/ansible-playbook",
    "python3-pytest": "/usr/bin/pytest",
    "pylint": "/usr/bin/pylint",
    "flake8": "/usr/bin/flake8",
    "python3-pygments": "/usr/bin/pygmentize",
    "python3-requests": "/usr/lib/python3/dist-packages/requests/__init__.py",
    "python3-jinja2": "/usr/lib/python3/dist-packages/jinja2/__init__.py",
    "python3-yaml": "/usr/lib/python3/dist-packages/yaml/__init__.py",
    "strace": "/usr/bin/strace",
}

# name -> arguments after the interpreter. Console scripts run as
# `python /usr/bin/black ...` so every mode uses the same interpreter and
# packages; `-c` snippets are files in data/ (`lazyexec run` takes a script).
WORKLOADS = {
    "empty script (control)": [str(DATA / "empty.py")],
    "test_bisect": ["-m", "test", "test_bisect"],
    "black --version": ["{bin}/black", "--version"],
    "black --diff": ["{bin}/black", "--diff", "sample.py"],
    "http --version": ["{bin}/http", "--version"],
    "http --offline POST": ["{bin}/http", "--offline", "POST", "example.invalid", "a=1"],
    "sphinx-build --version": ["{bin}/sphinx-build", "--version"],
    "ansible-playbook --help": ["{bin}/ansible-playbook", "--help"],
    "pytest --version": ["{bin}/pytest", "--version"],
    "pylint --version": ["{bin}/pylint", "--version"],
    "flake8 --version": ["{bin}/flake8", "--version"],
    "pygmentize -V": ["{bin}/pygmentize", "-V"],
    "pygmentize html": ["{bin}/pygmentize", "-l", "python", "-f", "html", "sample.py"],
    "import requests": [str(DATA / "import_requests.py")],
    "jinja2 render": [str(DATA / "jinja_render.py")],
    "yaml round trip": [str(DATA / "yaml_roundtrip.py")],
}
QUICK_WORKLOADS = ["black --version", "http --offline POST", "pygmentize -V", "yaml round trip"]

# name -> (venv, how it starts, extra environment). "lazyexec" is a console
# script; the others put the interpreter first.
MODES = {
    "eager": ("eager", "python", {}),
    "lazyexec run": ("lazyexec", "lazyexec-run", {"LAZYEXEC_CONFIG": "{state}/all.toml"}),
    "lazyexec .pth": ("lazyexec", "python", {"LAZYEXEC": "1", "LAZYEXEC_CONFIG": "{state}/all.toml"}),
    "lazyexec imports-only": ("lazyexec", "python", {"LAZYEXEC": "1", "LAZYEXEC_CONFIG": "{state}/imports.toml"}),
    # An application image per workload (image_for(): built once with
    # --trace of the workload, mode all), served by `lazyexec run --image`
    # or by the .pth activation with LAZYEXEC_IMAGE.
    "lazyexec image": ("lazyexec", "lazyexec-image", {"LAZYEXEC_CONFIG": "{state}/all.toml"}),
    "lazyexec image .pth": ("lazyexec", "python", {"LAZYEXEC": "1", "LAZYEXEC_CONFIG": "{state}/all.toml",
                                                   "LAZYEXEC_IMAGE": "{image}"}),
    "LazyLoader": ("lazyloader", "python", {}),
    "demandimport": ("demandimport", "python", {}),
}
LAZYEXEC_MODES = ("lazyexec run", "lazyexec .pth", "lazyexec imports-only", "lazyexec image", "lazyexec image .pth")
IMAGE_MODES = ("lazyexec image", "lazyexec image .pth")
DEMANDIMPORT = "demandimport==0.3.4"

# --target pypi: the same workloads installed from PyPI at pinned versions
# (the Debian versions do not all run on 3.12/3.13) into one venv of the
# interpreter running this script; the peers' .pth lines there act only when
# BENCH_PEER names them, so every mode shares one sys.path.
PYPI_PINS = ["black==24.10.0", "httpie==3.2.4", "sphinx==8.1.3", "ansible-core==2.18.1", "pytest==8.3.4",
             "pylint==3.3.2", "flake8==7.1.1", "Pygments==2.18.0", "requests==2.32.3", "Jinja2==3.1.4",
             "PyYAML==6.0.2", DEMANDIMPORT]
PYPI_MODES = {
    "eager": ("apps", "python", {}),
    "lazyexec run": ("apps", "lazyexec-run", {"LAZYEXEC_CONFIG": "{state}/all.toml"}),
    "lazyexec .pth": ("apps", "python", {"LAZYEXEC": "1", "LAZYEXEC_CONFIG": "{state}/all.toml"}),
    "lazyexec imports-only": ("apps", "python", {"LAZYEXEC": "1", "LAZYEXEC_CONFIG": "{state}/imports.toml"}),
    "lazyexec image": ("apps", "lazyexec-image", {"LAZYEXEC_CONFIG": "{state}/all.toml"}),
    "lazyexec image .pth": ("apps", "python", {"LAZYEXEC": "1", "LAZYEXEC_CONFIG": "{state}/all.toml",
                                               "LAZYEXEC_IMAGE": "{image}"}),
    "LazyLoader": ("apps", "python", {"BENCH_PEER": "lazyloader"}),
    "demandimport": ("apps", "python", {"BENCH_PEER": "demandimport"}),
}


class Target:
    """debian: Debian's packages and /usr/bin/python3, one venv per mode
    family; pypi: pinned PyPI packages in one venv of this interpreter."""

    def __init__(self, kind: str):
        self.kind = kind
        if kind == "debian":
            self.python, self.modes, self.lazy_venv = TARGET_PY, MODES, "lazyexec"
        else:
            self.python = os.path.join(sys.base_prefix, "bin", "python3")
            self.modes, self.lazy_venv = PYPI_MODES, "apps"
        self.bin = "/usr/bin"  # set by setup() for pypi

    def args(self, workload: str) -> list[str]:
        return [a.replace("{bin}", self.bin) for a in WORKLOADS[workload]]


T = Target("debian")

ENVS = {
    # name -> (PYTHONDONTWRITEBYTECODE, clear lazyexec artifacts before each lazyexec run, modes)
    "warm": (False, False, tuple(MODES)),
    "nobytecode": (True, False, tuple(MODES)),
    # last: it leaves artifacts only for the last workload. One lazyexec mode:
    # every first start loads eagerly and is followed by a builder run of a
    # few seconds (waited for), which the other activations would repeat.
    "first": (False, True, ("eager", "lazyexec .pth")),
    # The same under PYTHONDONTWRITEBYTECODE=1 (container images): artifacts
    # go to the cache directory only, as for a read-only site-packages.
    "first-nobytecode": (True, True, ("eager", "lazyexec .pth")),
}


# --- normalisation (docs/benchmarks.md, "The guard") -------------------------

_NORMALISE = [
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:?\d\d)?"), "<timestamp>"),
    (re.compile(r"\b\d+:\d\d:\d\d\b"), "<clock>"),
    (re.compile(r"load avg: [\d.]+"), "load avg: <n>"),
    (re.compile(r"(random seed:?\s*)\d+", re.I), r"\g<1><seed>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(ms|sec|s|seconds|min)\b"), "<duration>"),
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0x<address>"),
]


def normalise(text: str, venvs: dict[str, Path]) -> str:
    """What the guard compares: stdout with each mode's venv path replaced by
    <venv> (the interpreter path differs per mode), then timestamps, clock
    times, load averages, regrtest's random seed, durations and memory
    addresses replaced."""
    for path in sorted((str(p) for p in venvs.values()), key=len, reverse=True):
        text = text.replace(path, "<venv>")
    for pattern, repl in _NORMALISE:
        text = pattern.sub(repl, text)
    return text


# --- running one command -----------------------------------------------------

class Run:
    __slots__ = ("wall", "rss_kib", "cpu", "rc", "stdout", "stderr", "pid")

    def __init__(self, wall, rss_kib, cpu, rc, stdout, stderr, pid=0):
        self.wall, self.rss_kib, self.cpu, self.rc, self.stdout, self.stderr = wall, rss_kib, cpu, rc, stdout, stderr
        self.pid = pid


def run_once(cmd: list[str], cwd: Path, env: dict, scratch: Path) -> Run:
    """fork/exec with stdout and stderr to files; wall time around fork and
    wait4, peak RSS and user+sys CPU from the child's rusage (through
    bench/rss_exec.c: common.rss_exec_path says why)."""
    cmd, report = rusage_command(cmd)
    out_path, err_path = scratch / "stdout", scratch / "stderr"
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.chdir(cwd)
            os.dup2(out, 1)
            os.dup2(err, 2)
            nul = os.open(os.devnull, os.O_RDONLY)
            os.dup2(nul, 0)
            os.execve(cmd[0], cmd, env)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    rss, cpu, wall, pid = rusage_report(report, usage, time.perf_counter() - start, pid)
    os.close(out)
    os.close(err)
    return Run(wall, rss, cpu, os.waitstatus_to_exitcode(status),
               out_path.read_text(errors="replace"), err_path.read_text(errors="replace"), pid)


# --- set-up ------------------------------------------------------------------

def sh(cmd, **kw):
    print("  $", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def install_packages() -> None:
    missing = [pkg for pkg, path in PACKAGES.items() if not os.path.exists(path)]
    try:
        import test.test_bisect  # noqa: F401  (Debian: libpython3.X-testsuite)
    except ImportError:
        missing.append(f"libpython{sys.version_info[0]}.{sys.version_info[1]}-testsuite")
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing Debian packages: {' '.join(missing)} (run as root or install them)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sh(["apt-get", "update", "-qq"], env=env)
    sh(["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=900", "--no-install-recommends", *missing], env=env)


def site_packages(venv: Path) -> Path:
    out = subprocess.run([venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(out)


def make_venv(venv: Path) -> Path:
    if not (venv / "bin/python").exists():
        system = ["--system-site-packages"] if T.kind == "debian" else []
        sh([T.python, "-m", "venv", *system, "--without-pip", venv])
    return site_packages(venv)


def pip_into(venv: Path, *args) -> None:
    sh([sys.executable, "-m", "pip", "-q", "--python", venv / "bin/python", "install", "--no-deps", *args])


def install_lazyexec(base: Path, venv: Path, site: Path) -> None:
    wheels = base / "wheel"
    shutil.rmtree(wheels, ignore_errors=True)
    build_dir = f"build/wheel-{Path(sys.prefix).name}"  # the Makefile's build dir: incremental
    sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        f"--config-settings=build-dir={build_dir}", "-w", wheels, ROOT], cwd=ROOT)
    pip_into(venv, "--force-reinstall", *sorted(wheels.glob("lazyexec-*.whl")))
    sh([venv / "bin/lazyexec", "pth", "install", "--dir", site], stdout=subprocess.DEVNULL)


def setup_pypi(base: Path) -> dict[str, Path]:
    venv = base / "apps"
    site = make_venv(venv)
    stamp = site / "bench-pins.txt"
    if not stamp.exists() or stamp.read_text() != "\n".join(PYPI_PINS):
        sh([sys.executable, "-m", "pip", "-q", "--python", venv / "bin/python", "install", *PYPI_PINS])
        stamp.write_text("\n".join(PYPI_PINS))
    install_lazyexec(base, venv, site)
    shutil.copy(HERE / "hooks/lazyloader_all.py", site / "_bench_lazyloader_all.py")
    (site / "00-bench-lazyloader.pth").write_text(
        "import os; os.environ.get('BENCH_PEER') == 'lazyloader' and __import__('_bench_lazyloader_all')\n")
    (site / "00-bench-demandimport.pth").write_text(
        "import os; os.environ.get('BENCH_PEER') == 'demandimport' and __import__('demandimport').enable()\n")
    T.bin = str(venv / "bin")
    return {"apps": venv}


def setup(base: Path, modes: list[str]) -> dict[str, Path]:
    """One venv per mode family (all --system-site-packages over Debian's
    /usr/bin/python3, so every mode sees the same Debian packages)."""
    if T.kind == "pypi":
        return setup_pypi(base)
    install_packages()
    venvs: dict[str, Path] = {}
    wanted = {MODES[m][0] for m in modes}
    venvs["eager"] = base / "eager"
    make_venv(venvs["eager"])
    if "lazyexec" in wanted:
        venv = venvs["lazyexec"] = base / "lazyexec"
        site = make_venv(venv)
        install_lazyexec(base, venv, site)
    if "lazyloader" in wanted:
        venv = venvs["lazyloader"] = base / "lazyloader"
        site = make_venv(venv)
        shutil.copy(HERE / "hooks/lazyloader_all.py", site / "_bench_lazyloader_all.py")
        (site / "00-bench-lazyloader.pth").write_text("import _bench_lazyloader_all\n")
    if "demandimport" in wanted:
        venv = venvs["demandimport"] = base / "demandimport"
        site = make_venv(venv)
        if not (site / "demandimport").is_dir():
            pip_into(venv, DEMANDIMPORT)
        # Mercurial's own way: enable() as the program starts.
        (site / "00-bench-demandimport.pth").write_text("import demandimport; demandimport.enable()\n")
    return venvs


def prepare_state(state: Path) -> None:
    """Fixed state for every run (docs/benchmarks.md, "State")."""
    home = state / "home"
    shutil.rmtree(state / "home", ignore_errors=True)
    (home / ".config/httpie").mkdir(parents=True)
    # httpie 3 checks PyPI for updates in a background daemon unless told not to.
    (home / ".config/httpie/config.json").write_text('{"disable_update_warnings": true}\n')
    work = state / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy(DATA / "sample.py", work / "sample.py")
    os.utime(work / "sample.py", (1_700_000_000, 1_700_000_000))
    (state / "all.toml").write_text('mode = "all"\n')
    (state / "imports.toml").write_text('mode = "all"\ndefer = "imports"\n')
    probe = state / "probe"
    probe.mkdir(exist_ok=True)
    py_compile.compile(str(HERE / "hooks/probe_sitecustomize.py"), cfile=str(probe / "sitecustomize.pyc"),
                       doraise=True)


def base_env(state: Path, nobytecode: bool) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LAZYEXEC", "PYTHON", "VIRTUAL_ENV", "BLACK_", "ANSIBLE_", "XDG_"))}
    home = state / "home"
    env.update({
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "BLACK_CACHE_DIR": str(home / ".cache/black"),
        "ANSIBLE_LOCAL_TEMP": str(home / ".ansible/tmp"),
        "LC_ALL": "C.UTF-8",
        "COLUMNS": "100",
        "TERM": "dumb",
        "NO_COLOR": "1",
    })
    if nobytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def command(mode: str, args: list[str], venvs: dict[str, Path]) -> list[str]:
    venv, how, _ = T.modes[mode]
    if how == "lazyexec-run":
        return [str(venvs[venv] / "bin/lazyexec"), "run", *args]
    if how == "lazyexec-image":
        return [str(venvs[venv] / "bin/lazyexec"), "run", "--image", str(image_path(args)), *args]
    return [str(venvs[venv] / "bin/python"), *args]


def mode_env(mode: str, env: dict, state: Path, args: list[str] | None = None) -> dict:
    image = str(image_path(args)) if args is not None else ""
    return {**env, **{k: v.format(state=state, image=image) for k, v in T.modes[mode][2].items()}}


_image_dir: Path | None = None  # STATE/images, set by build_images()


def image_path(args: list[str]) -> Path:
    import hashlib

    return _image_dir / (hashlib.sha256("\0".join(args).encode()).hexdigest()[:16] + ".lzi")


def build_images(workloads, modes, venvs, state) -> dict[str, float]:
    """One image per workload for the image modes: `lazyexec image build
    --mode all --trace "PYTHON ARGS"` run in the workload's directory (the
    trace runs the workload once, eagerly, and selects the modules it
    imported, in first-use order). Seconds per build; not timed as a run."""
    global _image_dir
    _image_dir = state / "images"
    if not any(m in IMAGE_MODES for m in modes):
        return {}
    import shlex

    _image_dir.mkdir(exist_ok=True)
    env = mode_env("lazyexec run", base_env(state, False), state)
    venv = venvs[T.lazy_venv]
    out = {}
    for w in workloads:
        args = T.args(w)
        image = image_path(args)
        reset_black_cache(env)
        t = time.perf_counter()
        r = subprocess.run([venv / "bin/lazyexec", "image", "build", "-q", "--mode", "all", "-o", image,
                            "--trace", shlex.join([str(venv / "bin/python"), *args])],
                           cwd=state / "work", env=env, capture_output=True, text=True)
        out[w] = round(time.perf_counter() - t, 1)
        last = (r.stdout.strip().splitlines() or [""])[-1]
        print(f"  [image] {w:26s} {out[w]:5.1f} s  {last if r.returncode == 0 else 'FAILED: ' + r.stderr[-300:]}",
              flush=True)
    return out


class Clearer:
    """First start: no lazyexec artifact anywhere. Every __pycache__ under
    the lazyexec venv's sys.path (found once) loses its *.lzx files, and the
    user cache directory (fallback artifacts, parsed configuration and
    knowledge base) is removed."""

    def __init__(self, venv: Path, cache: Path):
        self.venv, self.cache, self.dirs = venv, cache, None

    def _scan(self) -> list[str]:
        """Found at the first clear (after the warm environments created
        every __pycache__ the workloads use)."""
        venv = self.venv
        paths = json.loads(subprocess.run([venv / "bin/python", "-c", "import sys, json; print(json.dumps(sys.path))"],
                                          check=True, capture_output=True, text=True).stdout)
        dirs: list[str] = []
        seen = set()
        for p in paths:
            if not p or not os.path.isdir(p):
                continue
            for d, subdirs, _ in os.walk(p):
                if d in seen:
                    subdirs[:] = []
                    continue
                seen.add(d)
                if os.path.basename(d) == "__pycache__":
                    dirs.append(d)
        return dirs

    def clear(self) -> int:
        if self.dirs is None:
            self.dirs = self._scan()
        n = 0
        for d in self.dirs:
            try:
                with os.scandir(d) as it:
                    for e in it:
                        if e.name.endswith(".lzx"):
                            os.unlink(e.path)
                            n += 1
            except FileNotFoundError:
                pass
        shutil.rmtree(self.cache / "lazyexec", ignore_errors=True)
        return n


def wait_for_builders(venv: Path, timeout: float = 600.0) -> float:
    """Seconds until no detached artifact builder (`python -m
    lazyexec.store.builder`, started at exit by a run that found artifacts
    missing) of this venv is alive: the next run must not compete with it
    for the CPU. Only observes processes; never signals them."""
    start = time.perf_counter()
    needle = str(venv).encode()
    while time.perf_counter() - start < timeout:
        alive = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"lazyexec.store.builder" in cmd and needle in cmd:
                alive = True
                break
        if not alive:
            break
        time.sleep(0.02)
    return time.perf_counter() - start


def reset_black_cache(env: dict) -> None:
    shutil.rmtree(env["BLACK_CACHE_DIR"], ignore_errors=True)


# --- the guard -----------------------------------------------------------------

def check(run: Run, ref: tuple[int, str], venvs) -> str | None:
    """None when stdout and exit code equal eager's after normalisation."""
    out = normalise(run.stdout, venvs)
    if run.rc == ref[0] and out == ref[1]:
        return None
    kind = "crash" if run.rc != ref[0] and "Traceback" in run.stderr else "mismatch"
    lines = [f"{kind}: exit {run.rc} (eager {ref[0]})"]
    tail = run.stderr.strip().splitlines()[-8:]
    if tail:
        lines.append("stderr: " + "\n        ".join(tail))
    if out != ref[1]:
        diff = list(difflib.unified_diff(ref[1].splitlines(), out.splitlines(), "eager stdout", "mode stdout",
                                         lineterm="", n=1))
        lines += diff[:14] + (["..."] if len(diff) > 14 else [])
    return "\n".join(lines)


# --- one environment -------------------------------------------------------------

def ratios(xs, base):
    return [x / b for x, b in zip(xs, base)]


def spread(values: list[float]) -> dict:
    values = sorted(values)
    if not values:
        return {}
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return {"median": statistics.median(values), "q1": q[0], "q3": q[2], "min": values[0], "max": values[-1]}


def unavailable_modes(modes, venvs, state) -> dict[str, str]:
    """A mode whose activation fails before the program starts (site prints
    "Error processing line" for a .pth that raises, and the program then runs
    eagerly) is reported as unavailable, not timed as if it worked."""
    out = {}
    env = base_env(state, False)
    for mode in modes:
        if mode == "eager":
            continue
        cmd = command(mode, ["-c", "pass"], venvs) if T.modes[mode][1] == "python" else None
        if cmd is None:
            continue
        r = subprocess.run(cmd, env=mode_env(mode, env, state), capture_output=True, text=True)
        if r.returncode != 0 or "Error processing line" in r.stderr or "Traceback" in r.stderr:
            lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
            tail = [x for x in lines if "Error" in x][-2:] or lines[-3:]
            out[mode] = "unavailable: activation fails on this interpreter\nstderr: " + "\n        ".join(tail)
    return out


def bench_env(name: str, workloads, modes, venvs, state, rounds, warmups, clearer, unavailable=None) -> dict:
    nobytecode, first_start, env_modes = ENVS[name]
    modes = [m for m in modes if m in env_modes]
    env = base_env(state, nobytecode)
    scratch = state / "scratch"
    scratch.mkdir(exist_ok=True)
    work = state / "work"
    results = {}
    for wname in workloads:
        args = T.args(wname)
        res = {m: {"status": "ok", "detail": None, "wall": [], "rss_kib": [], "cpu": []} for m in modes}
        for m, why in (unavailable or {}).items():
            if m in res:
                res[m].update(status="unavailable", detail=why)
        ref = None
        t0 = time.time()
        for rnd in range(warmups + rounds):
            timed = rnd >= warmups
            for mode in modes:
                r = res[mode]
                if r["status"] != "ok":
                    continue
                if first_start and mode in LAZYEXEC_MODES:
                    clearer.clear()
                if first_start:
                    # The clearing (hundreds of unlinks) and the previous
                    # builder's writes leave the file system's journal and
                    # writeback busy for a while: committed before every run
                    # of both modes, they do not land on one mode's run.
                    os.sync()
                reset_black_cache(env)
                menv = mode_env(mode, env, state, args)
                run = run_once(command(mode, args, venvs), work, menv, scratch)
                if mode in LAZYEXEC_MODES:
                    # Default build policy: a run that found artifacts missing
                    # starts a detached builder at exit. Waiting for it makes
                    # the warm-ups leave every artifact built (and the usage
                    # profile learnt), and keeps it off the next run's CPU.
                    waited = wait_for_builders(venvs[T.lazy_venv])
                    if timed and first_start:
                        r.setdefault("builder_s", []).append(waited)
                if mode == "eager" and ref is None:
                    ref = (run.rc, normalise(run.stdout, venvs))
                    res["eager"]["reference"] = {"rc": run.rc, "stdout_head": ref[1][:400]}
                    if run.rc != 0:
                        res["eager"]["stderr_tail"] = run.stderr.strip().splitlines()[-5:]
                problem = check(run, ref, venvs)
                if problem:
                    r["status"] = problem.split(":", 1)[0]
                    r["detail"] = problem
                    r["failed_round"] = rnd - warmups if timed else f"warm-up {rnd + 1}"
                    continue
                if timed:
                    r["wall"].append(run.wall)
                    r["rss_kib"].append(run.rss_kib)
                    r["cpu"].append(run.cpu)
        eager = res["eager"]
        for mode, r in res.items():
            if r["status"] != "ok":
                r["wall"] = r["rss_kib"] = r["cpu"] = []
                continue
            r["median"] = {"wall": statistics.median(r["wall"]), "rss_kib": statistics.median(r["rss_kib"]),
                           "cpu": statistics.median(r["cpu"])}
            if mode != "eager":
                r["ratio"] = {k: spread(ratios(r[k], eager[k])) for k in ("wall", "rss_kib", "cpu")}
        line = "  ".join(f"{m}: {r['ratio']['wall']['median']:.2f}" if "ratio" in r else f"{m}: {r['status']}"
                         for m, r in res.items() if m != "eager")
        print(f"  [{name}] {wname:26s} eager {eager.get('median', {}).get('wall', 0) * 1000:6.0f} ms  {line}"
              f"  ({time.time() - t0:.0f}s)", flush=True)
        results[wname] = res
    return {"pythondontwritebytecode": nobytecode, "first_start": first_start, "modes": modes, "workloads": results}


# --- probes: modules, lazyexec units, file-system calls ----------------------------

_STATS_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+\S")


def parse_lazyexec_stats(stderr: str) -> dict | None:
    """Totals of LAZYEXEC_STATS=1's table (lazyexec.runtime.print_stats):
    lazily loaded modules, units, deferred, materialized, never used."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^lazyexec: \d+ lazily loaded module", line):
            break
    else:
        return None
    t = {"lazy_modules": 0, "units": 0, "deferred": 0, "materialized": 0, "never_used": 0, "ms": 0.0}
    for line in lines[i + 2:]:
        m = _STATS_ROW.match(line)
        if not m:
            break
        t["lazy_modules"] += 1
        for k, g in (("units", 2), ("deferred", 3), ("materialized", 4), ("never_used", 5)):
            t[k] += int(m.group(g))
        t["ms"] += float(m.group(6))
    t["ms"] = round(t["ms"], 1)
    return t


FS_SYSCALLS = re.compile(r"^(open|openat|openat2|creat|stat|lstat|fstat|newfstatat|fstatat64|statx|access|faccessat2?|"
                         r"getdents64|getdents|readlink|readlinkat|getcwd|mkdir|unlink|rename|chdir)$")


def parse_strace(path: Path) -> dict:
    calls: dict[str, int] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 5 or not re.match(r"^\d+\.\d+$", parts[0]) or parts[-1] == "total":
            continue
        try:
            calls[parts[-1]] = int(parts[3])
        except ValueError:
            continue
    fs = sum(n for name, n in calls.items() if FS_SYSCALLS.match(name))
    return {"total": sum(calls.values()), "fs": fs,
            "top": dict(sorted(calls.items(), key=lambda kv: -kv[1])[:6])}


def probe(workloads, modes, venvs, state, strace: bool) -> dict:
    """One untimed run per workload and mode, artifacts warm: modules that
    ran (sitecustomize probe), lazyexec's unit statistics, and (strace -c -f)
    system calls."""
    env = base_env(state, False)
    scratch = state / "scratch"
    out = {}
    for wname in workloads:
        out[wname] = {}
        for mode in modes:
            e = mode_env(mode, env, state, T.args(wname))
            # The probe writes PREFIX.PID: only the program's own count is
            # read (a builder it starts inherits the environment).
            e.update({"PYTHONPATH": str(state / "probe"), "BENCH_PROBE_OUT": str(scratch / "probe"),
                      "LAZYEXEC_STATS": "1"})
            for old in scratch.glob("probe.*"):
                old.unlink()
            reset_black_cache(env)
            run = run_once(command(mode, T.args(wname), venvs), state / "work", e, scratch)
            if mode in LAZYEXEC_MODES:
                wait_for_builders(venvs[T.lazy_venv])
            entry: dict = {}
            try:
                total, pending = map(int, (scratch / f"probe.{run.pid}").read_text().split())
                entry["modules"] = total - pending
                if pending:
                    entry["lazy_pending"] = pending
            except (OSError, ValueError):
                entry["modules"] = None
            if mode in LAZYEXEC_MODES:
                entry["units"] = parse_lazyexec_stats(run.stderr)
            if strace and shutil.which("strace"):
                reset_black_cache(env)
                trace = scratch / "strace.txt"
                st_env = mode_env(mode, env, state, T.args(wname))
                run_once(["/usr/bin/strace", "-c", "-f", "-o", str(trace), *command(mode, T.args(wname), venvs)],
                         state / "work", st_env, scratch)
                if mode in LAZYEXEC_MODES:
                    wait_for_builders(venvs[T.lazy_venv])
                entry["syscalls"] = parse_strace(trace)
            out[wname][mode] = entry
        print(f"  [probe] {wname:26s} " + "  ".join(
            f"{m}: {out[wname][m].get('modules')} mods/{out[wname][m].get('syscalls', {}).get('fs', '-')} fs"
            for m in modes), flush=True)
    return out


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    interp = subprocess.run([T.python, "-c", "import sys; print(sys.version.replace(chr(10), ' '))"],
                            capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem, "kernel": platform.release(),
            "os": _os_release(), "interpreter": f"{T.python}: {interp}"}


def _os_release() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def versions(venvs) -> dict:
    code = ("import importlib.metadata as m, json; out = {}\n"
            "for d in ('black', 'httpie', 'Sphinx', 'ansible-core', 'pytest', 'pylint', 'flake8', 'Pygments',"
            " 'requests', 'Jinja2', 'PyYAML', 'demandimport', 'lazyexec'):\n"
            "    try: out[d] = m.version(d)\n    except Exception: pass\n"
            "print(json.dumps(out))")
    out = {}
    for venv in venvs.values():
        r = subprocess.run([venv / "bin/python", "-c", code], capture_output=True, text=True)
        if r.returncode == 0:
            out.update(json.loads(r.stdout))
    return out


def git_commit() -> str:
    r = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=10"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=("debian", "pypi"), default="debian",
                    help="debian: Debian's packages and /usr/bin/python3; pypi: pinned PyPI packages, this interpreter")
    ap.add_argument("--quick", action="store_true", help="4 workloads, 3 rounds, 1 warm-up, warm artifacts only")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--warmups", type=int)
    ap.add_argument("--envs", default=None, help="comma-separated: " + ",".join(ENVS))
    ap.add_argument("--workloads", default=None, help="comma-separated names (see WORKLOADS)")
    ap.add_argument("--modes", default=None, help="comma-separated: " + ",".join(MODES))
    ap.add_argument("--no-probe", action="store_true")
    ap.add_argument("--no-strace", action="store_true")
    ap.add_argument("--base", default=None, help="venvs and state (default: build/bench/debian or build/bench/pypi-X.Y)")
    ap.add_argument("--out", default=None,
                    help="results directory (default: bench/results/realworld[-pypi-X.Y], --quick: BASE/results-quick)")
    args = ap.parse_args()
    global T
    T = Target(args.target)
    ver = ".".join(map(str, sys.version_info[:2]))
    rounds = args.rounds or (3 if args.quick else 10)
    warmups = args.warmups if args.warmups is not None else (1 if args.quick else 2)
    envs = args.envs.split(",") if args.envs else (["warm"] if args.quick or args.target == "pypi" else list(ENVS))
    workloads = args.workloads.split(",") if args.workloads else (QUICK_WORKLOADS if args.quick else list(WORKLOADS))
    modes = args.modes.split(",") if args.modes else list(MODES)
    for name, known in ((envs, ENVS), (workloads, WORKLOADS), (modes, MODES)):
        bad = [n for n in name if n not in known]
        if bad:
            ap.error(f"unknown: {', '.join(bad)} (known: {', '.join(known)})")
    if "eager" not in modes:
        modes.insert(0, "eager")
    # Absolute: the venvs' scripts are run from the state's work directory.
    base = Path(args.base or (ROOT / "build/bench" / ("debian" if args.target == "debian" else f"pypi-{ver}"))).absolute()
    results_name = "realworld" if args.target == "debian" else f"realworld-pypi-{ver}"
    out_dir = Path(args.out).absolute() if args.out else (base / "results-quick" if args.quick else ROOT / "bench/results" / results_name)
    base.mkdir(parents=True, exist_ok=True)
    started = time.time()
    print("set-up:", flush=True)
    venvs = setup(base, modes)
    state = base / "state"
    prepare_state(state)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "versions": versions(venvs), "lazyexec_commit": git_commit(), "rounds": rounds, "warmups": warmups,
        "modes": modes, "target": T.kind, "workload_args": {w: T.args(w) for w in workloads}, "envs": {},
    }
    print("images:", flush=True)
    results["image_build_s"] = build_images(workloads, modes, venvs, state)
    unavailable = unavailable_modes(modes, venvs, state)
    for m, why in unavailable.items():
        print(f"  {m}: {why}", flush=True)
    clearer = Clearer(venvs[T.lazy_venv], state / "home/.cache") if T.lazy_venv in venvs else None
    # The probes need warm artifacts: right after the warm environment (the
    # first-start one removes them).
    probe_after = "warm" if "warm" in envs else envs[-1]
    for env_name in envs:
        print(f"environment {env_name}: {rounds} rounds after {warmups} warm-up(s)", flush=True)
        results["envs"][env_name] = bench_env(env_name, workloads, modes, venvs, state, rounds, warmups, clearer,
                                              unavailable)
        if env_name == probe_after and not args.no_probe:
            print("probes (untimed, artifacts warm):", flush=True)
            results["probe"] = probe(workloads, modes, venvs, state, strace=not args.no_strace)
    results["duration_s"] = round(time.time() - started)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out_dir / 'results.json'} ({results['duration_s']} s)")
    sys.path.insert(0, str(HERE))
    import report

    if (out_dir / "instructions.json").exists():  # make bench-instructions' counts, shown beside
        results["instructions"] = json.loads((out_dir / "instructions.json").read_text())
    report.write(results, out_dir)
    if args.target == "debian" and not args.quick and args.out is None:
        report.update_readme(ROOT / "README.md", results, "bench/results/realworld")
    return 0


if __name__ == "__main__":
    sys.exit(main())
