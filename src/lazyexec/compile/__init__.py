"""The compile stage from Python: analysis and code objects (made in C++)
turned into a store.Plan the runtime executes."""

from __future__ import annotations

import marshal

from lazyexec import _lazyexec
from lazyexec.analyze import knowledge
from lazyexec.config import Config
from lazyexec.store import Plan


# Builtins through which function bodies reach module names dynamically: a
# unit whose code calls them may read any name once the module has settled.
DYNAMIC_NAMESPACE = frozenset({"globals", "vars", "eval", "exec", "__import__"})


# A module whose deferred units are only function definitions and constant
# assignments, this small in marshalled code, loads eagerly: unmarshalling
# and running that much code costs less than a lazy module's bookkeeping
# (reading its plan, the trapping namespace, its hooks, about 150 K
# instructions; 12 KiB of function code unmarshals in about as many). It is
# remembered as a module with nothing to defer (docs/startup.md). A module
# that asked for laziness (`__lazy_module__ = True`) keeps it.
MIN_DEFERRED_BYTES = 12 * 1024


def _worth_deferring(units: list[dict], codes: list) -> bool:
    # No import here: plans are built while other modules import (inline).
    size = 0
    for u, code in zip(units, codes):
        if u["verdict"] != "lazy" or code is None:
            continue
        if u["kind"] not in ("def", "assign"):
            return True  # imports and classes: what laziness is for
        if u["kind"] == "assign" and _lazyexec.unit_value(code)[0] == "code":
            return True  # a computed value (re.compile(...)): its cost is unknown
        size += len(marshal.dumps(code))
        if size >= MIN_DEFERRED_BYTES:
            return True
    return False


def _constant_value(code, name: str):
    """(marshal bytes of the value,) when the unit's code only binds `name`
    to a constant (`X = 3`, `NAMES = ("a", "b")`): stored as that value and
    materialized by unmarshalling it instead of running code. None otherwise."""
    kind, value = _lazyexec.unit_value(code)
    if kind != "constant":
        return None
    try:
        return (marshal.dumps(value),)
    except ValueError:  # not marshallable: keep the code
        return None


def _plain_function(code):
    """("function", marshal bytes of the function's code) when the unit's
    code is a plain `def` (nothing evaluated at definition time: no
    decorator, default, annotation or closure): the runtime makes the
    function from that code at first use, as MAKE_FUNCTION would, without
    unmarshalling and running unit code around it (issue 11: a unit's own
    code object, frame and scratch namespace cost more than the function).
    None otherwise."""
    kind, fn = _lazyexec.unit_value(code)
    return ("function", marshal.dumps(fn)) if kind == "function" else None


def _plain_class(code):
    """("class", marshal bytes of the class body's code, (base names)) when
    the unit's code is a plain `class C(B1, ...):` (no decorator, keyword or
    type parameter, bases plain names): the runtime builds the class from its
    body at first use as LOAD_BUILD_CLASS does, without unmarshalling and
    running unit code around it (issue 11: the unit's own code object, frame
    and scratch namespace). None otherwise."""
    kind, value = _lazyexec.unit_value(code)
    if kind != "class":
        return None
    body, _name, bases = value
    return ("class", marshal.dumps(body), tuple(bases))


def _group_forced(specs: list, codes: dict, forced: set) -> None:
    """Units the import itself runs (force and force_late steps) are stored
    together: one marshal stream of their code objects, shared by each
    member's payload as ("group", blob, index, kind, bases): kind is
    "function" (the blob's item is the function's own code), "class" (its
    body's code; bases its base names) or "code" (the unit's code). The first
    member to run unmarshals the whole stream and every member gets its code
    object (issue 11: a unit's code unmarshalled alone re-creates and
    re-interns every name and the file name that one stream shares, about
    twice the instructions; these units all run at import, so nothing is
    unmarshalled in vain). Rewrites `specs` in place."""
    members = sorted(i for i in forced if i in codes)
    if len(members) < 2:
        return
    blob = marshal.dumps(tuple(codes[i][1] for i in members))
    for index, i in enumerate(members):
        kind, _code, bases = codes[i]
        specs[i] = (("group", blob, index, kind, bases), *specs[i][1:])


def _already_loaded_spec(u: dict):
    """How the runtime binds a lazy import unit at the end of the import if its
    modules are in sys.modules by then: (unit, name, mode, modules, attr), mode
    "root" (`import a.b` binds a), "module" (`import a.b as c`) or "from"
    (`from a import b`)."""
    binds, imports = u["binds"], u["imports"]
    if len(binds) != 1 or not imports:
        return None
    if u["kind"] == "import":
        root = imports[0].partition(".")[0]
        if binds[0] == root and all(m.partition(".")[0] == root for m in imports):
            return (u["id"], binds[0], "root", tuple(imports), "")
        if len(imports) == 1:
            return (u["id"], binds[0], "module", (imports[0],), "")
        return None
    if u["kind"] == "from-import" and len(imports) == 2 and imports[1].startswith(imports[0] + "."):
        return (u["id"], binds[0], "from", (imports[0],), imports[1][len(imports[0]) + 1:])
    return None


