// What the analyzer says about a module: its units, their facts and verdicts,
// and the stable-inputs force plan. Plain data, no Python objects, so the
// later stages (compile, store) and the C++ tests can use it directly.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "analyze/reason.h"

namespace lazyexec::analyze {

using Names = std::set<std::string>;

struct Unit {
  int id = 0;
  std::string kind;       // import, from-import, def, class, assign, type-alias, if, expression, ...
  std::vector<int> stmts; // flattened top-level statement indices it covers (grouped imports: several)
  int part = -1;          // alias index when one statement is split per bound name, else -1
  int line = 0, end_line = 0, col = 0;
  std::vector<int> lines; // first line of every statement it covers
  int depth = 0;          // nesting inside decided `if` branches
  std::vector<std::string> binds;
  Names def_reads;        // module globals read while the statement itself runs
  Names call_reads;       // module globals read by code that runs later (function bodies)
  // Module globals the statement does not read, whose object a later eager
  // statement may change so that the statement would make something else:
  // a from-import's package root bound by an import of this module (`from
  // sys import intern` beside `import sys`, before ansible's `sys.intern =
  // _intern`; the from-import reads the attribute through sys.modules). The
  // stable-inputs plan counts them as def_reads; nothing binds them first
  // (so `from _pytest.compat import final` no longer runs `import
  // _pytest._code, _pytest.deprecated, _pytest.hookspec` first).
  Names plan_reads;
  // The def_reads whose value the statement only takes as it is (an
  // annotation `x: Path`, `ALIAS = CONFIG`, an element of a display) and
  // never looks into: a later eager statement that may mutate such an
  // object does not change what the unit makes from it (both hold the same
  // object); only rebinding or deleting the name does (stable_inputs.cpp).
  Names captured_reads;
  // Module globals named by class-body annotations the class does not
  // evaluate (postponed by `from __future__ import annotations`, or strings)
  // and bound before it. Tools evaluate them later with the module's dict as
  // eval globals and the class dict as locals (typing.get_type_hints on a
  // TypedDict, inspect.get_annotations(eval_str=True)): LOAD_NAME reads such
  // globals with PyDict_GetItem, which no trap sees, so they must be bound.
  Names annotation_reads;
  // Module globals read by class bodies that run at call time (classes
  // defined in functions): LOAD_NAME, no trap sees them (scopes.cpp).
  Names name_reads;
  Names global_writes;    // names written through `global` in nested scopes
  Names mentions;         // every name the statement mentions anywhere (for rule 4)
  std::vector<std::string> imports;  // modules an import unit imports (absolute where known)
  bool lazy = false;
  Reason reason;
  // A class whose subclasses run nothing but `type` when they are created:
  // its decorators, bases and metaclass are known pure (whatever its body
  // does), it is bound once, and neither it nor a base defines
  // __init_subclass__. The summary importers read (analyze/summaries.py).
  bool safe_base = false;
  // A function whose call changes nothing but its own locals (purity.cpp,
  // pure_body), or a name bound once to an instance whose call the
  // knowledge base knows pure (`hookimpl = HookimplMarker("pytest")`, with
  // "pluggy.HookimplMarker.__call__" listed): importers may call it, or
  // decorate with it, at definition time (analyze/summaries.py).
  bool pure_call = false;
  // A def (pure_call) that may return something callable: its body makes a
  // function, lambda or class, or returns a value other than a constant, a
  // display, a comprehension or an operator's result (a name, an attribute,
  // a call's result: `functools.partial(_reg, tp)`). Importers may call it,
  // but a decorator factory `@f(...)` calls what it returns too (pyupgrade's
  // `@register(ast.Call)`, whose closure appends to a registry): the summary
  // says "call", not "func" (analyze/summaries.py).
  bool may_return_callable = false;
  // A class (safe_base, its body pure) whose instances are made without
  // running Python code (purity.cpp, plain_instances): calling it at
  // definition time is pure, here and, through the summary ("new"), in
  // importers (a sentinel `MISSING = _Missing()`, pytest's `StashKey[T]()`).
  bool plain_new = false;
  // A class one of whose decorators copies the module namespace only as the
  // globals of a method it generates (KB namespace_copy_decorators: attrs'
  // `globs.update(sys.modules[cls.__module__].__dict__)` in _make_init, "so
  // typing.get_type_hints(CLS.__init__) resolves string types"). While the
  // unit runs, a whole view of the module's namespace (the copy) takes the
  // names bound so far as they are instead of running every pending unit
  // before the class first (runtime: the plan's "own_views" step). What the
  // copy is read for is made a def_read, so it is bound when the copy is
  // made: every name the class's field annotations (and `type=` strings)
  // mention, and module names the generated code may read instead of
  // attrs' own (builtins shadowed, attrs' internal names). Not when a
  // field's converter is other than an undecorated function of the module
  // (attrs copies its annotations too; such a function's count), the decorator
  // takes `these=` or `field_transformer=`, or a base is not known to add
  // no fields (purity.cpp, own_namespace_views).
  bool own_views = false;
  // An eager `ABC.register(Cls)` (KB abc_registries; Cls a class of this
  // module whose metaclass is `type`, or a builtin type): the name of Cls.
  // ABCMeta.register runs no code of this module (issubclass both ways: the
  // ABC's hook with Cls as argument, `type`'s check for Cls) and changes
  // only what isinstance/issubclass answer, so the plan forces before it
  // only the lazy units that look into Cls or make a call at definition
  // time (def_calls), not those reading names Cls's methods mention
  // (pathlib's `os.PathLike.register(PurePath)` forced `_WindowsFlavour`,
  // which imports ntpath).
  std::string abc_registrant;
  // Its definition-time code makes a call (a decorator, a metaclass, any
  // call but a builtin constructor of constants): such a call may ask
  // isinstance/issubclass. Imports count as none (rule 7).
  bool def_calls = true;
  // Its code (the statement, or a body of it that may run when called)
  // changes the import state (writes to sys.modules, sys.path,
  // sys.meta_path, sys.path_hooks or sys.path_importer_cache;
  // importlib.reload) or reads sys.modules for any module; or reads it for
  // the modules named in loaded_module_reads (`"m" in sys.modules`). An eager
  // statement reaching such code runs after the pending imports before it
  // (of those modules only, for named reads), so they resolve, and show, as
  // eagerly (stable_inputs.cpp; defusedxml.ElementTree swaps
  // sys.modules["xml.etree.ElementTree"] in a function its top level calls,
  // after importing from that module).
  bool touches_import_state = false;
  Names loaded_module_reads;
  // Of those, a change (not a read) anywhere in its code.
  bool changes_import_state = false;
  // Of those, a listing of classes' subclasses (`x.__subclasses__()`, or a
  // call of another module's callable that lists them: KB subclass_listers)
  // anywhere in its code: importers learn it from the summary ("subclasses").
  bool lists_subclasses = false;
  // The same, of the code that runs when the statement itself runs (not the
  // bodies of the functions it defines).
  bool import_state_at_definition = false;
  Names loaded_module_reads_at_definition;
  // A plain_new class's: the attributes its __init__ (or a base's of this
  // module) sets on the new instance, and the names its body (or such a
  // base's) binds to what may be a data descriptor: a subclass binding one
  // of those attributes is not plain (purity.cpp, plain_instances).
  std::vector<std::string> init_attrs, class_attrs;
  // The attributes its __init__ (or such a base's) reads from the new
  // instance, and the names its body (or such a base's) binds to what may
  // be a descriptor (a getter is Python code): a subclass binding one of
  // the former to such a value, or reading one of the latter, is not plain.
  std::vector<std::string> init_reads, descr_attrs;
};

// Before eager unit `before` runs, these lazy units must be materialized
// (stable-inputs rule 4), in this order.
struct Force {
  int before = 0;
  std::vector<int> units;
};

// What the compile stage needs of the parsed tree: for each unit, the
// statement nodes it covers and, for a split import, the alias it binds.
// Borrowed from `tree`, which this struct keeps alive (an opaque PyObject*
// owner so this header stays free of Python.h).
struct SyntaxRefs {
  std::shared_ptr<void> tree;
  std::vector<std::vector<void*>> statements;  // per unit: ast.stmt nodes
  std::vector<void*> alias;                     // per unit: ast.alias or nullptr
  std::vector<std::string> future_features;     // from __future__ import ...
};

struct ModuleAnalysis {
  std::vector<Unit> units;
  SyntaxRefs syntax;
  std::vector<Force> forces;
  int statements = 0;          // flattened top-level statements
  int top_level_statements = 0;  // statements of the module body as written
  // Module-wide facts.
  std::string lazy_marker = "absent";  // "true", "false", "absent", "other"
  std::vector<std::string> lazy_modules;  // PEP 810 `__lazy_modules__`, when a literal of strings
  bool future_annotations = false;
  bool module_annotations = false;  // a top-level `name: T = v`: the module body sets up __annotations__
  bool module_eager = false;   // every unit eager for a module-wide reason
  Reason module_reason;
};

}  // namespace lazyexec::analyze
