// Internal: the state the analyzer's passes share. One pass per file:
//   units.cpp    flatten decided branches, split statements into units, bindings
//   purity.cpp   definition-time evaluation (rules 2 and 3), def_reads
//   scopes.cpp   call_reads and global_writes from CPython's symtable
//   analyzer.cpp orchestration, module-wide rules, rule 4 plan
#pragma once

#include <Python.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "analyze/analyzer.h"
#include "analyze/syntax.h"
#include "py/handle.h"

namespace lazyexec::analyze {

// How a name read at definition time resolves, seen from one unit.
struct Resolution {
  enum Kind { Builtin, ModuleDunder, Import, FromImport, LocalClass, LocalDef, LocalValue,
              ComprehensionLocal, ClassLocal, Undefined, Forward, ShadowedBuiltin, Unknown } kind = Undefined;
  std::string dotted;   // Import/FromImport: the module path (+ name); Builtin: builtins.NAME
  int unit = -1;        // binding unit for Local*/Forward/ShadowedBuiltin
  int line = 0;         // line of that binding
};

struct ClassInfo {
  bool defines_init_subclass = false;  // in its own body
  bool registers_subclasses = false;   // it or a base defines __init_subclass__ / impure metaclass
  bool is_side_effect_metaclass = false;  // as a metaclass: defines __new__/__init__/__call__/__prepare__
  int subclasses_read = 0;             // line where the module reads its __subclasses__(), or 0
  std::string metaclass_note;          // non-empty if an impure metaclass applies to it
  std::vector<int> local_bases;        // units of its bases defined in this module
  // Units of this module's classes whose methods run when this class is
  // created: its local metaclass (inherited too) and that metaclass's local
  // bases. What they read at call time is read at this class's definition.
  std::vector<int> metaclass_units;
};

struct Stmt {
  Node node;
  int depth = 0;
};

class Analyzer {
 public:
  Analyzer(const KnowledgeBase& kb, const ModuleInfo& module) : kb_(kb), module_(module) {}
  ModuleAnalysis run(PyObject* source, PyObject* filename);

  // units.cpp
  void flatten(const std::vector<Node>& body, int depth);
  std::optional<bool> decide(Node test) const;
  bool joins_overloads(int i) const;
  void split_units();
  void index_bindings();
  static void bound_names(Node n, std::vector<std::string>& out);
  std::string absolute_module(const std::string& mod, int level) const;

  // purity.cpp
  void decide_unit(Unit& u);
  bool replaced_by_accelerator(const Unit& u, const std::string& name) const;
  Resolution resolve(const std::string& name, int unit) const;

  // mutable_inputs.cpp: whether a module global's value may change after the
  // import without a rebinding (a dict, a list, a value of unknown type).
  bool binding_immutable(const Resolution& r) const;
  bool value_immutable(Node v, int unit) const;
  bool unit_value_immutable(int unit, const std::string& name) const;
  std::string callee_dotted(Node f, int unit) const;
  static bool captures_arguments(const std::string& callee);
  bool compound_value_immutable(Node stmt, int unit, const std::string& name) const;
  // The function unit that rebinds `name` through `global`, or -1.
  int global_writer(const std::string& name) const;
  // Attributes of imported modules (or of what a `from` import bound) that
  // this module assigns or deletes anywhere, functions included
  // (`builtins.__import__ = hook`, `setattr(sys, "excepthook", f)`), and
  // attributes of its own classes that its functions assign
  // (`Defaults.timeout = t` in configure()): dotted name -> line. A
  // definition reading one (`_real = builtins.__import__`, `TIMEOUT =
  // Defaults.timeout`) would read the replacement at first use.
  void collect_module_attr_writes(Node module);
  // Sets each unit's import-state facts (Unit::touches_import_state and the
  // fields after it; mutable_inputs.cpp).
  void mark_import_state_users();
  // Reads of a class's `__subclasses__` anywhere in the module, function
  // bodies included (`for c in Plugin.__subclasses__()`): creating a
  // subclass adds it there, so a subclass of an enumerated class defined
  // lazily would be missing from the list until its name is used.
  // subclasses_read_: receiver as spelled (a module-level or builtin name,
  // `mod.Base`) -> line; subclasses_read_any_: the line of the first read
  // through anything else (`cls.__subclasses__()`, `type.__subclasses__(t)`),
  // which may enumerate any class of the module, or 0.
  void collect_subclass_reads(Node module);
  std::map<std::string, int> subclasses_read_;
  int subclasses_read_any_ = 0;
  // The line writing `dotted` or an attribute it is read through, or 0.
  int module_attr_write(const std::string& dotted) const;
  std::map<std::string, int> module_attr_writes_;
  mutable std::map<std::pair<int, std::string>, int> value_memo_;  // (unit, name) -> 0 computing, 1 mutable, 2 immutable

