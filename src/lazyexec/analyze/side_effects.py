"""Imports of modules whose own import reaches into other modules (DESIGN
rule 7).

Deferring `import m` delays m's top-level side effects. Most of them only
build m's own namespace; some change another module: black's `black.nodes`
runs `pygram.initialize(CACHE_DIR)` at import, which binds the grammars
`blib2to3.pygram` is read for elsewhere, and `black.parsing` relies on having
imported `black.nodes` first. A module whose top level (outside function and
class bodies and `if __name__ == "__main__":`) has an expression statement
calling through a name it imported (`other.f(...)`, `sys.path.insert(...)`,
a registration under a string key), or assigning to an attribute or item of
one (`nodes.For.assigned_stmts = f` in astroid.protocols), is presumed to
change state outside itself at import, and imports of it stay eager (`never-lazy-import`, with
that call as the reason).

This runs at analysis time only (never on the start-up path): the imported
module's source is found without importing anything (the importer's own
sys.path root first, so a sibling in the same distribution is found from a
background builder too) and scanned with `ast`, cached per file. An
artifact is keyed on its own source, so a change in the imported module is
seen when the importer's artifact is next rebuilt.
"""

from __future__ import annotations

import _ast as ast  # not `ast`: this can run inline while `re` or `enum` is half imported
import os
import sys

# The standard library's top-level names (3.10+); decorators from there
# register nothing under a key (scan).
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))

_scanned: dict = {}  # (path, module name) -> (stamp, (effect, imports) or None)


def _callee(node: ast.expr) -> tuple[str | None, str]:
    """(root name, dotted text) of a call's function: a.b.c() -> ("a", "a.b.c")."""
    parts = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Call):
            parts.append("()")
            node = node.func
        elif isinstance(node, ast.Subscript):
            parts.append("[]")
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            text = ".".join(reversed(parts)).replace(".()", "()").replace(".[]", "[]")
            return node.id, text
        else:
            return None, ""


# Registrations keyed by the object registered (`copyreg.pickle(Pattern, f)`,
# `MutableSequence.register(deque)`, `atexit.register(f)`,
# `os.register_at_fork(...)`, `IntEnum._convert_(...)`) are observable only
# through that object, which nobody holds before the module runs. A string
# argument is a key others can look up without it (`register_pattern("name",
# cls)`): that stays an effect.
_BY_OBJECT = frozenset({"register", "unregister", "register_at_fork", "pickle", "_convert_"})


def _registers_own_objects(call, text: str) -> bool:
    last = text.rpartition(".")[2]
    if last == "_convert_":  # enum's: builds an enum of this module's own constants, in this module
        return True
    if last not in _BY_OBJECT:
        return False
    args = [*call.args, *(k.value for k in call.keywords)]
    return not any(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args)


def _own_logger(call, module: str) -> bool:
    """`logging.getLogger(__name__).addHandler(NullHandler())` and the like
    (or the logger of its own top-level package, by its literal name): the
    module configures the logger named after itself (logging's advice for
    libraries), state no other code reads before the module runs."""
    f = call.func
    if not isinstance(f, ast.Attribute) or not isinstance(f.value, ast.Call):
        return False
    inner = f.value
    name = inner.func.attr if isinstance(inner.func, ast.Attribute) else getattr(inner.func, "id", "")
    if name != "getLogger" or len(inner.args) != 1 or inner.keywords:
        return False
    arg = inner.args[0]
    if isinstance(arg, ast.Name):
        return arg.id == "__name__"
    return (bool(module) and isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            and arg.value.partition(".")[0] == module.partition(".")[0])


def _relabels(target) -> bool:
    """`X.__module__ = ...` (a dunder: relabelling an object for reprs and
    pickling) or `sys.modules[...] = ...` (an alias of a module, reached by
    importing under this module's own name): not state others read first."""
    if isinstance(target, ast.Attribute):
        return target.attr.startswith("__") and target.attr.endswith("__")
    v = target.value
    return (isinstance(v, ast.Attribute) and v.attr == "modules" and isinstance(v.value, ast.Name)
            and v.value.id == "sys")


_COMPARE = {ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
            ast.GtE: lambda a, b: a >= b, ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b}


def _literal(node):
    """An int, str or tuple of ints/strs written literally, else None."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, str):
        return node.value
    if isinstance(node, ast.Tuple):
        items = [_literal(e) for e in node.elts]
        return None if any(i is None for i in items) else tuple(items)
    return None


def _interpreter_fact(node):
    """The value of `sys.version_info` (also `[i]`, `[:n]`, `.major/.minor/
    .micro`) or `sys.platform`, read from the running interpreter (artifacts
    are per interpreter, and the scan runs under the program's own), else None."""
    index = None
    if isinstance(node, ast.Subscript):
        index, node = node.slice, node.value
    attr = None
    if (isinstance(node, ast.Attribute) and node.attr in ("major", "minor", "micro")
            and isinstance(node.value, ast.Attribute)):
        attr, node = node.attr, node.value
    if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "sys"):
        return None
    if node.attr == "platform" and index is None and attr is None:
        return sys.platform
    if node.attr != "version_info":
        return None
    value = tuple(sys.version_info)
    if attr is not None:
        return None if index is not None else getattr(sys.version_info, attr)
    if index is None:
        return value
    if isinstance(index, ast.Constant) and type(index.value) is int:
        return value[index.value] if -len(value) <= index.value < len(value) else None
    if (isinstance(index, ast.Slice) and index.lower is None and index.step is None
            and isinstance(index.upper, ast.Constant) and type(index.upper.value) is int):
        return value[: index.upper.value]
    return None


def _decide(test, sys_imported: bool):
    """True or False when `test` is a version or platform check (DESIGN's
    decidable conditions: comparisons of sys.version_info / sys.platform
    with literals, `sys.platform.startswith(...)`, `not`, `and`, `or`), else
    None. Only where the module imported `sys` itself."""
    if not sys_imported:
        return None
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        d = _decide(test.operand, sys_imported)
        return None if d is None else not d
    if isinstance(test, ast.BoolOp):
        parts = [_decide(v, sys_imported) for v in test.values]
        # One decided operand can decide the whole test for the question
        # asked here (does the branch run?), wherever it stands: `A and
        # False` is falsy whatever A is, `A or True` truthy. black.parsing's
        # `if sys.version_info < (3, 8) and not _IS_PYPY: ... sys.exit(1)`.
        absorbing = False if isinstance(test.op, ast.And) else True
        if absorbing in parts:
            return absorbing
        if any(p is None for p in parts):
            return None
        return all(parts) if isinstance(test.op, ast.And) else any(parts)
    if (isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) and test.func.attr == "startswith"
            and len(test.args) == 1 and not test.keywords):
        value, prefix = _interpreter_fact(test.func.value), _literal(test.args[0])
        if isinstance(value, str) and isinstance(prefix, (str, tuple)) and all(isinstance(p, str) for p in (prefix if isinstance(prefix, tuple) else (prefix,))):
            return value.startswith(prefix)
        return None
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _COMPARE:
        left, right = test.left, test.comparators[0]
        a, b = _interpreter_fact(left), _literal(right)
        if a is None or b is None:
            a, b = _literal(left), _interpreter_fact(right)
        if a is None or b is None or type(a) is not type(b) and not (isinstance(a, tuple) and isinstance(b, tuple)):
            return None
        try:
            return bool(_COMPARE[type(test.ops[0])](a, b))
        except TypeError:
            return None
    return None


