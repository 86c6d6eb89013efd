"""Modules an eager run would have loaded by now (DESIGN rule 7).

Deferring `import difflib` also defers every import difflib makes: eagerly
`heapq` is in `sys.modules` from then on, and tools that find an object's
module by name rely on that. `inspect.getmodule(obj)` answers
`sys.modules.get(obj.__module__)`, and doctest takes a test's globals from
it: test_heapq's doctest of `merge`, a function of a heapq loaded through
`import_fresh_module` (which takes it out of `sys.modules` again), runs in
the namespace of the heapq difflib loaded at start-up; with difflib's import
deferred, getmodule found nothing and the doctest ran with empty globals.

So while imports are deferred, `inspect.getmodule` answers a miss for a
module an eager run would have imported by importing it then, as the
deferred import would have. "Would have imported" is the static closure of
the pending deferred imports: each not-yet-loaded target's source, found
without importing anything, is scanned for its top-level imports (outside
function and class bodies and `if __name__ == "__main__":`, every branch
counted), and so on. A module outside the closure stays a miss, as eagerly.
The scan runs only on such a miss, never on the start-up path, and each file
is scanned once.

The patch point (lazyexec/inspect_patch.py) is installed when the first
module loads lazily, or when inspect finishes loading after that
(hook_getmodule in src/native/runtime/module_hooks.cpp); the wrapper keeps
getmodule's name, signature and `__wrapped__` (functools.wraps), and calls
`would_be_loaded` here only on a miss. The same patch point makes
`inspect.getattr_static` see a lazy module's pending names
(`_wrap_check_instance`).
"""

from __future__ import annotations

import sys

_imports_of: dict[str, tuple[str, ...]] = {}  # source path -> absolute module names it imports


_HEADERS = ("def ", "def\t", "async ", "class ", "class\t", "@")


def _scan(path: str, name: str, is_package: bool) -> tuple[str, ...]:
    """The modules `path`'s top level imports (and `from m import x`'s
    candidate submodule m.x), absolute. A line scanner, not a parse: this
    runs on every not-yet-loaded module of the closure, and building an AST
    costs milliseconds per file. Imports inside `def`/`class` bodies and
    `if __name__ == "__main__":` are skipped by indentation; lines inside
    triple-quoted strings are skipped; every other branch counts."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("latin-1")  # imports are ASCII; no decoding cost
    except OSError:
        return ()
    package = name if is_package else name.rpartition(".")[0]
    out: list[str] = []
    skip_above = -1  # indentation of the def/class header whose body is being skipped
    in_string = None  # the triple quote a string still open at the end of a line started with
    logical = ""  # a statement continued on the next line (open brackets, backslash)
    for raw in text.splitlines():
        if in_string is not None:
            if not raw.count(in_string) % 2:
                continue
            # The string ends here: what follows continues its statement.
            raw = raw[raw.rindex(in_string) + 3:] if logical else ""
            in_string = None
        for quote in ('"""', "'''"):
            if raw.count(quote) % 2:
                in_string = quote
                raw = raw[: raw.rindex(quote)]  # the code before the string
                break
        code, hash_, _ = raw.partition("#")
        if hash_ and ("'" in code or '"' in code):
            code = raw  # a '#' that may be inside a string: keep the line
        code = code.strip()
        if not code:
            continue
        if not logical:
            indent = len(raw) - len(raw.lstrip())
            if skip_above >= 0 and indent > skip_above:
                skip = True
            else:
                skip = False
                skip_above = -1
                if code.startswith(_HEADERS) or (indent == 0 and code.startswith("if __name__")):
                    skip_above = indent
        logical += code
        if logical.endswith("\\") or sum(logical.count(c) for c in "([{") > sum(logical.count(c) for c in ")]}"):
            logical = logical.rstrip("\\") + " "
            continue
        stmt, logical = logical, ""
        if not skip and stmt.startswith(("import ", "from ")):
            _add_imports(stmt, package, out)
    return tuple(out)


def _add_imports(stmt: str, package: str, out: list) -> None:
    """`import a.b as c, d` / `from .m import (x as y, z)` -> absolute names."""
    def names(part: str) -> list[str]:
        part = part.replace("(", " ").replace(")", " ")
        return [n.split()[0] for n in part.split(",") if n.split()]

    if stmt.startswith("import "):
        out.extend(names(stmt[7:]))
        return
    head, sep, tail = stmt[5:].partition(" import ")
    module = head.strip()
    if not sep or not module or module == "__future__":
        return
    level = len(module) - len(module.lstrip("."))
    module = module[level:]
    if level:
        parts = package.split(".") if package else []
        if level - 1 > len(parts):
            return
        base = ".".join(parts[: len(parts) - (level - 1)])
        module = f"{base}.{module}" if module and base else (module or base)
        if not module:
            return
    out.append(module)
    out.extend(f"{module}.{n}" for n in names(tail) if n != "*")


def _pending_targets() -> list[str]:
    from lazyexec.runtime.module_class import pending_import_targets

    return pending_import_targets()


_located: dict[str, str | None] = {}  # module name -> its source file, or None
_closure: tuple[frozenset, set] = (frozenset(), set())  # (roots, the closure computed from them)


def would_be_loaded(name: str) -> bool:
    """Whether `name` is in the static import closure of the imports still
    deferred (computed again only when those change)."""
    global _closure
    roots = frozenset(_pending_targets())
    if roots != _closure[0]:
        _closure = (roots, _close(roots))
    return name in _closure[1]


def _close(roots) -> set:
    from lazyexec.analyze.side_effects import _locate

    seen: set[str] = set()
    todo = list(roots)
    search = [p for p in sys.path if p]
    while todo:
        target = todo.pop()
        if target in seen:
            continue
        seen.add(target)
        parts = target.split(".")
        # Importing a.b.c imports a and a.b first.
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        if target in sys.modules:
            continue  # loaded: what it imports eagerly ran; its deferred imports are roots
        if target not in _located:
            _located[target] = _locate(target, search)
        path = _located[target]
        if path is None:
            continue  # not a module (from m import name), or not Python source: nothing more to follow
        imports = _imports_of.get(path)
        if imports is None:
            imports = _imports_of[path] = _scan(path, target, path.endswith("__init__.py"))
        todo.extend(imports)
    return seen

