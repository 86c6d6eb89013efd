"""The analyze stage from Python: knowledge base, module lookup, analysis.

The decisions are made in C++ (src/native/analyze); this layer finds sources,
loads the knowledge base and configuration, and returns plain dicts (the
schema is docs/explain-json.md).
"""

import marshal
import os
import sys

from lazyexec import _lazyexec
from lazyexec.config import Config

# This module is on the start-up path (the import hook keys artifacts on the
# knowledge base): it avoids pathlib, dataclasses, hashlib and the TOML
# parser unless a cache is cold.
KNOWLEDGE_FILE = os.path.join(os.path.dirname(__file__), "knowledge.toml")

_knowledge_cache: dict = {}
_parsed: dict | None = None


from lazyexec.store import _knowledge_bytes  # noqa: E402


def _parse_knowledge() -> dict:
    """knowledge.toml parsed, through a marshal cache keyed on its bytes."""
    global _parsed
    if _parsed is not None:
        return _parsed
    raw = _knowledge_bytes()
    from lazyexec.config import caching_enabled, knowledge_cache_path

    cache = knowledge_cache_path(raw)
    try:
        with open(cache, "rb") as f:
            _parsed = marshal.loads(f.read())  # one read: marshal.load(f) reads in small pieces
            return _parsed
    except (OSError, EOFError, ValueError, TypeError):
        pass
    from lazyexec.config import toml_loads

    _parsed = toml_loads(raw.decode("utf-8"), KNOWLEDGE_FILE)
    from lazyexec.store import write_atomic

    if caching_enabled():
        write_atomic(cache, marshal.dumps(_parsed))
    return _parsed


def knowledge_data(config: Config | None = None) -> dict:
    """The shipped knowledge base extended by configuration."""
    data = _parse_knowledge()
    kb = {
        "pure": list(data.get("pure", [])),
        "pure_bases": list(data.get("pure_bases", [])),
        "pure_metaclasses": list(data.get("pure_metaclasses", [])),
        "never_lazy": list(data.get("never_lazy", [])),
        "impure": dict(data.get("impure", {})),
        "effects": dict(data.get("effects", {})),
        "eager_imports_in": {k: list(v) for k, v in data.get("eager_imports_in", {}).items()},
        "namespace_copy_decorators": list(data.get("namespace_copy_decorators", [])),
        "abc_registries": list(data.get("abc_registries", [])),
    }
    if config is not None:
        kb["pure"] += config.pure
        kb["pure_bases"] += config.pure_bases
        kb["pure_metaclasses"] += config.pure_metaclasses
        kb["never_lazy"] += config.never + config.eager_imports
        kb["imports_only"] = config.defer == "imports"
    return kb


# The artifact key's part that names the knowledge in force lives with the
# store (the import hook needs it, not the analyzer's Python layer).
from lazyexec.store import PLAN_RULES, knowledge_hash  # noqa: E402,F401


def knowledge(config: Config | None = None):
    key = config
    kb = _knowledge_cache.get(key)
    if kb is None:
        kb = _lazyexec.knowledge(**knowledge_data(config))
        _knowledge_cache[key] = kb
    return kb


def analyze_source(source: bytes | str, filename: str = "<string>", module: str | None = None,
                   is_package: bool = False, config: Config | None = None) -> dict:
    """Analyze module source. Raises SyntaxError (with filename and line)."""
    return _lazyexec.analyze(source, filename, knowledge(config), module, is_package)


class Target:
    __slots__ = ("path", "module", "is_package")

    def __init__(self, path, module: str | None, is_package: bool):
        self.path = path
        self.module = module
        self.is_package = is_package


