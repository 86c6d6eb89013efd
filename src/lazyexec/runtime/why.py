"""The recorder behind `lazyexec why`: every module a run loads, with the
chain of code that caused it.

Turned on by `LAZYEXEC_WHY=path.json` (read by `lazyexec.activate()`); when
the variable is unset nothing here is imported and nothing is patched.

How it sees a load: importlib's `_load_unlocked(spec)` (the step that creates
and executes a module once a finder found it, the same function on 3.10-3.13)
is wrapped in `_frozen_importlib`'s namespace, where `_find_and_load_unlocked`
looks it up on every import. The wrapper takes the Python stack at that point
(the code that imported, root first, without importlib's and lazyexec's own
frames) and asks the C++ runtime which lazy units this thread is
materializing and which name's first use started each, so a frame running a
lazy unit is told apart from an eager top-level statement. Time is measured
around the load, so it is inclusive of the modules loaded inside it (as
`-X importtime`'s "cumulative").

At exit the record is written as JSON (schema: docs/why.md) for
`lazyexec why` to explain and draw.
"""

from __future__ import annotations

import os
import sys

from lazyexec import _lazyexec

SCHEMA = 1
MAX_FRAMES = 60

_recorder = None


class Recorder:
    def __init__(self, path: str):
        import _thread
        import time

        self.path = path
        self.clock = time.perf_counter
        self.ident = _thread.get_ident
        self.started = self.clock()
        self.preloaded = sorted(sys.modules)
        self.entries: list[dict] = []
        self.stacks: dict[int, list[dict]] = {}
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.skip_prefixes = (here + os.sep,)
        runpy = sys.modules.get("runpy")
        self.skip_files = {getattr(runpy, "__file__", None) or "", __file__}
        # The frames that started recording (the `lazyexec run` entry point,
        # or site.py running a .pth line) belong to the tool, not the program.
        # The code objects are kept alive so their ids are not reused.
        self.skip_kept = []
        frame = sys._getframe(1)
        while frame is not None:
            self.skip_kept.append(frame.f_code)
            frame = frame.f_back
        self.skip_codes = {id(c) for c in self.skip_kept}
        self.bootstrap = sys.modules["_frozen_importlib"]
        self.original = self.bootstrap._load_unlocked

    # The wrapper importlib calls instead of its own _load_unlocked.
    def load_unlocked(self, spec):
        name = spec.name
        try:
            entry = {"module": name, "file": spec.origin if spec.has_location else None}
            entry["chain"], entry["by_lazyexec"] = self.chain(sys._getframe(1))
            how = self.eager_how(spec)
            if how:
                entry["eager_how"] = how
        except Exception as e:  # noqa: BLE001 - the recorder never breaks an import
            entry = {"module": name, "file": None, "chain": [], "by_lazyexec": False, "error": f"recorder: {e!r}"}
        stack = self.stacks.setdefault(self.ident(), [])
        entry["within"] = stack[-1]["module"] if stack else None
        entry["start"] = self.clock() - self.started
        stack.append(entry)
        self.entries.append(entry)
        t0 = self.clock()
        try:
            return self.original(spec)
        except BaseException as e:
            entry["failed"] = type(e).__name__
            raise
        finally:
            entry["seconds"] = self.clock() - t0
            if stack and stack[-1] is entry:
                stack.pop()

    @staticmethod
    def eager_how(spec) -> str | None:
        """Why a module with Python source that lazyexec's loader does not
        load lazily loads whole: "no-artifact" (the cold path: built in the
        background for the next start), "profile" (the usage profile saw the
        program use it whole), "policy" (not claimed: the never-lazy set,
        include/exclude, no opt-in marker). None for lazyexec's warm loader
        (settled at exit: see settle_eager_how) and for modules without source."""
        loader = spec.loader
        if getattr(loader, "_cold", False):
            return "no-artifact"
        if type(loader).__name__ == "LazySourceLoader":
            return "lazy-loader"  # settled at exit (write): lazy, nothing to defer, or no artifact yet
        if not (spec.origin or "").endswith(".py"):
            return None
        from lazyexec.importer import profile

        return "profile" if spec.name in profile._whole else "policy"

    def chain(self, frame) -> tuple[list[dict], bool]:
        """The program's frames, root first, and whether lazyexec's own code
        (activation, building a plan) is the innermost frame of all."""
        units = {id(code): (module, where, trigger)
                 for code, module, _filename, where, trigger in _lazyexec.materializing()}
        out = []
        innermost_tool = None
        while frame is not None and len(out) < MAX_FRAMES:
            code = frame.f_code
            filename = code.co_filename
            if innermost_tool is None and not filename.startswith("<frozen ") and filename != __file__:
                innermost_tool = filename.startswith(self.skip_prefixes)
            if not (filename.startswith("<frozen ") or filename in self.skip_files
                    or filename.startswith(self.skip_prefixes) or id(code) in self.skip_codes):
                g = frame.f_globals
                item = {"file": filename, "line": frame.f_lineno, "function": code.co_name,
                        "module": g.get("__name__") if isinstance(g, dict) else None}
                unit = units.get(id(code))
                if unit is not None:
                    item["kind"] = "unit"
                    item["unit"] = unit[1]
                    item["trigger"] = unit[2]
                elif code.co_name == "<module>":
                    item["kind"] = "top"
                else:
                    item["kind"] = "call"
                out.append(item)
            frame = frame.f_back
        out.reverse()
        return out, bool(innermost_tool)

    def lazily_loaded(self) -> list[str]:
        """Modules whose plan ran (runtime.loaded). A module the lazy loader
        ran as a whole (no artifact yet, nothing to defer, the usage profile)
        loaded eagerly."""
        from lazyexec import runtime

        return sorted(set(getattr(runtime, "loaded", ())))

    def settle_eager_how(self, lazy: list[str]) -> None:
        """What lazyexec's loader did with each module it was given: lazy
        (no entry), nothing to defer, or no artifact yet (loaded whole; the
        Python layer's cold path, or an artifact that could not be read)."""
        from lazyexec.importer import profile

        lazy_set, nothing = set(lazy), set(profile.nothing_to_defer)
        for e in self.entries:
            if e.get("eager_how") != "lazy-loader":
                continue
            if e["module"] in lazy_set:
                del e["eager_how"]
            else:
                e["eager_how"] = "nothing-to-defer" if e["module"] in nothing else "no-artifact"

    def write(self) -> None:
        if self.bootstrap._load_unlocked == self.load_unlocked:
            self.bootstrap._load_unlocked = self.original  # what writing imports is not the program's
        _lazyexec.set_recording(False)
        import json

        lazy = self.lazily_loaded()
        self.settle_eager_how(lazy)
        data = {
            "schema": SCHEMA,
            "argv": list(sys.argv),
            "executable": sys.executable,
            "python": sys.version.split()[0],
            "seconds": self.clock() - self.started,
            "preloaded": self.preloaded,
            "lazy": lazy,
            "modules": self.entries,
        }
        try:
            with open(self.path, "w", encoding="utf-8") as f:
                json.dump(data, f)
        except OSError as e:
            print(f"lazyexec why: cannot write {self.path}: {e}", file=sys.stderr)


def start(path: str) -> None:
    """Start recording (once per process); the record is written at exit."""
    global _recorder
    if _recorder is not None or not path:
        return
    rec = Recorder(path)
    rec.bootstrap._load_unlocked = rec.load_unlocked
    _lazyexec.set_recording(True)
    _recorder = rec
    import atexit

    atexit.register(rec.write)
