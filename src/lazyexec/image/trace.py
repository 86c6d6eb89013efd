"""`image build --trace COMMAND`: run COMMAND once and record the order in
which its Python processes first imported each module (sys.modules keeps
insertion order, and importlib inserts a module when its load starts); then
(trace_units) run it again served from the image just built, and record the
order in which deferred units first ran, so that the builder puts the code
of the units a run uses first, together (format 4: units' code out of line).

The recorder is a `sitecustomize` put first on PYTHONPATH for the command:
at exit it writes (name, file, __path__) per module, then hands over to the
sitecustomize it shadowed, if any.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

from lazyexec.image.build import Source

RECORDER = r'''
import atexit, os, sys

class _LazyexecTraceRecorder:
    # First on sys.meta_path: asked first for every module, when its import
    # starts (sys.modules is in completion order: importlib moves a module
    # to the end when its load ends).
    order = []
    # (file, __path__) of each source or extension module seen in sys.modules, noted at
    # every import: a program may drop modules again before it exits
    # (regrtest unloads the test module and what it imported; test.support's
    # import_fresh_module), and those must be in the image too.
    info = {}
    checked = set()

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        cls.order.append(name)
        cls.note()
        return None

    @classmethod
    def note(cls):
        for n, m in list(sys.modules.items()):
            if n in cls.checked:
                continue
            cls.checked.add(n)
            try:
                if _served(m):
                    p = getattr(m, "__path__", None)
                    cls.info[n] = (os.path.abspath(m.__file__), [str(x) for x in p] if p is not None else None)
            except Exception:
                pass

def _served(m):
    # A source module, or an extension module importlib's own loader loaded
    # from its file (format 5: the image serves its record).
    f = getattr(m, "__file__", None)
    if not isinstance(f, str):
        return False
    if f.endswith(".py"):
        return True
    import importlib.machinery as im
    return (f.endswith(tuple(im.EXTENSION_SUFFIXES)) and getattr(m, "__path__", None) is None
            and type(getattr(getattr(m, "__spec__", None), "loader", None)) is im.ExtensionFileLoader)

sys.meta_path.insert(0, _LazyexecTraceRecorder)

if os.environ.get("LAZYEXEC_TRACE_UNITS"):
    # The second run: served from the image (the .pth activation has served
    # it already when it is installed, else it starts here).
    try:
        import lazyexec, lazyexec.image
        if lazyexec.image._active is None:
            lazyexec.activate(image=os.environ["LAZYEXEC_IMAGE"])
    except Exception:
        pass

def _lazyexec_trace_write():
    if os.environ.get("LAZYEXEC_TRACE_UNITS"):
        im = sys.modules.get("lazyexec.image")
        uses = im._active.image.unit_uses() if im is not None and im._active is not None else None
        import json
        path = os.path.join(os.environ["LAZYEXEC_TRACE_DIR"], "units-%d.json" % os.getpid())
        with open(path, "w") as fh:
            json.dump(uses or [], fh)
        return
    out = []
    started = dict.fromkeys(_LazyexecTraceRecorder.order)
    before = [n for n in sys.modules if n not in started]  # loaded before this recorder
    # The module `python -m NAME` ran (NAME, or NAME.__main__ for a
    # package): runpy asked the finders for its spec, then ran its code as
    # __main__, so it is not in sys.modules under its own name.
    main = sys.modules.get("__main__")
    main_name = getattr(getattr(main, "__spec__", None), "name", None)
    _LazyexecTraceRecorder.note()
    info = _LazyexecTraceRecorder.info
    for name in before + list(started):
        m = sys.modules.get(name)
        if m is None and name == main_name:
            m = main
        if m is None and name in info:  # imported, then dropped from sys.modules
            out.append((name, *info[name]))
            continue
        if m is not None and _served(m):
            p = getattr(m, "__path__", None)
            out.append((name, os.path.abspath(m.__file__), [str(x) for x in p] if p is not None else None))
    import json
    path = os.path.join(os.environ["LAZYEXEC_TRACE_DIR"], "trace-%d.json" % os.getpid())
    with open(path, "w") as fh:
        json.dump(out, fh)

atexit.register(_lazyexec_trace_write)
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
# The sitecustomize this recorder shadowed, if any, takes its name; else the
# recorder keeps it (importlib moves the entry of the module it is loading
# when the load ends: a missing entry would be a KeyError in site).
_recorder = sys.modules.pop("sitecustomize")
try:
    import sitecustomize
except ImportError:
    sys.modules["sitecustomize"] = _recorder
'''


def _recorder_env(d: str) -> dict:
    with open(os.path.join(d, "sitecustomize.py"), "w") as f:
        f.write(RECORDER)
    env = dict(os.environ)
    env["PYTHONPATH"] = d + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["LAZYEXEC_TRACE_DIR"] = d
    return env


def _recorded(d: str, prefix: str):
    """The rows the recorder wrote to `d`'s files named `prefix*`, its
    processes in the order they ended; an unreadable file is skipped."""
    files = sorted((f for f in os.listdir(d) if f.startswith(prefix)),
                   key=lambda f: os.stat(os.path.join(d, f)).st_mtime_ns)
    for f in files:
        try:
            with open(os.path.join(d, f)) as fh:
                rows = json.load(fh)
        except (OSError, ValueError):
            continue
        yield from rows


def trace_units(command: str, image: str) -> list[tuple[str, int]]:
    """(module, unit code entry) of the deferred units COMMAND ran, in the
    order they first ran, COMMAND served from `image` (its processes in the
    order they ended)."""
    with tempfile.TemporaryDirectory(prefix="lazyexec-trace-") as d:
        env = _recorder_env(d)
        env.update(LAZYEXEC_TRACE_UNITS="1", LAZYEXEC="1", LAZYEXEC_IMAGE=os.path.abspath(image))
        subprocess.run(command, shell=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        order, seen = [], set()
        for name, k in _recorded(d, "units-"):
            if (name, k) not in seen:
                seen.add((name, k))
                order.append((name, k))
        return order


def trace(command: str) -> tuple[list[Source], int]:
    """(modules in first-use order, the command's exit status)."""
    with tempfile.TemporaryDirectory(prefix="lazyexec-trace-") as d:
        env = _recorder_env(d)
        status = subprocess.run(command, shell=True, env=env).returncode
        order: list[Source] = []
        seen = set()
        for name, path, locations in _recorded(d, "trace-"):
            if name in seen:
                continue
            seen.add(name)
            if locations is not None and os.path.basename(path) != "__init__.py":
                continue  # a namespace package or an odd loader: leave it to the normal import
            order.append(Source(name, path, locations is not None, list(locations or []),
                                extension=not path.endswith(".py")))
        return order, status