def find_module(name: str, path: list[str] | None = None) -> Target:
    """Locate a module's source without importing it or its parent packages."""
    search = path if path is not None else sys.path
    spec = None
    parts = name.split(".")
    for i in range(len(parts)):
        qual = ".".join(parts[: i + 1])
        spec = sys.modules["_frozen_importlib_external"].PathFinder.find_spec(qual, search)
        if spec is None:
            raise LookupError(f"no module named {qual!r} on the search path")
        if i < len(parts) - 1:
            if not spec.submodule_search_locations:
                raise LookupError(f"{qual!r} is not a package")
            search = list(spec.submodule_search_locations)
    assert spec is not None
    origin = spec.origin
    if not origin or not origin.endswith(".py"):
        raise LookupError(f"module {name!r} has no Python source ({origin or 'namespace package'})")
    from pathlib import Path

    return Target(Path(origin), name, bool(spec.submodule_search_locations))


def module_name_for(path) -> tuple[str | None, bool]:
    """Best-effort dotted name of a source file: walk up through packages."""
    path = path.resolve()
    is_package = path.name == "__init__.py"
    parts = [] if is_package else [path.stem]
    d = path.parent
    while (d / "__init__.py").is_file():
        parts.insert(0, d.name)
        d = d.parent
    if not parts or not all(p.isidentifier() for p in parts):
        return None, is_package
    return ".".join(parts), is_package


def resolve_target(target: str) -> Target:
    """A FILE path (anything that exists or ends in .py) or a dotted MODULE name."""
    from pathlib import Path

    p = Path(target)
    if p.exists() or target.endswith(".py") or os.sep in target:
        if not p.is_file():
            raise LookupError(f"{target}: no such file")
        module, is_package = module_name_for(p)
        return Target(p, module, is_package)
    return find_module(target)


def knowledge_with_effects(config: Config | None, effects: dict, effect_free=(), summary: dict | None = None):
    """The knowledge base plus `effects` (module -> reason, from
    side_effects.effect_imports) in the never-lazy set: imports of those
    modules stay eager; `effect_free` (side_effects.effect_free_imports):
    imports of those are re-exports, not side-effect imports; `summary`
    (summaries.external_facts, fact -> dotted names): other modules' classes
    safe to subclass and read attributes of ("class": pure_bases; "new": also
    pure to call, pure too), to
    subclass only ("base": safe_bases), functions pure to call ("func": pure;
    "call": pure, and not_factories, since what they return is not judged)
    and modules bound by `from pkg import module` ("module": pure, whose
    attributes are read as a module's); "alias:DOTTED": names bound to
    DOTTED, a name the knowledge base knows, known as it is (aliases);
    "subclasses": callables whose call may list subclasses (subclass_listers)."""
    summary = summary or {}
    if not effects and not effect_free and not summary:
        return knowledge(config)
    key = (config, tuple(sorted(effects)), tuple(sorted(effect_free)),
           tuple(sorted((k, tuple(sorted(v))) for k, v in summary.items())))
    kb = _knowledge_cache.get(key)
    if kb is None:
        data = knowledge_data(config)
        data["never_lazy"] = list(data["never_lazy"]) + sorted(effects)
        data["effect_free"] = sorted(set(effect_free))
        data["pure_bases"] = list(data["pure_bases"]) + sorted(set(summary.get("class", ())) | set(summary.get("new", ())))
        data["safe_bases"] = sorted(set(summary.get("base", ())))
        data["pure"] = list(data["pure"]) + sorted(set(summary.get("func", ())) | set(summary.get("call", ())) |
                                                   set(summary.get("module", ())) |
                                                   set(summary.get("new", ())))
        from lazyexec.analyze.summaries import ALIAS, _known

        aliases = {}
        for fact, names in summary.items():
            if fact.startswith(ALIAS):
                known = fact[len(ALIAS):]
                # what the knowledge base says of the known name (pure:
                # "func", pure_bases: "class"), for its other name too
                data["pure" if _known(config, known) == "func" else "pure_bases"].extend(sorted(set(names)))
                aliases.update((n, known) for n in names)
        data["aliases"] = aliases
        # A name the knowledge base knows (functools.singledispatch: its
        # nested dispatch lists subclasses, at call time of what it makes)
        # is what the knowledge base says.
        data["not_factories"] = sorted(set(summary.get("call", ())))
        data["subclass_listers"] = sorted(n for n in set(summary.get("subclasses", ())) if not _known(config, n))
        kb = _knowledge_cache[key] = _lazyexec.knowledge(**data)
    return kb


