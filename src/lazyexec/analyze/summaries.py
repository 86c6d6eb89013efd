"""Cross-module summaries: what a module defines, for the analysis of its
importers (docs/analyzer.md, "Cross-module summaries").

A per-module analysis sees `class Checker(base.Plugin)` with `base.Plugin`
defined elsewhere and must presume the worst: the base may register its
subclasses (`__init_subclass__`, a metaclass). The summary of `base` says
what `Plugin` is: a class whose creation of a subclass runs nothing but
`type` (the analyzer's `safe_base`: its decorators, bases and metaclass
known pure, whatever its body does, bound once, and neither it nor a base
defines `__init_subclass__`). Such a class is safe to subclass (a
knowledge-base `safe_bases` entry), and to read attributes of when its body
is pure too (`pure_bases`).

Summaries are computed at build time only (the compile stage, the background
builder, `lazyexec compile`, inline builds), from the imported module's
source found without importing it, with the imported module's own summaries
(base of base, to SUMMARY_DEPTH modules deep), and re-exports followed
(`from .lexer import RegexLexer` in a package `__init__`). Nothing of this
runs on the start-up path.

Invalidation. An importer's artifact is keyed on its own source; the
summaries it relied on are recorded beside the dependency, one small file per
edge in the cache directory (`summaries/DEP/IMPORTER`, holding the importer's
source path and the facts of DEP it used, name by name). When a dependency is built
again (its source changed, so its artifact went stale and the builder
rebuilds it) its facts are summarised afresh; every importer that relied on
a fact that no longer holds has its artifacts removed, so its next start loads it
eagerly and queues a rebuild with the new facts. The staleness window: from
the change of the dependency's source to the end of the first builder run
that rebuilds it, an importer may still run with a class deferred whose new
base registers subclasses (one start, or more if the dependency is never
loaded lazily: see docs/analyzer.md).
"""

from __future__ import annotations

import marshal
import os

from lazyexec import _lazyexec

SUMMARY_DEPTH = 3
# Reasons whose fix a summary can supply: the unit reads an external class
# as a base, an attribute of one, or calls an external function (also
# through a metaclass of this module whose __new__ calls it).
NEEDS_SUMMARY = frozenset({"impure-base", "impure-attribute", "impure-metaclass", "impure-call", "impure-decorator"})

_facts_cache: dict = {}  # (path, name) -> (stamp, facts, complete, depth computed at)

# The fact of a name bound once to a name the knowledge base knows, re-exported
# from module to module: ALIAS + the known dotted name.
ALIAS = "alias:"

# How facts compare: a "new" is also a "class", a "class" also a "base".
_AT_LEAST = {"base": {"base", "class", "new"}, "class": {"class", "new"}, "call": {"call", "func"}}


def holds(relied: str, current: str | None) -> bool:
    """Whether a fact an importer relied on still holds."""
    return current is not None and current in _AT_LEAST.get(relied, {relied})


