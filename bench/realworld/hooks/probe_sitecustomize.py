"""Probe (untimed runs only): at exit, count the modules that really ran,
into $BENCH_PROBE_OUT.PID (a process the program starts inherits the variable).

The harness compiles this to a sourceless `sitecustomize.pyc` in a directory
put first on PYTHONPATH, so no import hook under test (lazyexec, LazyLoader)
can defer it. Modules still behind importlib.util.LazyLoader (class
_LazyModule: body not run) are counted apart. Debian's own sitecustomize runs
afterwards, as it would without the probe.
"""
import atexit
import os
import sys


def _report():
    mods = list(sys.modules.values())
    pending = sum(1 for m in mods if type(m).__name__ == "_LazyModule")
    with open(f"{os.environ['BENCH_PROBE_OUT']}.{os.getpid()}", "w") as f:
        f.write(f"{len(mods)} {pending}\n")


atexit.register(_report)

_here = os.path.dirname(os.path.abspath(__file__))
for _d in sys.path:
    _p = os.path.join(_d or ".", "sitecustomize.py")
    if os.path.abspath(_d or ".") != _here and os.path.isfile(_p):
        with open(_p, "rb") as _f:
            exec(compile(_f.read(), _p, "exec"), {"__name__": "sitecustomize", "__file__": _p})
        break