def _blocked_guard_check(units: list[dict], filename: str):
    """Code run as the import ends: each deferred import guard (`try:
    import x` / `except ImportError:`, docs/analyzer.md) one of whose modules
    is blocked right now (`sys.modules[name] = None`, as
    `test.support.import_fresh_module(..., blocked=[...])` and programs
    disabling an accelerator do) runs now, by reading a name it binds: its
    import fails as it would have eagerly and the fallback binds, where at
    first use, after the block is lifted, the import would succeed. None
    when the module has no deferred guard."""
    checks = []
    for u in units:
        if u["verdict"] != "lazy" or u["kind"] != "try" or not u["binds"] or not u.get("imports"):
            continue
        names = sorted({".".join(m.split(".")[: i + 1]) for m in u["imports"] for i in range(m.count(".") + 1)})
        modules = "__import__('sys').modules"
        test = " or ".join(f"{modules}.get({n!r}, 0) is None" for n in names)
        # (Three lines: a guard spans at least four. A later `del` of the
        # name cancelled it: nothing to run then, as eagerly.)
        checks.append((u["line"], f"if {test}:\n    try: {u['binds'][0]}\n    except NameError: pass"))
    if not checks:
        return None
    code, at = "", 1
    for line, text in sorted(checks):
        code += "\n" * (line - at) + text + "\n"  # each on its guard's lines, for tracebacks
        at = line + 3
    return compile(code, filename, "exec", dont_inherit=True)


