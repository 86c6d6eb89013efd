"""Configuration: `[tool.lazyexec]` in the application's pyproject.toml, or
the TOML file named by LAZYEXEC_CONFIG (a file of its own, keys at top level
or under [tool.lazyexec]).

Unknown keys and wrong types are errors that name the file: a typo must not
silently change what runs lazily.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("marked", "all")

_LIST_KEYS = ("include", "exclude", "never", "pure", "pure_bases", "pure_metaclasses", "eager_imports")


class ConfigError(ValueError):
    """A configuration file is malformed; the message names the file."""


@dataclass(frozen=True)
class Config:
    mode: str = "marked"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    pure: tuple[str, ...] = ()
    pure_bases: tuple[str, ...] = ()
    pure_metaclasses: tuple[str, ...] = ()
    eager_imports: tuple[str, ...] = ()
    settle_threshold: int | None = None
    source: str | None = field(default=None, compare=False)


def _toml_load(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def from_table(table: dict, source: str) -> Config:
    known = set(_LIST_KEYS) | {"mode", "settle_threshold"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown [tool.lazyexec] key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values: dict = {"source": source}
    mode = table.get("mode", "marked")
    if mode not in MODES:
        raise ConfigError(f"{source}: mode must be one of {', '.join(repr(m) for m in MODES)}, not {mode!r}")
    values["mode"] = mode
    for key in _LIST_KEYS:
        v = table.get(key, [])
        if isinstance(v, str) or not all(isinstance(x, str) for x in v):
            raise ConfigError(f"{source}: {key} must be a list of strings")
        values[key] = tuple(v)
    threshold = table.get("settle_threshold")
    if threshold is not None and (not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0):
        raise ConfigError(f"{source}: settle_threshold must be a non-negative integer")
    values["settle_threshold"] = threshold
    return Config(**values)


def find_pyproject(start: Path) -> Path | None:
    for d in (start, *start.parents):
        candidate = d / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load(start: str | os.PathLike | None = None) -> Config:
    """The configuration in force for an application started in `start`."""
    explicit = os.environ.get("LAZYEXEC_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"LAZYEXEC_CONFIG names {path}, which is not a file")
        data = _toml_load(path)
        table = data.get("tool", {}).get("lazyexec", data) if "tool" in data else data
        return from_table(table, str(path))
    pyproject = find_pyproject(Path(start or os.getcwd()).resolve())
    if pyproject is None:
        return Config()
    table = _toml_load(pyproject).get("tool", {}).get("lazyexec")
    if table is None:
        return Config()
    return from_table(table, str(pyproject))