def module_facts(path: str, name: str, is_package: bool, config, depth: int = 0, active: frozenset = frozenset(),
                 cut: list | None = None, fresh: bool = False) -> dict:
    """{name: fact} for the module at `path`: "new" for a class that is
    also pure to call, "class" for a class that is
    safe to subclass and to read attributes of, "base" for one safe to
    subclass only (its body runs code), "func" for a function pure to call,
    "call" for one pure to call that may return something callable (what
    it returns is not judged: no decorator factory),
    "alias:DOTTED" for a name bound to DOTTED, a name the knowledge base
    knows; re-exported names carry the fact of what they name. Cached per file
    stamp. A summary computed with the depth limit or a cycle cutting the
    summaries it read (`cut` set) may know less: cached as incomplete, and
    computed again when asked for `fresh` (the invalidation check)."""
    try:
        st = os.stat(path)
    except OSError:
        return {}
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _facts_cache.get((path, name))
    # An incomplete summary is reused only as deep as it was computed: one
    # computed near the depth limit (its own imports' summaries not read:
    # _pytest.warning_types met through another importer first, its
    # UnformattedWarning then no "new") is computed again when asked for
    # nearer the top, at most once per depth.
    if hit is not None and hit[0] == stamp and (hit[2] or not fresh and depth >= hit[3]):
        if not hit[2] and cut is not None:
            cut.append(True)
        return hit[1]
    if depth > SUMMARY_DEPTH or path in active:
        if cut is not None:
            cut.append(True)
        return {}
    mine: list = []  # truncations below this computation
    facts: dict = {}
    try:
        with open(path, "rb") as f:
            source = f.read()
        from lazyexec.analyze import analyze_source, knowledge_with_effects

        result = analyze_source(source, path, name, is_package, config)
        found, _ = external_facts(result["units"], path, name, is_package, config, depth + 1, active | {path}, mine)
        listers = _imported_subclass_listers(result["units"], path, name, is_package, config, depth + 1,
                                             active | {path}, mine)
        if listers:
            found.setdefault("subclasses", []).extend(listers)
        if found:
            result = _lazyexec.analyze(source, path, knowledge_with_effects(config, {}, (), found), name, is_package)
    except (OSError, SyntaxError, ValueError, RecursionError):
        _facts_cache[(path, name)] = (stamp, facts, True, depth)
        return facts
    for u in result["units"]:
        if u["kind"] == "class" and u.get("safe_base") and len(u["binds"]) == 1:
            # "class": its body is pure too (the unit is lazy-capable), so
            # reading its attributes runs no code of its making either.
            # "new": calling it, too, runs no code of its making (no
            # __init__ or __new__, plain bases: StashKey[T]() in pytest).
            facts[u["binds"][0]] = ("new" if u.get("plain_new") else "class") if u["verdict"] == "lazy" else "base"
        elif u["kind"] in ("def", "assign") and u.get("pure_call") and len(u["binds"]) == 1:
            # (an assignment: an instance whose call the knowledge base knows
            # pure, `hookimpl = HookimplMarker("pytest")`). A function that
            # may return something callable (it makes a function, lambda or
            # class, or returns a name, an attribute or a call's result) is
            # "call": pure to call, but what it returns is not judged, so
            # `@register(ast.Call)` is no pure decorator (pyupgrade's returned
            # closure appends to FUNCS).
            facts[u["binds"][0]] = "call" if u.get("may_return_callable") else "func"
    # "subclasses": a name whose call may reach code that lists subclasses
    # (the unit's "lists_subclasses"), through the names its definition and
    # its bodies read (over-approximated: a nested function's body counts as
    # run). Facts above win: a class safe to subclass stays one; calling it
    # runs no code of its making. (Reads of sys.modules deeper than the code
    # a statement names do not count, as in the stable-inputs plan: typing's
    # classes would all reach ForwardRef._evaluate's.)
    for n in _lister_names(result["units"]):
        facts.setdefault(n, "subclasses")
    # Re-exports: `from .lexer import RegexLexer` (bound once).
    counts: dict = {}
    for u in result["units"]:
        for b in u["binds"]:
            counts[b] = counts.get(b, 0) + 1
    search = None
    for u in result["units"]:
        if u["kind"] != "from-import" or len(u["binds"]) != 1 or len(u.get("imports", ())) != 2:
            continue
        bound = u["binds"][0]
        if counts.get(bound) != 1 or bound in facts:
            continue
        module, attr = u["imports"][0], u["imports"][1][len(u["imports"][0]) + 1:]
        if _known(config, u["imports"][1]):
            # A re-export of a name the knowledge base knows (`from typing
            # import final` in _pytest.compat, read as `@final` by pytest's
            # modules): that very name ("alias:typing.final"), which the
            # knowledge base knows pure or a pure base, and which rules
            # asking what it does (a class decorator returning its class)
            # read as the known name (knowledge_with_effects' aliases).
            facts[bound] = ALIAS + u["imports"][1]
            continue
        if search is None:
            from lazyexec.analyze import side_effects

            search, _ = side_effects._search_and_own(path, name, is_package)
        fact = _lookup(module, attr, search, config, depth + 1, active | {path}, mine)
        if fact:
            facts[bound] = fact
    _facts_cache[(path, name)] = (stamp, facts, not mine, depth)
    if mine and cut is not None:
        cut.append(True)
    return facts