def build_plan(source: bytes, filename: str, module: str, is_package: bool, config: Config | None,
               require_marker: bool = False, pep810: bool = False) -> Plan | None:
    """A Plan, or None when nothing in the module can be deferred (or, with
    require_marker, when the parsed module has no `__lazy_module__ = True`:
    the loader's byte scan can be fooled by a string literal)."""
    result = _lazyexec.compile(source, filename, knowledge(config), module, is_package)
    if require_marker and result["lazy_marker"] != "true":
        if not (pep810 and result["lazy_modules"]):
            return None
        # PEP 810 compatibility: only the imports __lazy_modules__ names.
        result = _lazyexec.compile(source, filename, knowledge(config), module, is_package, pep810_only=True)
    elif not result["module_eager"]:
        # Imports of modules whose own import changes other modules stay
        # eager; re-exports presumed side-effect imports stay lazy
        # (analyze/side_effects.py).
        from lazyexec.analyze import build_knowledge, summaries

        kb, _, deps = build_knowledge(result["units"], filename, module, is_package, config)
        if kb is not None:
            result = _lazyexec.compile(source, filename, kb, module, is_package)
        if deps:
            # Cross-module summaries relied upon: rebuilt when they change.
            summaries.record(filename, deps)
    if module:
        # This module's own summary may have changed: importers that relied
        # on another one lose their artifacts (analyze/summaries.py).
        from lazyexec.analyze import summaries

        summaries.invalidate_dependents(filename, module, is_package, config)
    units = result["units"]
    if result["module_eager"] or not any(u["verdict"] == "lazy" for u in units):
        return None
    if result["lazy_marker"] != "true" and not _worth_deferring(units, result["code"]):
        return None
    binders: dict[str, list[int]] = {}
    for u in units:
        for n in u["binds"]:
            binders.setdefault(n, []).append(u["id"])
    def lazy_binder(name: str, before: int | None) -> int | None:
        ids = [b for b in binders.get(name, ()) if before is None or b < before]
        if ids and units[ids[-1]]["verdict"] == "lazy":
            return ids[-1]
        return None

    all_lazy = sorted(u["id"] for u in units if u["verdict"] == "lazy")
    specs: list = []
    codes: dict[int, tuple] = {}  # unit -> (kind, code object, bases) that a group may hold
    late: set[int] = set()  # lazy units to run when the import ends (see name_reads below)
    for u, code in zip(units, result["code"]):
        # Names a class's postponed annotations use are bound before it, as
        # eagerly: tools evaluate them with the module dict as eval globals,
        # which LOAD_NAME reads without the trap (unit.h, annotation_reads).
        reads = [*u["def_reads"], *u.get("annotation_reads", ())]
        deps = {b for n in reads if (b := lazy_binder(n, u["id"])) is not None}
        # Class bodies inside its functions read globals with LOAD_NAME, which
        # no trap sees (unit.h, name_reads): bound with the unit if bound
        # before it, else when the import ends (and for eager units, then).
        for n in u.get("name_reads", ()):
            earlier = lazy_binder(n, u["id"]) if u["verdict"] == "lazy" else None
            if earlier is not None:
                deps.add(earlier)
            else:
                late.update(b for b in binders.get(n, ()) if units[b]["verdict"] == "lazy")
        deps = sorted(deps)
        # Call-time reads may name a binding that comes later in the module.
        if any(n in DYNAMIC_NAMESPACE and n not in binders for n in u["call_reads"]):
            calls = all_lazy  # globals()[name] and friends: any name may be read
        else:
            calls = sorted({b for n in u["call_reads"] for b in binders.get(n, ()) if units[b]["verdict"] == "lazy"})
        binds = tuple(u["binds"])
        where = f"{u['line']} ({u['kind']} {', '.join(binds)})"
        # Lazy code stays marshalled until its unit first runs (seed idea:
        # leave code on disk until needed); marshal bytes are far smaller.
        # A constant is stored as its value (seed idea: constants as values).
        value = (_constant_value(code, u["binds"][0]) if code is not None and u["kind"] == "assign"
                 and len(u["binds"]) == 1 else None)
        if value is None and code is not None and u["kind"] == "def" and len(u["binds"]) == 1:
            value = _plain_function(code)
        if value is None and code is not None and u["kind"] == "class" and len(u["binds"]) == 1:
            value = _plain_class(code)
        payload = value or (marshal.dumps(code) if code is not None else None)
        if code is not None and u["verdict"] == "lazy":
            if value is None:
                codes[u["id"]] = ("code", code, None)
            elif not isinstance(value[0], str):
                pass  # a constant stored as its value: unmarshalled alone, cheaply
            elif value[0] == "function":
                codes[u["id"]] = ("function", marshal.loads(value[1]), None)
            elif value[0] == "class":
                codes[u["id"]] = ("class", marshal.loads(value[1]), value[2])
        specs.append((payload, binds if code is not None else (), tuple(deps), where, tuple(calls)))
    steps = [tuple(s) for s in result["steps"]]
    blocked = _blocked_guard_check(units, filename)
    if blocked is not None:
        steps.append(("run", blocked, len(units)))
    if late:
        steps.append(("force_late", tuple(sorted(late)), 0))
    _group_forced(specs, codes, {i for kind, ids, _ in steps if kind in ("force", "force_late") for i in ids})
    # Who reads what at definition time: when the import ends, the runtime
    # makes rebinding or deleting one of these names from outside (`mod.N =
    # v`, mock.patch) first run the pending units reading it, which eagerly
    # had run at import (runtime/module_hooks.cpp, "inputs").
    readers: dict[str, list[int]] = {}
    for u in units:
        if u["verdict"] == "lazy":
            for n in u["def_reads"]:
                readers.setdefault(n, []).append(u["id"])
    if readers:
        steps.append(("watch", tuple((n, tuple(ids)) for n, ids in sorted(readers.items())), 0))
    # Units whose namespace copy (attrs' class decorators) takes the names
    # bound so far as they are (analyze/unit.h, own_views).
    own_views = tuple(u["id"] for u in units if u["verdict"] == "lazy" and u.get("own_views"))
    if own_views:
        steps.append(("own_views", own_views, 0))
    # The modules each deferred import guard imports (`try: from _typing
    # import _idfunc` / `except ImportError:`): the usage profile's cost
    # model asks whether running it would load a module the run did not
    # (runtime::used_nearly_whole), which bind_loaded records for plain
    # imports only. (uid, None, "guard", modules): set_imports' spec shape.
    guards = tuple((u["id"], None, "guard", tuple(u["imports"])) for u in units
                   if u["verdict"] == "lazy" and u["kind"] == "try" and u.get("imports"))
    if guards:
        steps.append(("guard_imports", guards, 0))
    loaded = [spec for u in units if u["verdict"] == "lazy" and (spec := _already_loaded_spec(u)) is not None]
    if loaded:
        # First: the runtime learns the deferred imports before the eager
        # part runs, which may read a submodule one of them would have bound
        # (docutils' `writers._html_base` in a class's bases).
        steps.insert(0, ("bind_loaded", tuple(loaded), 0))
    if result["module_annotations"]:
        # Eagerly the module body starts by creating __annotations__ (the
        # compiler's SETUP_ANNOTATIONS); code may use it before any unit runs.
        steps.insert(0, ("annotations", None, 0))
    return Plan(specs, steps)