def _cannot_fail(body) -> bool:
    """A `try` body that only imports built-in or frozen modules of the
    running interpreter (importlib's `import _frozen_importlib as
    _bootstrap`): it cannot raise, so its handlers never run. Artifacts are
    per interpreter, so asking the running one is sound."""
    import _imp

    if not body:
        return False
    for stmt in body:
        if not isinstance(stmt, ast.Import):
            return False
        for a in stmt.names:
            if "." in a.name or not (a.name in sys.builtin_module_names or _imp.is_frozen(a.name)):
                return False
    return True


def _is_main_guard(test: ast.expr) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def _attribute_targets(stmt):
    """(root name, dotted text) of each attribute or item an assignment or
    `del` writes (relabelling dunders left out)."""
    targets = stmt.targets if isinstance(stmt, (ast.Assign, ast.Delete)) else [stmt.target]
    for t in targets:
        for e in (t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t]):
            if isinstance(e, (ast.Attribute, ast.Subscript)) and not _relabels(e):
                yield _callee(e)


CALL_DEPTH = 3  # this module's functions followed from a top-level call


def _own_scope(body):
    """Every node of a function body that runs in the function's own scope:
    nested function and class bodies, lambdas and comprehensions are not
    entered (their names are theirs); a nested def's or class's name,
    decorators and defaults are."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            children = [*node.decorator_list, *node.args.defaults, *(d for d in node.args.kw_defaults if d)]
        elif isinstance(node, ast.ClassDef):
            children = [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
        elif isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            children = []
        else:
            children = list(_children(node))
        stack.extend(reversed(children))


def _children(node):
    for field in node._fields:
        value = getattr(node, field, None)
        if isinstance(value, ast.AST):
            yield value
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, ast.AST):
                    yield item


def scan(tree: ast.Module, strict: bool = True, module: str = "", pure=None) -> str | None:
    """The first top-level call through an imported name, as "calls X() at
    line N", or None. Not `strict` (the re-export check, reaches_effect):
    the handlers of `try` statements (hashlib logging a missing algorithm)
    are not looked at, and configuring the module's own logger
    (_own_logger) is no effect: deferring it is the difference deferring
    any `log = logging.getLogger(__name__)` makes, which rule 7 accepts.
    Also not `strict`: a decorator of a top-level function or class calling
    a name imported from outside the standard library (`@defun` in
    mpmath.functions.zetazeros, from its own package, writing another
    module's registry) is an effect unless `pure(qualified name)` says the
    knowledge base knows it pure. The standard library's decorators
    (`enum.global_enum`, `functools.lru_cache`, `atexit.register`: keyed by
    the object) register nothing others look up by key. The strict scan
    (imports whose names the importer reads) counts only a decorator call
    handed an imported object (registration_effect)."""
    imported: dict[str, str | None] = {}  # local name -> qualified name (None: relative)
    # Names bound by importing the module's own C accelerator (csv's `from
    # _csv import register_dialect`, ElementTree's `from _elementtree import
    # _set_factories`): name -> that private module. A call through one sets
    # up state of a private module that only this module exposes: deferring
    # it with this module's import is deferring this module's own set-up.
    accelerator: dict[str, str] = {}
    own_accelerator = "_" + module.rpartition(".")[2].lower() if module else None

    def unknown_import(root, text: str) -> bool:
        """`text` (a callee rooted at `root`) is imported from outside the
        standard library and not known pure."""
        if root not in imported:
            return False
        qualified = imported[root]
        return qualified is None or not (qualified.partition(".")[0] in _STDLIB
                                         or pure is not None and pure(qualified + text[len(root):]))

    def decorator_effect(stmt) -> str | None:
        for d in stmt.decorator_list:
            root, text = _callee(d.func if isinstance(d, ast.Call) else d)
            if unknown_import(root, text):
                return f"decorates {stmt.name} with {text}() at line {d.lineno}"
        return None

    # Strict: a decorator factory from outside the standard library handed
    # an object this module imported (`@receiver(setting_changed)`,
    # `@admin.register(Model)`, `@checks.register(Tags.models)`) registers
    # the definition with that object, which other modules read without
    # naming this one (django.test.signals' setting_changed receivers:
    # deferred with django.test.client's `from django.test import signals`,
    # override_settings(TIME_ZONE=...) left the connections' time zone as
    # it was). A decorator without such an argument (`@attr.s()`,
    # `@pytest.hookimpl()`) is left to the first use, as before.
    def registration_effect(stmt) -> str | None:
        for d in stmt.decorator_list:
            if not isinstance(d, ast.Call) or not unknown_import(*_callee(d.func)):
                continue
            text = _callee(d.func)[1]
            for a in (*d.args, *(k.value for k in d.keywords)):
                if not isinstance(a, ast.Call):
                    given, shown = _callee(a)
                    if given in imported:
                        return f"decorates {stmt.name} with {text}({shown}) at line {d.lineno}"
        return None

    # A class made by an imported metaclass from outside the standard library
    # (sympy's `class EmptySequence(SeqBase, metaclass=Singleton)`, whose
    # __init__ does `S.register(cls)`): the metaclass may register the class
    # where other modules look it up (series/__init__'s eager
    # `EmptySequence = S.EmptySequence`), also when nobody reads this module's
    # names. The standard library's (ABCMeta, EnumMeta) register nothing so.
    def metaclass_effect(stmt) -> str | None:
        for k in stmt.keywords:
            if k.arg != "metaclass":
                continue
            root, text = _callee(k.value)
            if root not in imported:
                continue
            qualified = imported[root]
            if qualified is not None and qualified.partition(".")[0] in _STDLIB:
                continue
            return f"defines {stmt.name} with metaclass {text} at line {stmt.lineno}"
        return None

    def calls_out(call, root, text: str) -> bool:
        """`call` (its callee `text`, rooted at `root`) goes through a name
        the module imported, and is not one of the calls that change no
        state others read first (a registration by object, the module's
        own logger outside the strict scan, its own accelerator's set-up)."""
        return (from_outside(root) and not _registers_own_objects(call, text)
                and not (not strict and _own_logger(call, module)))

    def from_outside(root) -> bool:
        """Imported, and not from the module's own accelerator."""
        return root in imported and (own_accelerator is None or accelerator.get(root) != own_accelerator)

    # Top-level functions of this module, by name (the last `def` seen so
    # far): a top-level call of one runs its body at import, so its body's
    # effects are the module's (ansible.plugins.loader's
    # `_configure_collection_loader()` installs a finder on sys.meta_path and
    # sets it on another module's class; deferred with the importers' `from
    # ansible.plugins.loader import X`, ansible-galaxy read that class first).
    own_functions: dict = {}

    def call_effect(call, line: int) -> str | None:
        """The effect of a top-level `f(...)` of a function of this module:
        in its body (and the bodies of this module's functions it calls so,
        up to CALL_DEPTH deep), an expression statement calling through a
        name the module imported, or an assignment to an attribute or item
        of one, where the function does not bind that name itself."""
        seen = set()

        def in_function(fn, depth: int) -> str | None:
            if fn.name in seen:
                return None
            seen.add(fn.name)
            args = fn.args
            local = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a}
            declared = set()
            for node in _own_scope(fn.body):
                if isinstance(node, (ast.Global, ast.Nonlocal)):
                    declared.update(node.names)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                    local.add(node.id)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    local.add(node.name)
                elif isinstance(node, ast.alias):
                    local.add(node.asname or node.name.partition(".")[0])
                elif isinstance(node, ast.ExceptHandler) and node.name:
                    local.add(node.name)
            local -= declared

            for node in _own_scope(fn.body):
                if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                    c = node.value
                    root, text = _callee(c.func)
                    if root not in local and calls_out(c, root, text):
                        return f"calls {fn.name}() at line {line}, which calls {text}() at line {node.lineno}"
                    if (isinstance(c.func, ast.Name) and root not in local and root in own_functions
                            and depth < CALL_DEPTH):
                        found = in_function(own_functions[root], depth + 1)
                        if found:
                            return f"calls {fn.name}() at line {line}, which " + found.partition(", which ")[2]
                elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
                    for root, text in _attribute_targets(node):
                        if root not in local and from_outside(root):
                            return f"calls {fn.name}() at line {line}, which sets {text} at line {node.lineno}"
            return None

        if isinstance(call.func, ast.Name) and call.func.id in own_functions:
            return in_function(own_functions[call.func.id], 1)
        return None

    def walk(body) -> str | None:
        for stmt in body:
            if isinstance(stmt, ast.Import):
                for a in stmt.names:
                    bound = a.asname or a.name.partition(".")[0]
                    imported[bound] = a.name if a.asname else bound
                    accelerator.pop(bound, None)
                    if "." not in a.name:
                        accelerator[bound] = a.name.lower()
            elif isinstance(stmt, ast.ImportFrom):
                if stmt.module != "__future__":
                    for a in stmt.names:
                        if a.name != "*":
                            bound = a.asname or a.name
                            imported[bound] = (None if stmt.level or not stmt.module
                                               else f"{stmt.module}.{a.name}")
                            accelerator.pop(bound, None)
                            if stmt.level == 0 and stmt.module and "." not in stmt.module:
                                accelerator[bound] = stmt.module.lower()
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                imported.pop(stmt.name, None)
                if isinstance(stmt, ast.ClassDef):
                    own_functions.pop(stmt.name, None)
                else:
                    own_functions[stmt.name] = stmt
                if stmt.decorator_list:
                    found = decorator_effect(stmt) if not strict else registration_effect(stmt)
                    if found:
                        return found
                if isinstance(stmt, ast.ClassDef):
                    found = metaclass_effect(stmt)
                    if found:
                        return found
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, (ast.Call, ast.Await)):
                call = stmt.value if isinstance(stmt.value, ast.Call) else stmt.value.value
                if isinstance(call, ast.Call):
                    root, text = _callee(call.func)
                    if calls_out(call, root, text):
                        return f"calls {text}() at line {stmt.lineno}"
                    found = call_effect(call, stmt.lineno)
                    if found:
                        return found
            elif isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
                # `nodes.For.assigned_stmts = f` (astroid.protocols): sets
                # state on another module's objects.
                for root, text in _attribute_targets(stmt):
                    if root in imported:
                        return f"sets {text} at line {stmt.lineno}"
            elif isinstance(stmt, ast.If):
                if _is_main_guard(stmt.test):
                    continue
                # A version or platform branch not taken never runs
                # (attrs' `if sys.version_info < (3, 7): warnings.warn(...)`).
                taken = _decide(stmt.test, "sys" in imported)
                found = (walk(stmt.body) if taken is not False else None) or (walk(stmt.orelse) if taken is not True else None)
                if found:
                    return found
            elif isinstance(stmt, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                handlers = [h.body for h in stmt.handlers] if strict and not _cannot_fail(stmt.body) else []
                for part in (stmt.body, *handlers, stmt.orelse, stmt.finalbody):
                    found = walk(part)
                    if found:
                        return found
            elif isinstance(stmt, (ast.With, ast.For, ast.While)):
                found = walk(stmt.body)
                if found:
                    return found
        return None

    return walk(tree.body)


def imports_of(tree: ast.Module, name: str, is_package: bool, functions: bool = False) -> list[str]:
    """Absolute names of the modules the top level of module `name` imports
    when it runs (function bodies excluded: they run later; included with
    `functions`, what calling its functions may import); `from m import
    x` lists m and m.x (x may be a submodule)."""
    out: list[str] = []
    package = name if is_package else name.rpartition(".")[0]
    # A function of this module called by a top-level statement of its own
    # (sqlalchemy's `__go(locals())`) runs its imports at import: listed
    # where the call stands (not the functions it calls in turn). So does a
    # class of this module instantiated there, through its __new__ and
    # __init__ (twisted.logger._logger's `_log = Logger()`, whose __init__
    # imports ._global, and through it ._filter and ._observer).
    defs = {} if functions else {s.name: s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
    classes = {} if functions else {s.name: s for s in tree.body if isinstance(s, ast.ClassDef)}
    ran: set[str] = set()

    def called_body(stmt) -> list | None:
        """The statements a top-level call of this module's own function or
        class runs, the first time it is called; None otherwise."""
        call = stmt.value if isinstance(stmt, (ast.Expr, ast.Assign, ast.AnnAssign)) else None
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.func.id in ran:
            return None
        name = call.func.id
        if name in defs:
            ran.add(name)
            return defs[name].body
        if name in classes:
            ran.add(name)
            return [s for m in classes[name].body
                    if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and m.name in ("__new__", "__init__")
                    for s in m.body]
        return None

    # Imports are statements: only statement lists are walked (function
    # bodies excluded, class bodies included: they run), not every node.
    def visit(body) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and not functions:
                continue
            body = called_body(stmt) if defs or classes else None
            if body is not None:
                visit(body)
                continue
            if isinstance(stmt, ast.Import):
                out.extend(a.name for a in stmt.names)
            elif isinstance(stmt, ast.ImportFrom):
                base = stmt.module or ""
                if stmt.level:
                    parts = package.split(".") if package else []
                    if stmt.level - 1 > len(parts):
                        continue
                    parts = parts[: len(parts) - (stmt.level - 1)]
                    base = ".".join(p for p in (*parts, base) if p)
                if not base or base == "__future__":
                    continue
                out.append(base)
                out.extend(f"{base}.{a.name}" for a in stmt.names if a.name != "*")
            elif isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
                visit(stmt.orelse)  # `if TYPE_CHECKING:` never runs its body
            else:
                for field in _BODIES:
                    inner = getattr(stmt, field, None)
                    if isinstance(inner, list):
                        if field == "handlers" or field == "cases":
                            for h in inner:
                                visit(h.body)
                        else:
                            visit(inner)

    visit(tree.body)
    return out


# The fields of compound statements that hold statements (match cases and
# except handlers hold them one level down).
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def _is_type_checking(test) -> bool:
    """`TYPE_CHECKING` or `<module>.TYPE_CHECKING` (typing's, false at run time)."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING" and isinstance(test.value, ast.Name)


def _facts(path: str, name: str, strict: bool = True, pure=None) -> tuple[str | None, list[str]] | None:
    """(effect, imports) of the module at `path`, cached per file stamp;
    None when it cannot be read or parsed. `strict`, `pure`: as scan's."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    key = (path, name, strict, pure)
    hit = _scanned.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        with open(path, "rb") as f:
            tree = compile(f.read(), path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        facts = (scan(tree, strict, name, pure), imports_of(tree, name, os.path.basename(path) == "__init__.py"))
    except (OSError, SyntaxError, ValueError, RecursionError):
        facts = None
    _scanned[key] = (stamp, facts)
    return facts


_call_imports: dict = {}  # (path, module name, function) -> (stamp, imports)


def call_imports(path: str, name: str, function: str) -> list[str]:
    """The modules that calling `function`, a top-level function of module
    `name` (at `path`), imports in its body (the functions it calls in turn
    are not followed). Cached per file stamp."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _call_imports.get((path, name, function))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    out: list[str] = []
    try:
        with open(path, "rb") as f:
            tree = compile(f.read(), path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == function:
                body = ast.Module(body=stmt.body, type_ignores=[])
                out = imports_of(body, name, os.path.basename(path) == "__init__.py", functions=True)
    except (OSError, SyntaxError, ValueError, RecursionError):
        out = []
    _call_imports[(path, name, function)] = (stamp, out)
    return out


def _called_modules(filename: str, units: list[dict], search: list[str]) -> tuple[dict[int, set], set[int]]:
    """{unit id: modules} for the eager statements other than imports that
    call a function of a module this module imports (`evalf.
    _create_evalf_table()`, or `f()` after `from m import f`): the modules
    that function's body imports (call_imports). And the ids of the
    deferred import units whose names these statements read as they run:
    reading one runs the import at import (pandas.io.excel's
    `register_writer(_OpenpyxlWriter)` imports pandas.io.excel._openpyxl,
    after its deferred `from pandas.io.excel._base import ...`). Such an
    import counts as run in its own place: eagerly it ran there, before the
    deferred imports below it."""
    module_of: dict[str, list[str]] = {}
    imported_by: dict[str, list[str]] = {}  # a deferred import's bound name -> the modules it imports
    for u in units:
        if u.get("kind") in ("import", "from-import") and u.get("imports") and len(u.get("binds") or ()) == 1:
            bound = u["binds"][0]
            if u["kind"] == "from-import":
                module_of[bound] = list(u["imports"][:2])
            else:  # `import a.b` binds a; `import a.b as x` binds a.b
                first = u["imports"][0]
                module_of[bound] = [first.partition(".")[0] if bound == first.partition(".")[0] else first]
            if u.get("verdict") == "lazy":
                imported_by[bound] = u["id"]
    eager = [u for u in units if u.get("verdict") == "eager" and u.get("kind") not in ("import", "from-import", "try")]
    if not (module_of or imported_by) or not eager:
        return {}, set()
    try:
        with open(filename, "rb") as f:
            tree = compile(f.read(), filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (OSError, SyntaxError, ValueError, RecursionError):
        return {}, set()
    out: dict[int, set] = {}
    read: set[int] = set()
    for u in eager:
        idx = u.get("statements") or ()
        if len(idx) != 1 or not 0 <= idx[0] < len(tree.body):
            continue
        stmt = tree.body[idx[0]]
        if getattr(stmt, "lineno", None) != u.get("line"):
            continue
        mods: set[str] = set()
        todo: list = [stmt]
        while todo:  # ast.walk without `ast` (see the import above)
            node = todo.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                # What runs now: decorators and defaults, not the body.
                todo.extend(getattr(node, "decorator_list", ()))
                todo.extend(d for d in (*node.args.defaults, *node.args.kw_defaults) if d is not None)
                continue
            todo.extend(_children(node))
            # (A condition decided at compile time runs nothing: its taken
            # branch is analysed as top-level statements of their own.)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in imported_by \
                    and u.get("reason") != "decided-branch":
                read.add(imported_by[node.id])
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in module_of:
                target = module_of[f.value.id][-1], f.attr  # `mod.f()`: mod a module this module imports
            elif isinstance(f, ast.Name) and f.id in module_of and len(module_of[f.id]) == 2:
                target = module_of[f.id][0], module_of[f.id][1].rpartition(".")[2]  # `from m import f`; `f()`
            else:
                continue
            path = _locate(target[0], search)
            if path:
                mods.update(call_imports(path, target[0], target[1]))
        if mods:
            out[u["id"]] = mods
    return out, read


def module_effect(path: str, name: str = "", pure=None) -> str | None:
    facts = _facts(path, name, pure=pure)
    return facts[0] if facts else None


# How many modules the re-export check may visit from one import: past it the
# import is presumed made for its side effect (as without the check).
REACH_LIMIT = 2000


def closure(names: list[str], search: list[str], own: set[str]) -> set[str]:
    """The modules importing `names` runs (bounded by REACH_LIMIT)."""
    seen: set[str] = set(own)
    todo = [".".join(n.split(".")[: i + 1]) for n in names for i in range(n.count(".") + 1)]
    while todo and len(seen) <= REACH_LIMIT:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _locate(name, search)
        facts = _facts(path, name, strict=False) if path else None
        if facts:
            todo.extend(m for m in facts[1] if m not in seen)
    return seen


def reaches_effect(names: list[str], search: list[str], own: set[str], never_lazy, pure=None) -> str | None:
    """Why importing `names` (and the packages above them) may change state
    outside the imported modules, or None when it cannot: every module the
    import runs, following the top-level imports of each, has Python source
    whose top level calls through no imported name and sets nothing on one
    (scan; error handlers of `try` aside). Built-in, frozen and extension
    modules count as effect-free unless in the never-lazy set (readline); a name that is not a module (the
    attribute of a `from m import x`) adds nothing. Modules of the importer's
    own package path (`own`) are running already."""
    seen: set[str] = set(own)
    todo: list[str] = []
    for n in names:
        parts = n.split(".")
        todo.extend(".".join(parts[: i + 1]) for i in range(len(parts)))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if len(seen) > REACH_LIMIT:
            return f"imports more than {REACH_LIMIT} modules"
        path = _locate(name, search)
        if path is None:
            if never_lazy(name) and _is_binary_module(name, search):
                return f"imports {name}, kept eager for its import-time side effects"
            if _foreign_extension(name, search):
                return f"imports {name}, an extension module outside the standard library, whose import may change others"
            continue
        facts = _facts(path, name, strict=False, pure=pure)
        if facts is None:
            return f"imports {name}, whose source cannot be parsed"
        if facts[0]:
            return f"imports {name}, which {facts[0]}"
        todo.extend(m for m in facts[1] if m not in seen)
    return None


def _is_binary_module(name: str, search: list[str]) -> bool:
    """A built-in, frozen or extension module (not an attribute of one)."""
    try:
        import _imp

        if name in sys.builtin_module_names or _imp.is_frozen(name):
            # The import system's own (_frozen_importlib_external, zipimport)
            # are loaded at every start: importing them binds a name.
            return name not in sys.modules
        parent, _, _ = name.rpartition(".")
        if parent:
            return False  # extension submodules of never-lazy packages: none known
        return sys.modules["_frozen_importlib_external"].PathFinder.find_spec(name, search) is not None
    except Exception:  # noqa: BLE001
        return True


def _foreign_extension(name: str, search: list[str]) -> bool:
    """Whether `name` is an extension module outside the standard library.
    Its import runs code no scan can read, and such code changes other
    modules: pandas' `import pandas._libs.pandas_datetime  # noqa: F401`
    sets the C API capsule on the `pandas` package that its other extension
    modules import (`PyCapsule_Import`). The standard library's own
    (lib-dynload) change nothing outside themselves."""
    origin = _origin(name, search)
    suffixes = sys.modules["_frozen_importlib_external"].EXTENSION_SUFFIXES
    if not origin or not origin.endswith(tuple(suffixes)):
        return False
    stdlib = os.path.dirname(os.__file__) + os.sep
    inside = os.path.abspath(origin)
    return not (inside.startswith(stdlib) and not any(
        part in ("site-packages", "dist-packages") for part in inside[len(stdlib):].split(os.sep)))


def _root_of(filename: str, module: str | None, is_package: bool) -> str | None:
    """The sys.path entry the importer was found on: its file minus its name."""
    if not module or not filename:
        return None
    d = os.path.dirname(os.path.abspath(filename))
    for _ in range(module.count(".") + (1 if is_package else 0)):
        d = os.path.dirname(d)
    return d


_located: dict = {}  # (name, search path) -> spec origin or None, for one build process


def _locate(name: str, search: list[str]) -> str | None:
    """The source file of `name`, without importing it or its packages (nor
    pathlib: this can run inline while `re` is half imported)."""
    origin = _origin(name, search)
    return origin if origin and origin.endswith(".py") else None


def _origin(name: str, search: list[str]) -> str | None:
    """The origin of `name`'s spec (a file, "built-in", ...). Cached: the
    re-export check and the summaries ask for the same modules again and
    again while a builder builds many modules (a module added while it runs
    is found by the next builder)."""
    key = (name, tuple(search))
    if key in _located:
        return _located[key]
    found = _origin_uncached(name, search)
    _located[key] = found
    return found


def _origin_uncached(name: str, search: list[str]) -> str | None:
    finder = sys.modules["_frozen_importlib_external"].PathFinder
    spec = None
    parts = name.split(".")
    for i in range(len(parts)):
        try:
            spec = finder.find_spec(".".join(parts[: i + 1]), search)
            if spec is None:
                return None
            if i < len(parts) - 1:
                # A namespace package's path recomputes itself from its
                # parent in sys.modules (KeyError when it is not imported).
                search = list(spec.submodule_search_locations or ())
                if not search:
                    return None
        except Exception:  # noqa: BLE001 - a lookup that fails finds nothing: the import stays as analysed
            return None
    return spec.origin if spec is not None else None


def _search_and_own(filename: str, module: str | None, is_package: bool) -> tuple[list[str], set[str]]:
    root = _root_of(filename, module, is_package)
    search = ([root] if root else []) + [p for p in sys.path if p and p != root]
    own = set()
    if module:
        parts = module.split(".")
        own = {".".join(parts[: i + 1]) for i in range(len(parts))}
    return search, own


def effect_free_imports(units: list[dict], filename: str, module: str | None, is_package: bool,
                        never_lazy, pure=None) -> list[str]:
    """The imported names of the units the analysis presumed side-effect
    imports (`side-effect-import`) whose import cannot change anything
    outside the imported modules (reaches_effect): re-exports, which may stay
    lazy. `never_lazy(name)` answers the knowledge base's never-lazy set,
    `pure(name)` whether it knows a callable pure (scan's decorators)."""
    search, own = _search_and_own(filename, module, is_package)
    free: list[str] = []
    done = set(own)  # modules an earlier eager import of this module has run already
    for u in units:
        if u.get("verdict") == "eager" and u.get("kind") in ("import", "from-import") and u.get("imports") \
                and u.get("reason") != "side-effect-import":
            done |= closure(list(u["imports"]), search, done)
        if u.get("reason") != "side-effect-import" or not u.get("imports"):
            continue
        if reaches_effect(list(u["imports"]), search, done, never_lazy, pure) is None:
            free.extend(u["imports"])
    return free


def effect_imports(units: list[dict], filename: str, module: str | None, is_package: bool,
                   pure=None) -> dict[str, str]:
    """{module: reason} for the modules the lazy import units of this
    analysis would import whose own import reaches into other modules.
    `pure`: the knowledge base's pure names (scan)."""
    search, own = _search_and_own(filename, module, is_package)
    found: dict[str, str] = {}
    seen: set[str] = set()
    found.update(missing_imports(units, search, own))
    for target in _deferred_imports(units):
        parts = target.split(".")
        for i in range(len(parts)):
            name = ".".join(parts[: i + 1])
            if name in seen or name in own:
                continue
            seen.add(name)
            path = _locate(name, search)
            if path is None:
                break  # not a module (a from-import's attribute) or not found: nothing below it either
            effect = module_effect(path, name, pure)
            if effect:
                found[name] = f"{name} {effect}"
    called, read = _called_modules(filename, units, search)
    found.update(cycle_imports(units, search, own, found, called,
                               outer_imports(module, search) if module and not is_package else None, read))
    if module and is_package:
        found.update(extension_order_imports(units, search, own, module, found))
    found.update(deferred_cycle_imports(units, search, own, found))
    return found


def deferred_cycle_imports(units: list[dict], search: list[str], own: set[str], eager_modules) -> dict[str, str]:
    """{module: reason} for a deferred import D whose chain enters an import
    cycle at one module while a later deferred import M of this module
    enters it at another. Eagerly D's chain starts the cycle; deferred,
    whichever name is used first decides, and M's chain may start it
    elsewhere and meet a module of the cycle half-initialized (nbformat's
    `from . import v4`, then `from . import reader`, its submodules loaded
    eagerly: using `reader` first ran reader, then validator, whose `from
    .reader import get_version` met reader half-initialized). D stays
    eager, in its place: the cycle runs at import in eager order, and M
    finds it complete whenever it is used. (A later import that runs at
    import is cycle_imports' case.)"""
    def modules(u: dict) -> list[str]:
        return list(u["imports"][:2] if u["kind"] == "from-import" else u["imports"])

    def deferred(u: dict) -> bool:
        return (u.get("verdict") == "lazy" or u.get("reason") == "absorbed") and \
            not any(m in eager_modules for m in modules(u))

    rows = [u for u in units if u.get("kind") in ("import", "from-import") and u.get("imports")]
    found: dict[str, str] = {}
    running = set(own)  # started at import before the row: eager imports above, and the packages above them
    orders: dict[tuple, list] = {}

    def order_of(name: str, common: tuple, top: str) -> list:
        key = (name, common, len(running))
        r = orders.get(key)
        if r is None:
            r = orders[key] = start_order([name], search, running | set(common), top)
        return r

    for i, u in enumerate(rows):
        if not deferred(u):
            running.update(_with_packages(modules(u)))
            continue
        later = list(dict.fromkeys(m for v in rows[i + 1:] if deferred(v) for m in modules(v)))
        for name in modules(u):
            if name in own or name in eager_modules or name in found or _locate(name, search) is None:
                continue
            top = name.partition(".")[0]
            pairs = []
            for m in later:
                if m.partition(".")[0] != top or m in own or m == name or m in eager_modules:
                    continue
                # The packages above both run first whichever starts.
                common = _common_packages(name, m)
                d_order, m_order = order_of(name, common, top), order_of(m, common, top)
                if set(d_order).intersection(m_order):
                    pairs.append((m, d_order, m_order))
            hit = _entered_elsewhere(pairs, search)
            if hit is not None:
                m, entries = hit
                found[name] = (f"{name}, whose imports enter an import cycle at {entries[0]}, which {m} (a "
                               f"deferred import further down, which may be used first) enters at "
                               f"{entries[1]}: deferred, the cycle could start at {entries[1]} and meet "
                               f"{entries[0]} or another of its modules half-initialized ({CYCLE})")
        if any(m in found for m in modules(u)):
            running.update(_with_packages(modules(u)))
    return found


# The reason's tail for an import kept eager by extension_order_imports.
EXTENSION_ORDER = "the order its extension modules start in"


def extension_order_imports(units: list[dict], search: list[str], own: set[str], package: str,
                            found: dict) -> dict[str, str]:
    """{module: reason} for the deferred imports, in a package's __init__, of
    its own submodules that are or lead to an extension module of the
    package. Extension modules import each other where no scan sees it, and
    often in a cycle that only the order the package's __init__ imports them
    in resolves: pandas._libs imports `interval`, then `tslibs` (whose
    __init__ starts conversion, and through it strptime, before timestamps);
    deferred, the first module to start was `pandas._libs.lib`, which
    reached timestamps first, and strptime's `from ...timestamps import
    Timestamp` met it half-initialized (ImportError). Any import of a
    submodule runs the package's __init__ first, so keeping these imports
    eager there keeps the order."""
    prefix = package + "."
    out: dict[str, str] = {}
    seen: set[str] = set(found)
    for name in _deferred_imports(units):
        if name in seen or not name.startswith(prefix):
            continue
        seen.add(name)
        if _origin(name, search) is None:
            continue  # a from-import's attribute, or nothing
        reached = sorted(m for m in package_reach(name, search, own) | {name} if m.startswith(prefix))
        ext = next((m for m in reached if _foreign_extension(m, search)), None)
        if ext is not None:
            lead = "is" if ext == name else f"leads to {ext},"
            out[name] = (f"{name}, which {lead} an extension module of this package, whose import order "
                         f"the package's __init__ keeps ({EXTENSION_ORDER})")
    return out


def _deferred_imports(units: list[dict]):
    """The modules the deferred import units would import, in order. An
    absorbed temporary import (analyzer.cpp, absorb_temporaries) is deferred
    with the units that read it: judged as a lazy import. An import guard
    (`try: import x except ImportError: ...`) lists every module its
    statements import, and `m`, `m.name` for a `from m import name`: the
    names that are no module find nothing."""
    for u in units:
        deferred = u.get("verdict") == "lazy" or u.get("reason") == "absorbed"
        if not deferred or u.get("kind") not in ("import", "from-import", "try") or not u.get("imports"):
            continue
        imports = u["imports"]
        yield from (imports[:2] if u["kind"] == "from-import" else imports)


def missing_imports(units: list[dict], search: list[str], own: set[str]) -> dict[str, str]:
    """{top-level module: reason} for the deferred imports (not an import
    guard: it handles the failure itself) of a top-level module that is not
    installed. Deferred, the import would fail at first use instead of at
    import: the importer's own import succeeded where eagerly it raised, and
    a caller's `try: import ... except ImportError:` took the wrong branch
    (structlog's _greenlets without greenlet). An import presumed made for
    its side effect counts too: effect_free_imports may find it a re-export
    and defer it (Django's template_tests.broken_tag, only `from django
    import Xtemplate`)."""
    out: dict[str, str] = {}
    checked: set[str] = set()  # top-level names looked for (_findable)
    for u in units:
        deferred = u.get("verdict") == "lazy" or u.get("reason") in ("absorbed", "side-effect-import")
        if not deferred or u.get("kind") not in ("import", "from-import") or not u.get("imports"):
            continue
        top = u["imports"][0].partition(".")[0]
        if u["kind"] == "from-import" and len(u["imports"]) == 2:
            module, attr = u["imports"][0], u["imports"][1]
            if module not in own and attr not in out and _never_bound(module, attr, search):
                out[attr] = f"{attr} ({MISSING_NAME.format(module)})"
        if top in checked or top in own:
            continue
        checked.add(top)
        if not _findable(top, search):
            out[top] = f"{top} ({MISSING})"
    return out


def _never_bound(module: str, attr: str, search: list[str]) -> bool:
    """Whether `from module import name` (attr: "module.name") must fail:
    module has Python source in which `name` appears nowhere (no binding, no
    `global` write, no string naming it), nothing binds names it cannot see
    (`__getattr__`, a star import, `globals()`, `setattr`, `exec`, a write
    through `__dict__` or `sys.modules`), and no submodule is called so.
    Django's template_tests.broken_tag (`from django import Xtemplate`):
    deferred, the importer loaded and the ImportError came at first use.
    Anything less certain answers False (the import stays as analysed): of
    34537 top-level absolute from-imports in 3.12's stdlib and a venv with
    Django, fastapi, aiohttp, rich and typer, none answered True."""
    name = attr.rpartition(".")[2]
    if name.startswith("__") and name.endswith("__"):
        return False  # the import system's (`from pip import __file__`)
    path = _locate(module, search)
    if path is None:
        return False
    words = source_words(path)
    if words is None or name.encode() in words or not words.isdisjoint(_DYNAMIC_WORDS):
        return False
    return _origin(attr, search) is None


# Words whose presence lets a module bind names no scan sees.
_DYNAMIC_WORDS = frozenset({b"__getattr__", b"*", b"globals", b"locals", b"vars", b"setattr", b"exec", b"eval",
                            b"__dict__", b"modules", b"__builtins__", b"__import__", b"import_module"})
# Every ASCII byte that is not part of an identifier becomes a space (bytes
# of non-ASCII characters stay in their word); `*` (a star import) stays,
# made a word of its own. On bytes: five times cheaper than on the decoded
# text, and this runs for every module an analysed module imports.
_SPLIT = bytes(c if c >= 128 or chr(c).isalnum() or c in b"_*" else 32 for c in range(256))
_word_sets: dict = {}  # path -> (stamp, frozenset of words or None)


def source_words(path: str) -> frozenset | None:
    """The identifiers (and `*`) of a source file, as UTF-8 bytes, cached
    per file stamp."""
    try:
        st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)
        hit = _word_sets.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        with open(path, "rb") as f:
            found = frozenset(f.read().translate(_SPLIT).replace(b"*", b" * ").split())
    except OSError:
        return None
    _word_sets[path] = (stamp, found)
    return found


# The reason's tail for an import kept eager by cycle_imports (explain_effects
# says it as it is, not as an effect on another module).
CYCLE = "an import cycle"
# ... and for one of a module that cannot be found (effect_imports).
FAILS = "its import fails at import, as eagerly"
MISSING = f"not found: {FAILS}"
# ... and for a name its module never binds (missing_imports).
MISSING_NAME = "never bound in {}: " + FAILS


def _findable(top: str, search: list[str]) -> bool:
    """Whether a top-level module can be imported: loaded, built in, frozen
    or found on the search path. Other finders on sys.meta_path are not
    asked (their find_spec may do anything): what only they find (an
    editable install's finder) is taken as missing, and its import stays
    eager, which is slower, never wrong. A lookup that fails counts as
    found: the import stays as analysed."""
    if top in sys.modules or top in sys.builtin_module_names:
        return True
    try:
        import _imp

        return _imp.is_frozen(top) or sys.modules["_frozen_importlib_external"].PathFinder.find_spec(top, search) \
            is not None
    except Exception:  # noqa: BLE001
        return True


def package_reach(name: str | list, search: list[str], own: set[str]) -> set[str]:
    """The modules of `name`'s top-level package that importing `name` runs,
    following top-level imports (and the packages above each imported
    module, which run first), without passing through `own` (running
    already). Bounded by REACH_LIMIT. Cycles are searched within one
    distribution: the standard library imports no third-party module."""
    todo = [name] if isinstance(name, str) else list(name)
    if not todo:
        return set()
    top = todo[0].partition(".")[0]
    seen: set[str] = set()
    while todo and len(seen) <= REACH_LIMIT:
        n = todo.pop()
        parts = n.split(".")
        for i in range(len(parts)):
            m = ".".join(parts[: i + 1])
            if m in seen or m in own or parts[0] != top:
                continue
            seen.add(m)
            path = _locate(m, search)
            facts = _facts(path, m, strict=False) if path else None
            if facts:
                todo.extend(x for x in facts[1] if x.partition(".")[0] == top and x not in seen)
    return seen


def _with_packages(names) -> list[str]:
    """Each name preceded by the packages above it, which run first."""
    out: list[str] = []
    for n in names:
        parts = n.split(".")
        out.extend(".".join(parts[: i + 1]) for i in range(len(parts)))
    return out


_starts: dict = {}  # (path, module name) -> (facts, what its top level starts, in order, once each)


def _starts_of(path: str, name: str) -> list[str] | None:
    """The modules `name`'s top-level imports start, in order, each preceded
    by the packages above it and named once (a later repeat starts nothing),
    or None when `name` has no facts (_facts, not strict). Cached with the
    facts they come from: start_order and _cycles walk the same modules for
    every deferred import of every module of a large cycle (an inline build
    of sympy spent 60% of its time re-expanding them, 2 s a module)."""
    facts = _facts(path, name, strict=False)
    if facts is None:
        return None
    hit = _starts.get((path, name))
    if hit is not None and hit[0] is facts:
        return hit[1]
    starts = list(dict.fromkeys(_with_packages(facts[1])))
    _starts[(path, name)] = (facts, starts)
    return starts


def start_order(names: list[str], search: list[str], running: set[str], top: str, within: str = "") -> list[str]:
    """The modules of package `top` that importing `names` runs, in the
    order they start: a depth-first walk of the top-level imports in source
    order (the packages above each module first), without entering
    `running` (started already). Bounded by REACH_LIMIT. `within`: only
    the modules under that package (`pkg.`)."""
    order: list[str] = []
    seen = set(running)
    stack = [iter(_with_packages(names))]
    while stack and len(order) <= REACH_LIMIT:
        m = next(stack[-1], None)
        if m is None:
            stack.pop()
            continue
        if m in seen or m.partition(".")[0] != top or not m.startswith(within):
            continue
        seen.add(m)
        path = _locate(m, search)
        starts = _starts_of(path, m) if path else None
        if starts is None:
            continue  # not a module (a from-import's attribute), or no source
        order.append(m)
        stack.append(iter(starts))
    return order


def _cycles(nodes: list[str], search: list[str]) -> dict[str, int]:
    """{module: component} for the modules of `nodes` on an import cycle
    among `nodes` (strongly connected components of more than one module;
    an import of a module's own package, which runs first, is no edge
    back). Tarjan's algorithm, iteratively."""
    inside = set(nodes)
    edges: dict[str, list[str]] = {}
    for n in nodes:
        path = _locate(n, search)
        edges[n] = [m for m in (_starts_of(path, n) if path else None) or ()
                    if m in inside and m != n and not n.startswith(m + ".")]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    component: dict[str, int] = {}
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            n, it = work[-1]
            m = next(it, None)
            if m is not None:
                if m not in index:
                    index[m] = low[m] = len(index)
                    stack.append(m)
                    on_stack.add(m)
                    work.append((m, iter(edges[m])))
                elif m in on_stack:
                    low[n] = min(low[n], index[m])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[n])
            if low[n] == index[n]:
                members = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    members.append(x)
                    if x == n:
                        break
                if len(members) > 1:
                    for x in members:
                        component[x] = index[n]
    return component


_package_rows: dict = {}  # (path, name, search) -> (stamp, rows), for one build process
_row_reach: dict = {}  # (package, a row's modules, search) -> package_reach, for one build process


def package_rows(path: str, name: str, search: list[str]) -> list[tuple[list[str], bool]]:
    """The import statements of package `name`'s top level (at `path`), in
    order: (the modules each imports, whether it runs at import: eager in
    the package's own first analysis, or an import of a module whose import
    changes another module, kept eager by the second). Cached per file stamp."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    stamp = (st.st_mtime_ns, st.st_size)
    key = (path, name, tuple(search))
    hit = _package_rows.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    rows: list[tuple[list[str], bool]] = []
    try:
        from lazyexec.analyze import analyze_source

        with open(path, "rb") as f:
            result = analyze_source(f.read(), path, name, True)
        for u in result.get("units", ()):
            if u.get("kind") not in ("import", "from-import") or not u.get("imports"):
                continue
            mods = list(u["imports"][:2] if u["kind"] == "from-import" else u["imports"])
            at_import = bool(result.get("module_eager")) or u.get("verdict") == "eager"
            for m in mods if not at_import else ():
                m_path = _locate(m, search)
                if m_path and module_effect(m_path, m):
                    at_import = True
                    break
            rows.append((mods, at_import))
    except (OSError, SyntaxError, ValueError, RecursionError):
        rows = []
    _package_rows[key] = (stamp, rows)
    return rows


def outer_imports(module: str, search: list[str]) -> tuple[str, set[str], set[str]] | None:
    """(package, before, after) for `module`'s package: the modules its
    `__init__` imports at import time before the import of its that leads
    to `module`, and every module it imports after it (the package may be
    loaded eagerly, not selected by the policy). Eagerly the later ones run
    once `module` has run whole (sqlalchemy.orm's `from .mapped_collection
    import ...`, after `from . import exc`, whose chain through
    sqlalchemy.orm.util and .attributes started sqlalchemy.orm.collections
    first). None when no import of the package leads to `module` (it was
    imported directly, after the package had run whole)."""
    package = module.rpartition(".")[0]
    path = _locate(package, search) if package else None
    if not path or os.path.basename(path) != "__init__.py":
        return None
    top = module.partition(".")[0]
    above = set(_with_packages([package]))
    rows = package_rows(path, package, search)
    for k, (mods, _) in enumerate(rows):
        key = (package, tuple(mods), tuple(search))
        reach = _row_reach.get(key)
        if reach is None:  # asked again for each module of the package a builder builds
            reach = _row_reach[key] = package_reach([m for m in mods if m.partition(".")[0] == top], search, above)
        if module in reach:
            before = {m for earlier, at_import in rows[:k] if at_import for m in earlier}
            # Every later import: the package may not be lazy at all (policy),
            # or may use the name at import.
            after = {m for later, _ in rows[k + 1:] for m in later}
            return package, before, after
    return None


def cycle_entries(d_order: list[str], m_order: list[str], search: list[str]) -> tuple[str, str] | None:
    """(where D enters, where M enters) for the first import cycle that both
    start orders lead into at different modules, or None. Eagerly D's
    import starts the cycle at its entry; deferred, M's import starts it at
    another module, whose imports then meet other modules of the cycle
    half-initialized where eagerly they were complete (sympy.matrices.
    expressions: `from .slice import ...` entered at matexpr, the later
    `from .inverse import ...` at inverse; matmul's `from .inverse import
    Inverse` met inverse half-initialized)."""
    if not set(d_order).intersection(m_order):
        return None  # no module in common: no cycle in common
    return _first_different_entry(d_order, m_order, _cycles(list(dict.fromkeys(d_order + m_order)), search))


def _common_packages(a: str, b: str) -> tuple[str, ...]:
    """The dotted names both `a` and `b` start with, outermost first
    (`pkg`, `pkg.sub` for pkg.sub.x and pkg.sub.y; the module itself when
    one is the other): run before either, whichever starts."""
    a_parts, b_parts = a.split("."), b.split(".")
    k = 0
    while k < min(len(a_parts), len(b_parts)) and a_parts[k] == b_parts[k]:
        k += 1
    return tuple(".".join(a_parts[: i + 1]) for i in range(k))


def _entered_elsewhere(pairs: list[tuple[str, list, list]], search: list[str]) -> tuple | None:
    """(M, (D's entry, M's entry)) for the first of `pairs` ((M, D's start
    order, M's start order) each) whose orders enter one import cycle at
    different modules, or None. One search for cycles over all of them (a
    cycle found among more modules is as large or larger: more eager, never
    less)."""
    component = _cycles(list(dict.fromkeys(n for _, d, o in pairs for n in d + o)), search)
    for m, d_order, m_order in pairs:
        entries = _first_different_entry(d_order, m_order, component)
        if entries is not None:
            return m, entries
    return None


def _first_different_entry(d_order: list[str], m_order: list[str], component: dict[str, int]) -> tuple | None:
    d_entry: dict[int, str] = {}
    for n in d_order:
        if n in component:
            d_entry.setdefault(component[n], n)
    m_entry: dict[int, str] = {}
    for n in m_order:
        if n in component:
            m_entry.setdefault(component[n], n)
    for c, d in d_entry.items():
        m = m_entry.get(c)
        if m is not None and m != d:
            return d, m
    return None


def cycle_imports(units: list[dict], search: list[str], own: set[str], eager_modules,
                  called: dict[int, set] | None = None, outer: tuple | None = None,
                  read: set[int] | None = None) -> dict[str, str]:
    """{module: reason} for the deferred imports of a module D whose own top
    level imports a module M that this module imports at import time further
    down (an eager import unit, or one of `eager_modules`, the imports kept
    eager for their effects), where M's top level imports D (a cycle). Eagerly D started first and M, importing D
    back, met it half-initialized but with what it needed; deferred, M starts
    first and D's import of M meets M half-initialized (sympy.core: `from
    .expr import Expr, ...`, then `from .numbers import ...` kept eager;
    expr's last line `from .numbers import Float, ...`: ImportError). D's
    import stays eager, in its place. The same for a longer cycle, D -> ...
    -> M -> ... -> D within one distribution (package_reach): sympy's
    `from .printing import pretty` kept eager below deferred `from .polys
    import ...` and `from .functions import ...` entered the cycle through
    sympy.functions.combinatorial.factorials, whose chain back through
    sympy.polys met it half-initialized. `called`: the modules an eager
    statement's call may import ({unit id: modules}, _called_modules),
    imported at import time too (sympy's `evalf._create_evalf_table()`
    imports sympy.concrete.products, whose chain back through sympy.series
    met sympy.calculus.accumulationbounds half-initialized). And when D's
    chain and M's enter one cycle at different modules (cycle_entries):
    sympy.matrices.expressions' deferred `from .slice import ...` at
    matexpr, the later `from .inverse import ...` at inverse. `outer`:
    (package, before, after) of this module's package (outer_imports): its
    later imports M enter a cycle among its modules too (sqlalchemy.orm.
    util's deferred `from . import attributes` led into sqlalchemy.orm.
    collections, which sqlalchemy.orm's later `from .mapped_collection
    import ...` entered at mapped_collection, whose import of collections
    back met `collections.__go()` importing mapped_collection
    half-initialized)."""
    def modules(u: dict) -> list[str]:
        return list(u["imports"][:2] if u["kind"] == "from-import" else u["imports"])

    called = called or {}
    read = read or set()  # deferred imports an eager statement runs at import by reading their names
    rows = [u for u in units if (u.get("kind") in ("import", "from-import") and u.get("imports"))
            or u.get("id") in called]
    later: list[set] = []
    at_import: set[str] = set()
    for u in reversed(rows):  # at_import: the modules imported at import time by the units after u
        later.append(set(at_import))
        if u.get("id") in called and u.get("kind") not in ("import", "from-import"):
            at_import.update(called[u["id"]])
            continue
        deferred = u.get("verdict") == "lazy" or u.get("reason") == "absorbed"
        mods = modules(u)
        if not deferred or u.get("id") in read or any(m in eager_modules for m in mods):
            at_import.update(mods)
    later.reverse()
    found: dict[str, str] = {}
    reach: dict[tuple, set] = {}

    def reached(name: str, common: tuple) -> set:
        r = reach.get((name, common))
        if r is None:
            r = reach[(name, common)] = package_reach(name, search, own | set(common))
        return r

    def on_cycle(name: str, imports: list, common: tuple) -> bool:
        key = ("cycle", name, common)
        r = reach.get(key)
        if r is None:
            top = name.partition(".")[0]
            r = reach[key] = package_reach([m for m in imports if m.partition(".")[0] == top and m != name],
                                           search, own | set(common))
        return name in r

    # The modules the statements above have imported at import time (eager
    # imports, the calls' imports, the imports kept eager here): started
    # already, eagerly and deferred alike. Not what they import in turn:
    # their own imports may be deferred.
    earlier: list[str] = []
    loaded: dict[tuple, set] = {}

    def started(top: str) -> set:
        key = (top, len(earlier))
        r = loaded.get(key)
        if r is None:
            r = loaded[key] = {m for m in _with_packages(earlier) if m.partition(".")[0] == top}
        return r

    orders: dict[tuple, list] = {}

    def order_of(name: str, common: tuple, top: str) -> list:
        key = (name, common, len(earlier))
        r = orders.get(key)
        if r is None:
            r = orders[key] = start_order([name], search, own | set(common) | started(top), top)
        return r

    def outer_cycle(name: str, u: dict) -> None:
        """D and a later import of the package's lead into one cycle among
        the package's modules at different modules."""
        package, before, after_package = outer
        within = package + "."
        if not name.startswith(within):
            return
        top = name.partition(".")[0]
        running = own | started(top) | set(_with_packages(before))
        d_order = start_order([name], search, running, top, within)
        m_orders = []
        for m in sorted(after_package):
            if m == name or not m.startswith(within) or m in running:
                continue
            key = ("outer", m, len(earlier))
            m_order = orders.get(key)
            if m_order is None:
                m_order = orders[key] = start_order([m], search, running, top, within)
            m_orders.append((m, m_order))
        d_set = set(d_order)
        if not any(d_set.intersection(o) for _, o in m_orders):
            return  # no module in common: no cycle in common
        hit = _entered_elsewhere([(m, d_order, m_order) for m, m_order in m_orders], search)
        if hit is not None:
            m, entries = hit
            found[name] = (f"{name}, whose imports enter an import cycle at {entries[0]}, which {m} "
                           f"(imported by {package} at import after this module) enters at {entries[1]}: "
                           f"deferred, the cycle would start at {entries[1]} and may meet {entries[0]} or "
                           f"another of its modules half-initialized ({CYCLE})")
            earlier.extend(modules(u))

    for u, after in zip(rows, later):
        deferred = u.get("verdict") == "lazy" or u.get("reason") == "absorbed"
        if u.get("id") in called and u.get("kind") not in ("import", "from-import"):
            earlier.extend(called[u["id"]])
            continue
        if not deferred or u.get("id") in read or any(m in eager_modules or m in found for m in modules(u)):
            earlier.extend(modules(u))
            if not deferred:
                continue
        if not after and not outer:
            continue
        for name in modules(u):
            if name in own or name in eager_modules or name in found:
                continue
            if outer and not after:
                outer_cycle(name, u)
                continue
            path = _locate(name, search)
            facts = _facts(path, name) if path else None
            if not facts:
                continue  # not a module (a from-import's attribute) or not found
            back = None
            for m in facts[1]:
                if m in after and m not in own and m != name:
                    m_path = _locate(m, search)
                    m_facts = _facts(m_path, m) if m_path else None
                    if m_facts and name in m_facts[1]:  # and M imports D: a cycle
                        back = m
                        break
            if back is None:
                top = name.partition(".")[0]
                for m in sorted(after):
                    if m.partition(".")[0] != top or m in own or m == name:
                        continue
                    # The packages above both run first whichever starts (or
                    # ran already): the cycle is searched below them. A
                    # package and its own submodule are no cycle.
                    common = _common_packages(name, m)
                    # M leads to D, and D is on a cycle: eagerly the cycle
                    # started at D; deferred, M's chain enters it, perhaps
                    # at another of its modules.
                    if name in reached(m, common) and on_cycle(name, facts[1], common):
                        found[name] = (f"{name}, which is on an import cycle that {m} leads into (a longer cycle), "
                                       f"which this module imports at import further down: deferred, {m} would "
                                       f"enter the cycle first and may meet one of its modules half-initialized "
                                       f"({CYCLE})")
                        break
                    # D and M lead into one cycle at different modules:
                    # eagerly D's chain started it at one, deferred M's
                    # chain starts it at another (the cycle's entry).
                    entries = cycle_entries(order_of(name, common, top), order_of(m, common, top), search)
                    if entries is not None:
                        found[name] = (f"{name}, whose imports enter an import cycle at {entries[0]}, which {m} "
                                       f"(imported at import further down) enters at {entries[1]}: deferred, the "
                                       f"cycle would start at {entries[1]} and may meet {entries[0]} or another of "
                                       f"its modules half-initialized ({CYCLE})")
                        break
                if name not in found and outer:
                    outer_cycle(name, u)
                if name in found:
                    earlier.extend(modules(u))
                continue
            if back is not None:
                found[name] = (f"{name}, whose top level imports {back} (which imports it back), which this module "
                               f"imports at import further down: deferred, {back} would start first and meet {name} "
                               f"half-initialized ({CYCLE})")
                earlier.extend(modules(u))
    return found