def _lister_names(units: list[dict]) -> set:
    """The names bound by units whose code (or code they read, within the
    module) may list subclasses."""
    names: set = set()
    pending = list(units)
    while True:
        reaching = [u for u in pending if u.get("lists_subclasses") or
                    names & set(u.get("def_reads", ())) or names & set(u.get("call_reads", ()))]
        if not reaching:
            return names
        for u in reaching:
            names.update(u["binds"])
        done = {id(u) for u in reaching}
        pending = [u for u in pending if id(u) not in done]


def _imported_subclass_listers(units: list[dict], path: str, name: str | None, is_package: bool, config,
                               depth: int, active: frozenset, cut: list) -> list:
    """Dotted names of the "subclasses" callables of the modules this one imports
    whose source lists subclasses itself (one step: matplotlib._docstring's
    kwdoc loader calls matplotlib._api.recursive_subclasses), so that this
    module's summary finds its own names that reach them."""
    modules = {m for u in units if u.get("kind") in ("import", "from-import") for m in u.get("imports", ())}
    if not modules or depth > SUMMARY_DEPTH:
        return []
    from lazyexec.analyze import side_effects

    search, own = side_effects._search_and_own(path, name, is_package)
    out = []
    for mod in sorted(modules):
        if mod in own:
            continue
        dep = side_effects._locate(mod, search)
        if dep is None or dep == path or b"__subclasses__" not in (side_effects.source_words(dep) or ()):
            continue
        facts = module_facts(dep, mod, dep.endswith("__init__.py"), config, depth, active, cut)
        out.extend(f"{mod}.{n}" for n, fact in facts.items() if fact == "subclasses")
    return out


_known_answers: dict = {}  # (config, dotted name) -> fact, for one build process


def _known(config, dotted: str) -> str | None:
    """The fact the knowledge base gives a dotted name: "func" for a pure
    callable (pure), "class" for a pure base (pure_bases: safe to subclass
    and to read attributes of), else None."""
    key = (config, dotted)
    if key not in _known_answers:
        from lazyexec.analyze import knowledge_data

        data = knowledge_data(config)
        fact = None
        if any(_lazyexec.glob_match(p, dotted) for p in data["pure"]):
            fact = "func"  # (a name both lists hold, such as typing's, is called or decorated with more often)
        elif any(_lazyexec.glob_match(p, dotted) for p in data["pure_bases"]):
            fact = "class"
        _known_answers[key] = fact
    return _known_answers[key]


def _lookup(module: str, attr: str, search: list, config, depth: int, active: frozenset, cut: list) -> str | None:
    from lazyexec.analyze import side_effects

    path = side_effects._locate(module, search)
    if path is None:
        return None
    return module_facts(path, module, path.endswith("__init__.py"), config, depth, active, cut).get(attr)


