"""Shared by the benchmarks: run a command in a child process, measure wall
time and the child's peak RSS, alternate eager and lazy, take medians."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time


def callgrind_instructions(cmd, env: dict, cwd) -> int:
    """Instructions one run of `cmd` executes (valgrind's callgrind): the
    same count on a busy machine as on an idle one, unlike seconds."""
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd], cwd=cwd, env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    for line in r.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1])
    raise RuntimeError(f"callgrind failed: {r.stderr[-800:]}")


def bench_env(extra: dict | None = None) -> dict:
    # Byte-code and artifact caches on, as in a real installation.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("LAZYEXEC")}
    # Artifacts are built during the warm-up runs (measured: warm starts).
    env["LAZYEXEC_BUILD"] = "inline"
    env.update(extra or {})
    return env


_RSS_EXEC: list = []  # [path or None], built once per process


def rss_exec_path() -> str | None:
    """bench/rss_exec.c built (once, into build/, keyed by its source's
    hash) with the C compiler on PATH; None without one. Every child whose
    peak RSS a benchmark reads runs under it: a child forked from the
    driver starts with the driver's pages counted, and Linux keeps that
    peak across exec, so ru_maxrss from the driver's own wait4 was never
    below the driver's size (about 15 MiB for a Python driver: an empty
    start of 9 MiB read 15, and every mode of a small program read the
    same)."""
    if not _RSS_EXEC:
        import hashlib
        import shutil

        here = os.path.dirname(os.path.abspath(__file__))
        source = os.path.join(here, "rss_exec.c")
        with open(source, "rb") as f:
            key = hashlib.sha256(f.read()).hexdigest()[:12]
        exe = os.path.join(os.path.dirname(here), "build", f"rss_exec-{key}")
        if not os.path.exists(exe):
            cc = next((c for c in (os.environ.get("CC"), "cc", "gcc", "clang") if c and shutil.which(c)), None)
            tmp = f"{exe}.{os.getpid()}.tmp"
            os.makedirs(os.path.dirname(exe), exist_ok=True)
            if cc is None or subprocess.run([cc, "-O2", "-o", tmp, source], capture_output=True).returncode != 0:
                print("bench: no C compiler for bench/rss_exec.c: peak RSS read from the driver's wait4, "
                      "floored at the driver's own size", file=sys.stderr)
                _RSS_EXEC.append(None)
                return None
            os.replace(tmp, exe)
        _RSS_EXEC.append(exe)
    return _RSS_EXEC[0]


def rusage_command(cmd: list[str]) -> tuple[list[str], str | None]:
    """`cmd` run under rss_exec, and the report it will write (None: `cmd`
    itself, no helper)."""
    exe = rss_exec_path()
    if exe is None:
        return list(cmd), None
    report = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"lazyexec-bench-rss-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(report)
    return [exe, report, *cmd], report


def rusage_report(report: str | None, usage, wall: float, pid: int = 0) -> tuple[int, float, float, int]:
    """(peak RSS KiB, CPU s user+system, wall s, pid) of the command:
    rss_exec's report when it wrote one, else the driver's wait4 figures
    `usage` and `wall` and the `pid` it waited for."""
    if report is not None:
        try:
            with open(report) as f:
                rss, user, system, seconds, child = f.read().split()
            os.unlink(report)
            return int(rss), float(user) + float(system), float(seconds), int(child)
        except (OSError, ValueError):
            pass
    return usage.ru_maxrss, usage.ru_utime + usage.ru_stime, wall, pid


def measure_rss(cmd: list[str], cwd: str, env: dict, check: bool = True) -> tuple[float, int, str, str]:
    cmd, report = rusage_command(cmd)
    start = time.perf_counter()
    r_fd, w_fd = os.pipe()
    e_fd = os.open(os.devnull, os.O_WRONLY)
    pid = os.fork()
    if pid == 0:  # child
        os.chdir(cwd)
        os.dup2(w_fd, 1)
        os.dup2(w_fd if not check else e_fd, 2)
        os.close(r_fd)
        os.execvpe(cmd[0], cmd, env)
    os.close(w_fd)
    chunks = []
    while True:
        b = os.read(r_fd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r_fd)
    os.close(e_fd)
    _, status, usage = os.wait4(pid, 0)
    rss, _, seconds, _ = rusage_report(report, usage, time.perf_counter() - start)
    if check and os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {os.waitstatus_to_exitcode(status)}")
    return seconds, rss, b"".join(chunks).decode(), ""


def alternate(eager_cmd, lazy_cmd, cwd, env, runs: int = 11, warmup: int = 2, lazy_env: dict | None = None) -> dict:
    lazy_env = env if lazy_env is None else lazy_env
    for _ in range(warmup):
        measure_rss(eager_cmd, cwd, env)
        measure_rss(lazy_cmd, cwd, lazy_env)
    et, er, lt, lr = [], [], [], []
    for _ in range(runs):
        s, rss, *_ = measure_rss(eager_cmd, cwd, env)
        et.append(s)
        er.append(rss)
        s, rss, *_ = measure_rss(lazy_cmd, cwd, lazy_env)
        lt.append(s)
        lr.append(rss)
    em, lm = statistics.median(et), statistics.median(lt)
    erm, lrm = statistics.median(er), statistics.median(lr)
    return {"runs": runs, "eager_s": em, "lazy_s": lm, "time_ratio": lm / em,
            "eager_rss_kib": erm, "lazy_rss_kib": lrm, "rss_ratio": lrm / erm}


def clean_venv(base: str, d: str, pth: bool = False) -> str:
    """The python of a venv of `base`'s interpreter without its
    site-packages (made in `d` unless there already), lazyexec's installed
    package copied in with its files' times (its build identity, so its
    artifacts and images, stay valid), with its TOML parser on 3.10, and with
    `pth` its .pth activation line: the figure of a machine whose
    site-packages runs nothing at start and holds nothing the stdlib
    imports when present (on this machine a sandbox's .pth imports certifi
    in every start; docutils and pygments are installed there)."""
    import shutil
    import subprocess

    venv = os.path.join(d, "clean-venv")
    py = os.path.join(venv, "bin", "python")
    if os.path.exists(py):
        return py
    subprocess.run([base, "-m", "venv", "--without-pip", venv], check=True)
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    packages = ["lazyexec"] + (["tomli"] if subprocess.run([base, "-c", "import sys; print(sys.version_info < (3, 11))"],
                                                          check=True, capture_output=True, text=True).stdout.strip() == "True" else [])
    for package in packages:
        src = subprocess.run([base, "-c", f"import {package}, os; print(os.path.dirname({package}.__file__))"],
                             check=True, capture_output=True, text=True).stdout.strip()
        shutil.copytree(src, os.path.join(purelib, package), ignore=shutil.ignore_patterns("__pycache__"))
    if pth:
        subprocess.run([py, "-m", "lazyexec", "pth", "install", "--dir", purelib], check=True, capture_output=True)
    return py


def clean_venv_command(py) -> str:
    """The `lazyexec` command in clean_venv()'s venv: the script installed
    beside this interpreter, its `#!` line naming that venv's python."""
    venv_command = os.path.join(os.path.dirname(str(py)), "lazyexec")
    if not os.path.exists(venv_command):
        with open(os.path.join(os.path.dirname(sys.executable), "lazyexec"), encoding="utf-8") as f:
            body = f.read().split("\n", 1)[1]
        with open(venv_command, "w", encoding="utf-8") as f:
            f.write(f"#!{py}\n{body}")
        os.chmod(venv_command, 0o755)
    return venv_command


@contextlib.contextmanager
def pth_installed(py: str, site: str):
    """lazyexec's .pth activation line in `site` while the block runs, for
    `py`; afterwards `site` is as it was (a line installed before stays)."""
    import subprocess

    path = os.path.join(site, "00-lazyexec-activate.pth")
    before = open(path, "rb").read() if os.path.exists(path) else None
    subprocess.run([py, "-m", "lazyexec", "pth", "install", "--dir", site], check=True, capture_output=True)
    try:
        yield
    finally:
        if before is None:
            subprocess.run([py, "-m", "lazyexec", "pth", "remove", "--dir", site], check=True, capture_output=True)
        else:
            with open(path, "wb") as f:
                f.write(before)


def python() -> str:
    return sys.executable
