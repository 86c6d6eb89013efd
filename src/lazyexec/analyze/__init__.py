"""The analyze stage from Python: knowledge base, module lookup, analysis.

The decisions are made in C++ (src/native/analyze); this layer finds sources,
loads the knowledge base and configuration, and returns plain dicts (the
schema is docs/explain-json.md).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from lazyexec import _lazyexec
from lazyexec.config import Config

KNOWLEDGE_FILE = Path(__file__).with_name("knowledge.toml")

_knowledge_cache: dict = {}


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    with open(path, "rb") as f:
        return tomllib.load(f)


def knowledge_data(config: Config | None = None) -> dict:
    """The shipped knowledge base extended by configuration."""
    data = _load_toml(KNOWLEDGE_FILE)
    kb = {
        "pure": list(data.get("pure", [])),
        "pure_bases": list(data.get("pure_bases", [])),
        "pure_metaclasses": list(data.get("pure_metaclasses", [])),
        "never_lazy": list(data.get("never_lazy", [])),
        "impure": dict(data.get("impure", {})),
    }
    if config is not None:
        kb["pure"] += config.pure
        kb["pure_bases"] += config.pure_bases
        kb["pure_metaclasses"] += config.pure_metaclasses
        kb["never_lazy"] += config.never + config.eager_imports
    return kb


def knowledge_hash(config: Config | None = None) -> str:
    """Identifies the knowledge in force; cached artifacts are keyed on it."""
    data = knowledge_data(config)
    text = repr(sorted((k, sorted(v.items()) if isinstance(v, dict) else sorted(v)) for k, v in data.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


@dataclass(frozen=True)
class Target:
    path: Path
    module: str | None
    is_package: bool


def find_module(name: str, path: list[str] | None = None) -> Target:
    """Locate a module's source without importing it or its parent packages."""
    search = path if path is not None else sys.path
    spec = None
    parts = name.split(".")
    for i in range(len(parts)):
        qual = ".".join(parts[: i + 1])
        spec = importlib.machinery.PathFinder.find_spec(qual, search)
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
    return Target(Path(origin), name, bool(spec.submodule_search_locations))


def module_name_for(path: Path) -> tuple[str | None, bool]:
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
    p = Path(target)
    if p.exists() or target.endswith(".py") or os.sep in target:
        if not p.is_file():
            raise LookupError(f"{target}: no such file")
        module, is_package = module_name_for(p)
        return Target(p, module, is_package)
    return find_module(target)


def analyze_target(target: Target, config: Config | None = None) -> dict:
    source = target.path.read_bytes()
    return analyze_source(source, str(target.path), target.module, target.is_package, config)