def external_facts(units: list[dict], filename: str, module: str | None, is_package: bool, config,
                   depth: int = 0, active: frozenset = frozenset(), cut: list | None = None) -> tuple[dict, dict]:
    """({fact: dotted names}, {dependency path: (module, {name: fact relied on})}) for
    the external names that units kept eager for want of a summary
    (NEEDS_SUMMARY) read through an import: "class" (safe to subclass and to
    read attributes of), "base" (safe to subclass), "func" (pure to call)."""
    wanted: set = set()
    binders: dict = {}
    for u in units:
        for b in u["binds"]:
            binders.setdefault(b, []).append(u)
    for u in units:
        if u.get("verdict") == "eager" and u.get("reason") in NEEDS_SUMMARY:
            reads = set(u.get("def_reads", ()))
            wanted |= reads
            for n in reads:  # a local metaclass or base: what its methods call
                for b in binders.get(n, ()):
                    if b["kind"] == "class":
                        wanted.update(b.get("call_reads", ()))
    if not wanted:
        return {}, {}
    if depth > SUMMARY_DEPTH:
        if cut is not None:
            cut.append(True)  # what the summary of the module asking knows is incomplete
        return {}, {}
    from lazyexec.analyze import side_effects

    search, own = side_effects._search_and_own(filename, module, is_package)
    found: dict = {}
    deps: dict = {}
    for u in units:
        if u.get("kind") not in ("import", "from-import") or not u.get("imports") or not set(u["binds"]) & wanted:
            continue
        imports = u["imports"]
        if u["kind"] == "from-import" and len(imports) == 2:
            targets = [(imports[0], imports[1][len(imports[0]) + 1:], imports[1])]
        else:
            targets = [(m, None, m) for m in imports]
        for mod, attr, dotted in targets:
            if attr is not None and side_effects._locate(dotted, search) is not None:
                # `from pygments import unistring as uni`: a module, whose
                # attributes may be read as any imported module's, and whose
                # names carry their facts as `uni.Name` (pylint's `from
                # pylint import reporters` and `reporters.ReportsHandlerMixIn`).
                found.setdefault("module", []).append(dotted)
                mod, attr = dotted, None
            if mod in own:
                continue
            path = side_effects._locate(mod, search)
            if path is None:
                continue
            facts = module_facts(path, mod, path.endswith("__init__.py"), config, depth, active, cut)
            named = {attr: facts[attr]} if attr is not None and attr in facts else \
                {} if attr is not None else facts
            prefix = dotted if attr is None else dotted[: -len(attr) - 1]
            for n, fact in named.items():
                found.setdefault(fact, []).append(f"{prefix}.{n}")
            if named:
                deps.setdefault(path, (mod, {}))[1].update(named)
    return found, deps


# --- invalidation ------------------------------------------------------------

def _edge_dir(dep_path: str) -> str:
    from lazyexec.config import cache_dir

    return os.path.join(cache_dir(), "summaries", _lazyexec.fingerprint(os.path.abspath(dep_path)))


def record(importer: str, deps: dict) -> None:
    """The importer at path `importer` relied on these facts (path ->
    (module, {name: fact})): one file per edge, written atomically."""
    from lazyexec.config import caching_enabled
    from lazyexec.store import write_atomic

    if not caching_enabled():
        return
    for dep_path, (_module, relied) in deps.items():
        edge = os.path.join(_edge_dir(dep_path), _lazyexec.fingerprint(os.path.abspath(importer)))
        write_atomic(edge, marshal.dumps((os.path.abspath(importer), dict(relied))))


def invalidate_dependents(path: str, name: str, is_package: bool, config) -> int:
    """Called when the module at `path` is built: the artifacts of every
    importer that relied on a fact of it that no longer holds are removed
    (the next start rebuilds them). The number invalidated."""
    from lazyexec.config import caching_enabled

    if not caching_enabled():
        return 0
    directory = _edge_dir(path)
    try:
        edges = os.listdir(directory)
    except OSError:
        return 0  # nobody relied on this module's summary: the common case, one failed listdir
    current = module_facts(path, name, is_package, config, fresh=True)
    removed = 0
    for e in edges:
        edge = os.path.join(directory, e)
        try:
            with open(edge, "rb") as f:
                importer, relied = marshal.loads(f.read())
        except (OSError, EOFError, ValueError, TypeError):
            continue
        if isinstance(relied, dict) and all(holds(fact, current.get(n)) for n, fact in relied.items()):
            continue
        _remove_artifacts(importer)
        removed += 1
        try:
            os.unlink(edge)
        except OSError:
            pass
    return removed


def _remove_artifacts(source_path: str) -> None:
    """Every artifact of `source_path`, whatever its key (next to the `.pyc`
    and in the cache directory)."""
    from lazyexec import store

    for probe in (store.artifact_path(source_path, b"K"), store.fallback_path(source_path, b"K")):
        directory, base = os.path.split(probe)
        stem = base[: -len(".K" + store.SUFFIX)]
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for n in names:
            if n.startswith(stem + ".") and n.endswith(store.SUFFIX):
                try:
                    os.unlink(os.path.join(directory, n))
                except OSError:
                    pass
