"""Import hooks installed after modules loaded (docs/differences.md).

A deferred `import x` runs the import system when it materializes, and with
it every hook on `sys.meta_path` and `sys.path_hooks`, including hooks
installed after its module loaded. Such a hook may run code that reads a name
of a lazily loaded module; when that name is the very one the running import
is binding, the hook finds it unbound (pytest 8+: the assertion-rewriting
hook calls `_pytest.pathlib.fnmatch_ex` on every import, which reads
`fnmatch`, while `import fnmatch` of `_pytest.pathlib` is being resolved).
Eagerly every statement of a module had run before a hook that uses it could
exist: the hook was built from those names.

So when the hooks change (the runtime compares both lists before each unit
runs, import_hooks.cpp), each new hook is prepared once: with the new hooks
taken out of the lists, the pending units its code reaches run. Reaching is
followed through objects: the hook's class and its bases (every method),
functions and their closures, and for each, the globals its code reads (the
names of the code and of every nested code object) in its module's
namespace; functions and classes found there are followed in turn, and for a
module found there (`mod.f(...)`) the same names looked up on it (the
code's names include attribute names: a superset). Those
units run without the new hooks, as eagerly they ran before the hooks were
installed. A unit that fails stays pending; its error comes at first use.
lazyexec's own finders are never prepared.
"""

import sys

from lazyexec import _lazyexec

_FunctionType = type(lambda: None)
_CodeType = type((lambda: None).__code__)
_PyMethodType = type((lambda: None).__get__(0))
_ModuleType = type(sys)
_namespace = _ModuleType.__dict__["__dict__"].__get__  # a settled module's __dict__ would complete it


def _start(hook):
    """Where following a hook starts: a class or function itself, else the
    instance's class (its find_spec and every other method)."""
    return hook if isinstance(hook, (type, _FunctionType, _PyMethodType)) else type(hook)


def _ours(hook) -> bool:
    module = getattr(_start(hook), "__module__", "")
    return isinstance(module, str) and (module == "lazyexec" or module.startswith("lazyexec."))


def on_hooks_changed(before: tuple) -> None:
    """The runtime's callback: sys.meta_path or sys.path_hooks changed
    (`before`: the hooks it saw last)."""
    known = {id(h) for h in before}
    lists = (sys.meta_path, sys.path_hooks)
    new = [[h for h in lst if id(h) not in known and not _ours(h)] for lst in lists]
    if not any(new):
        return
    removed = []
    for lst, hooks in zip(lists, new):
        for hook in hooks:
            for i, item in enumerate(lst):
                if item is hook:
                    del lst[i]
                    removed.append((lst, i, hook))
                    break
    try:
        prepare([h for hooks in new for h in hooks])
    finally:
        for lst, i, hook in reversed(removed):
            if not any(item is hook for item in lst):
                lst.insert(min(i, len(lst)), hook)


def _names(code, out: set) -> None:
    out.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, _CodeType):
            _names(const, out)


def prepare(roots) -> int:
    """Run the pending units reachable from `roots` (hooks, functions,
    classes). Returns how many objects were followed."""
    seen: dict[int, object] = {}
    todo = [_start(r) for r in roots]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen[id(obj)] = obj
        if isinstance(obj, type):
            for cls in obj.__mro__:
                if cls is not object:
                    todo.extend(vars(cls).values())
        elif isinstance(obj, (classmethod, staticmethod)):
            todo.append(obj.__func__)
        elif isinstance(obj, property):
            todo.extend(f for f in (obj.fget, obj.fset, obj.fdel) if f is not None)
        elif isinstance(obj, _PyMethodType):
            todo.append(obj.__func__)
        elif isinstance(obj, _FunctionType):
            for cell in obj.__closure__ or ():
                try:
                    todo.append(cell.cell_contents)
                except ValueError:  # an empty cell
                    pass
            names: set = set()
            _names(obj.__code__, names)
            for value in _read(obj.__globals__, names):
                if isinstance(value, _ModuleType):
                    # `mod.f(...)`: the code's names (co_names holds attribute
                    # names too) looked up on the module, a superset.
                    todo.extend(_read(_namespace(value), names))
                else:
                    todo.append(value)
    return len(seen)


def _read(g: dict, names) -> list:
    """The functions, classes and modules `names` are bound to in `g`,
    running the units that bind them if they are pending."""
    out = []
    for name in names:
        try:
            found, value = _lazyexec.lookup(g, name)
        except Exception:  # noqa: BLE001 - the unit stays pending: its error comes at first use
            continue
        if found and isinstance(value, (type, _FunctionType, _ModuleType)):
            out.append(value)
    return out