def never_lazy_matcher(config: Config | None):
    """name -> whether an import of module `name` is kept eager by the
    never-lazy set (as the analyzer's module_never_lazy(importing=True):
    "=pkg" entries name a module that is eager itself, not its imports)."""
    patterns = [p for p in knowledge_data(config)["never_lazy"] if not p.startswith("=")]
    answers: dict = {}  # asked for the same modules again and again while a tree is built

    def never_lazy(name: str) -> bool:
        hit = answers.get(name)
        if hit is None:
            parts = name.split(".")
            hit = answers[name] = any(_lazyexec.glob_match(p, ".".join(parts[:i]))
                                      for i in range(len(parts), 0, -1) for p in patterns)
        return hit

    return never_lazy


def pure_matcher(config: Config | None):
    """qualified name -> whether the knowledge base knows that callable pure
    (its `pure` globs), for the re-export check's decorators."""
    found = _pure_matchers.get(config)
    if found is not None:
        return found  # one per configuration: side_effects caches its scans per matcher
    patterns = list(knowledge_data(config)["pure"])
    answers: dict = {}

    def pure(name: str) -> bool:
        hit = answers.get(name)
        if hit is None:
            hit = answers[name] = any(_lazyexec.glob_match(p, name) for p in patterns)
        return hit

    _pure_matchers[config] = pure
    return pure


_pure_matchers: dict = {}


def build_knowledge(units: list[dict], filename: str, module: str | None, is_package: bool,
                    config: Config | None):
    """The knowledge base for a module's second analysis pass, or None when
    the first pass needs none: imports of modules whose import changes other
    modules stay eager (side_effects.effect_imports); imports presumed made
    for their side effect that are re-exports stay lazy
    (side_effects.effect_free_imports). Both read other modules' sources,
    at build time only; and what other modules' summaries show: classes
    safe to subclass, functions pure to call (summaries.external_facts). Returns (knowledge,
    effects, summary dependencies {path: (module, facts hash)})."""
    from lazyexec.analyze import side_effects, summaries

    free = []
    view = units
    if any(u.get("reason") == "side-effect-import" for u in units):
        free = side_effects.effect_free_imports(units, filename, module, is_package, never_lazy_matcher(config),
                                                pure_matcher(config))
        # The re-exports found free are deferred in the second pass: the
        # checks of deferred imports (import cycles among them) see them so.
        free_set = set(free)
        view = [{**u, "verdict": "lazy", "reason": "effect-free-import"}
                if u.get("reason") == "side-effect-import" and u.get("imports") and free_set.issuperset(u["imports"])
                else u for u in units]
    effects = side_effects.effect_imports(view, filename, module, is_package, pure_matcher(config))
    found, deps = summaries.external_facts(units, filename, module, is_package, config)
    if not effects and not free and not found:
        return None, effects, deps
    return knowledge_with_effects(config, effects, free, found), effects, deps


def explain_effects(result: dict, effects: dict) -> None:
    """Name the import-time call in the reason of imports kept eager for it."""
    from lazyexec.analyze import side_effects

    for u in result.get("units", ()):
        if u.get("reason") == "never-lazy-import":
            for m in u.get("imports", ()):
                if m in effects:
                    why = effects[m]
                    own_words = why.endswith((f"({side_effects.CYCLE})", f"{side_effects.FAILS})",
                                              f"({side_effects.EXTENSION_ORDER})"))
                    u["message"] = (f"eager: imports {why}" if own_words
                                    else f"eager: imports {why} (its import changes another module)")
                    break


def analyze_target(target: Target, config: Config | None = None) -> dict:
    source = target.path.read_bytes()
    result = analyze_source(source, str(target.path), target.module, target.is_package, config)
    if not result.get("module_eager"):
        kb, effects, _ = build_knowledge(result["units"], str(target.path), target.module, target.is_package, config)
        if kb is not None:
            result = _lazyexec.analyze(source, str(target.path), kb, target.module, target.is_package)
            explain_effects(result, effects)
    return result
