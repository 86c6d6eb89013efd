"""The real-program benchmark's guard (bench/realworld/run.py), cheaply: its
normalisation rule, its failure report, and one workload eager vs
`lazyexec run` through the guard on this interpreter. The full suite (every
workload and mode, Debian's interpreter) is `make bench`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "bench/realworld"
spec = importlib.util.spec_from_file_location("bench_realworld_run", HERE / "run.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_normalise_replaces_paths_times_and_addresses_only():
    venvs = {"eager": Path("/b/eager"), "lazyexec": Path("/b/lazyexec")}
    text = ("/b/lazyexec/bin/python 3.11\n+++ sample.py\t2026-11-29 19:48:01.123456+00:00\n"
            "Using random seed: 2587959301\n"
            "0:00:01 load avg: 1.52 [1/1] test_bisect\nTotal duration: 652 ms\n<obj at 0x7f3a2c1b9e50>\n"
            "black, 23.1.0 (compiled: no)\n")
    assert bench.normalise(text, venvs) == (
        "<venv>/bin/python 3.11\n+++ sample.py\t<timestamp>\nUsing random seed: <seed>\n"
        "<clock> load avg: <n> [1/1] test_bisect\n"
        "Total duration: <duration>\n<obj at 0x<address>>\nblack, 23.1.0 (compiled: no)\n")


def test_guard_reports_a_changed_output_or_exit_code():
    venvs = {"eager": Path("/b/eager")}
    ref = (0, "black, 23.1.0\n")
    same = bench.Run(0.1, 1000, 0.1, 0, "black, 23.1.0\n", "")
    assert bench.check(same, ref, venvs) is None
    renamed = bench.Run(0.1, 1000, 0.1, 0, "python -m black, 23.1.0\n", "")
    assert bench.check(renamed, ref, venvs).startswith("mismatch")
    crashed = bench.Run(0.1, 1000, 0.1, 1, "", "Traceback (most recent call last):\nValueError: x\n")
    problem = bench.check(crashed, ref, venvs)
    assert problem.startswith("crash: exit 1 (eager 0)") and "ValueError: x" in problem


def test_strace_and_stats_parsers(tmp_path):
    trace = tmp_path / "t.txt"
    trace.write_text(
        "% time     seconds  usecs/call     calls    errors syscall\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        " 40.00    0.000400           2       200        50 newfstatat\n"
        " 30.00    0.000300           3       100           openat\n"
        " 30.00    0.000300           3        10           mmap\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        "100.00    0.001000           3       310        50 total\n")
    got = bench.parse_strace(trace)
    assert (got["fs"], got["total"]) == (300, 310)
    stats = ("lazyexec: 2 lazily loaded module(s)\n"
             f"{'module':<40}{'units':>7}{'deferred':>10}{'materialized':>14}{'never used':>12}{'ms':>8}"
             f"{'settle forced':>15}  settled\n"
             "a                                            10         8             3           5     0.5              0  no\n"
             "b.c                                           4         2             2           0     0.1              1  hot\n")
    assert bench.parse_lazyexec_stats(stats) == {"lazy_modules": 2, "units": 14, "deferred": 10,
                                                 "materialized": 5, "never_used": 5, "ms": 0.6}


def test_yaml_round_trip_passes_the_guard_under_lazyexec_run(tmp_path):
    pytest.importorskip("yaml", reason="PyYAML not installed for this interpreter")
    venvs = {"this": Path(sys.prefix)}
    config = tmp_path / "all.toml"
    config.write_text('mode = "all"\n')
    env = {k: v for k, v in bench.os.environ.items() if not k.startswith("LAZYEXEC")}
    script = str(HERE / "data/yaml_roundtrip.py")
    eager = bench.run_once([sys.executable, script], tmp_path, env, tmp_path)
    assert eager.rc == 0 and "replicas: 4" in eager.stdout, eager.stderr
    ref = (eager.rc, bench.normalise(eager.stdout, venvs))
    lazy = bench.run_once([sys.executable, "-m", "lazyexec", "run", script], tmp_path,
                          {**env, "LAZYEXEC_CONFIG": str(config)}, tmp_path)
    assert bench.check(lazy, ref, venvs) is None


def test_readme_instructions_table_from_instructions_json():
    """report.py's second README table: instructions.py --json's counts, a
    ratio per workload and mode, the median, and a differing output flagged."""
    spec = importlib.util.spec_from_file_location("bench_realworld_report", HERE / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    assert report.instructions_section(None) == []
    counts = {"date": "2026-12-03 07:00 UTC", "lazyexec_commit": "abc1234", "interpreter": "CPython 3.11.2",
              "fresh": True, "modes": ["lazyexec .pth"],
              "workloads": {"a": {"eager": 200_000_000, "lazyexec .pth": {"instructions": 100_000_000, "ratio": 0.5,
                                                                          "output_differs": False}},
                            "b": {"eager": 100_000_000, "lazyexec .pth": {"instructions": 110_000_000, "ratio": 1.1,
                                                                          "output_differs": True}},
                            "c": {"eager": 50_000_000, "lazyexec .pth": {"instructions": 40_000_000, "ratio": 0.8,
                                                                         "output_differs": False}}}}
    lines = report.instructions_section(counts)
    text = "\n".join(lines)
    assert "| a | 200.0 M | 0.500 |" in text
    assert "| b | 100.0 M | 1.100 (**output differs**) |" in text
    assert lines[-1] == "| **median** | | **0.800** |"
    assert "abc1234" in text and "PYTHONHASHSEED=0" in text
