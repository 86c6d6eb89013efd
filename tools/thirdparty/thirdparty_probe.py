"""A pytest plugin for tools/thirdparty/run.py (`-p thirdparty_probe`): at
the end of the session, writes to $THIRDPARTY_PROBE how many modules loaded
through lazyexec's loader, whether the `.pth` activation booted in C++, and
whether lazyexec's Python layer was imported. Reads only: it changes nothing
the tests observe."""

import json
import os
import sys


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("THIRDPARTY_PROBE")
    if not path:
        return
    native = sys.modules.get("lazyexec._lazyexec")
    # Modules still lazy at the end (a trapping namespace; a settled one is a
    # plain dict again, and so is every module of a first start, loaded eagerly).
    lazy = 0
    if native is not None:
        lazy = sum(1 for m in list(sys.modules.values())
                   if isinstance(getattr(m, "__dict__", None), dict) and native.is_trapping(m.__dict__))
    # The .pth line loads the start-up extension (activation only); the full
    # one loads at the first module the finder claims.
    boot = sys.modules.get("lazyexec._lazyexec_boot") or native
    booted = None
    if boot is not None and hasattr(boot, "boot_state"):
        booted = boot.boot_state() is not None
    with open(path, "w") as f:
        json.dump({"lazy_modules": lazy, "booted_in_cpp": booted, "python_layer": "lazyexec" in sys.modules}, f)
