"""The compile stage from Python: analysis and code objects (made in C++)
turned into a store.Plan the runtime executes."""

from __future__ import annotations

from lazyexec import _lazyexec
from lazyexec.analyze import knowledge
from lazyexec.config import Config
from lazyexec.store import Plan


def build_plan(source: bytes, filename: str, module: str, is_package: bool, config: Config | None,
               require_marker: bool = False) -> Plan | None:
    """A Plan, or None when nothing in the module can be deferred (or, with
    require_marker, when the parsed module has no `__lazy_module__ = True`:
    the loader's byte scan can be fooled by a string literal)."""
    result = _lazyexec.compile(source, filename, knowledge(config), module, is_package)
    units = result["units"]
    if require_marker and result["lazy_marker"] != "true":
        return None
    if result["module_eager"] or not any(u["verdict"] == "lazy" for u in units):
        return None
    binders: dict[str, list[int]] = {}
    for u in units:
        for n in u["binds"]:
            binders.setdefault(n, []).append(u["id"])
    specs: list = []
    for u, code in zip(units, result["code"]):
        if code is None:
            specs.append(None)
            continue
        deps = []
        for name in u["def_reads"]:
            before = [b for b in binders.get(name, ()) if b < u["id"]]
            if before and units[before[-1]]["verdict"] == "lazy":
                deps.append(before[-1])
        binds = tuple(u["binds"])
        where = f"{filename}:{u['line']} ({u['kind']} {', '.join(binds)})"
        specs.append((code, binds, tuple(sorted(set(deps))), where))
    return Plan(specs, [tuple(s) for s in result["steps"]])