  // analyzer.cpp
  void side_effect_imports(const std::set<std::string>& explicitly_lazy);
  bool definition_runs_no_body(const Unit& u, Node s) const;
  bool class_calls_outside_code(const Unit& u, Node s, Names& out) const;
  bool plan_header(const Unit& u, Node s) const;
  void namespace_writes(int first, bool any, const std::set<std::string>& prefixes);
  bool namespace_may_bind(const std::string& name) const;
  void absorb_temporaries();
  // Unit -> the (import statement, `del` statement) pairs of the temporaries
  // absorbed into it: its code runs the import first and the `del` last.
  std::map<int, std::vector<std::pair<Node, Node>>> absorbed_into_;
  void absorb_entry_additions();
  // Unit -> eager `if` statements adding entries to the dict it binds
  // (absorb_entry_additions): its code runs them after its own statement.
  std::map<int, std::vector<Node>> appended_;
  std::vector<std::string> namespace_may_bind_;  // name prefixes the globals() writes may bind
  bool namespace_binds_any_ = true;               // ... or any name
  int first_namespace_write_ = -1;  // unit of the first globals() write (namespace_writes), or -1
  void definition_mentions(Node s, Names& out) const;
  bool definition_calls(const Unit& u, Node s) const;
  std::string abc_registrant(const Unit& u, Node s) const;
  bool plain_registrant(const std::string& name, int unit, int depth) const;

  // scopes.cpp
  void collect_scopes(PyObject* source, PyObject* filename);

  // shared state
  const KnowledgeBase& kb_;
  const ModuleInfo& module_;
  // A package's own directory (its __init__'s), to tell `from . import sub`
  // of a submodule file from the import of an attribute.
  std::string package_dir_;
  bool is_own_submodule(const std::string& dotted) const;
  py::Ref tree_;
  py::Ref builtins_;  // the builtins dict, to tell builtin names and builtin classes
  std::vector<Stmt> stmts_;
  std::vector<Unit> units_;
  std::vector<Node> unit_nodes_;   // statement node per unit (first statement)
  std::vector<Node> unit_alias_;   // alias node for split imports
  std::vector<bool> star_;
  std::map<std::string, std::vector<int>> binders_;  // name -> units binding it, in order
  std::map<std::string, int> bound_in_compound_;     // name -> line of an eager compound binding it
  // Names tested with `"name" in globals()` (or `not in`) anywhere in the
  // module, function bodies included: the trapping namespace answers True
  // for a pending name without running its unit (analyzer.cpp).
  std::set<std::string> membership_tested_;
  // Import guards (a `try` of imports with `except ImportError` fallbacks,
  // purity.cpp): unit id -> the names its import statements bind.
  std::map<int, Names> guard_imports_;
  Names all_global_writes_;
  int first_star_line_ = 0;
  int first_star_unit_ = -1;
  bool future_annotations_ = false;
  std::unordered_map<int, ClassInfo> classes_;  // unit id -> class facts
  // Version branches are decided only when these names have one binding each,
  // made by the expected import (see decide()).
  bool sys_ok_ = false;
  bool typing_ok_ = false;
  bool type_checking_ok_ = false;
  // `if __name__ == "__main__":` cannot run its body in an imported module
  // (see main_guard()): the module's name is known and not __main__, and no
  // top-level statement binds __name__.
  bool name_known_ = false;
  bool main_guard(Node s) const;
};

// Generic traversal over every child AST node (fields in `_fields` order).
void for_each_child(Node n, const std::function<void(Node)>& fn);
bool is_ast_node(PyObject* o);

}  // namespace lazyexec::analyze
