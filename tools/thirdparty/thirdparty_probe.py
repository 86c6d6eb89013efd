"""A pytest plugin for tools/thirdparty/run.py (`-p thirdparty_probe`): at
the end of the session, writes to $THIRDPARTY_PROBE how many modules loaded
through lazyexec's loader, whether the `.pth` activation booted in C++, and
whether lazyexec's Python layer was imported. Reads only: it changes nothing
the tests observe."""

import json
import os
import sys
import types


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("THIRDPARTY_PROBE")
    if not path:
        return
    native = sys.modules.get("lazyexec._lazyexec")
    # Modules still lazy at the end (a trapping namespace; a settled one is a
    # plain dict again, and so is every module of a first start, loaded eagerly).
    lazy = 0
    if native is not None:
        # The namespace as ModuleType stores it: a module class's own `__dict__`
        # (py's apipkg imports every export there; dill's import hook then
        # walks sys.modules) is not run.
        namespace = types.ModuleType.__dict__["__dict__"].__get__
        # type(), not isinstance(): jinja2's ModuleLoader puts a
        # weakref.proxy of a module in sys.modules, which isinstance() takes
        # for a module and the descriptor refuses (TypeError: the probe
        # crashed at the end of a run that was the same, exit 1).
        lazy = sum(1 for m in list(sys.modules.values())
                   if issubclass(type(m), types.ModuleType) and native.is_trapping(namespace(m)))
    # The .pth line loads the start-up extension (activation only); the full
    # one loads at the first module the finder claims.
    boot = sys.modules.get("lazyexec._lazyexec_boot") or native
    booted = None
    if boot is not None and hasattr(boot, "boot_state"):
        booted = boot.boot_state() is not None
    with open(path, "w") as f:
        json.dump({"lazy_modules": lazy, "booted_in_cpp": booted, "python_layer": "lazyexec" in sys.modules}, f)
