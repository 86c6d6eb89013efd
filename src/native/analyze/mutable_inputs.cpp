// Rule 4 after the import: a lazy unit runs at first use, and what it reads
// at definition time must still be what it would have read at import. Rule 4
// proper (stable_inputs.cpp) covers the module's own eager statements; after
// the import ends, anything may change a module global:
//
// - its contents, without rebinding it: `CONFIG["mode"] = "c"` through a
//   module function or from outside, `ITEMS.append(x)`. A unit reading the
//   contents of such a value (`SNAPSHOT = dict(CONFIG)`, `N = len(ITEMS)`)
//   would see the change; eagerly it did not. So a unit reading the contents
//   of a module global whose value is not known immutable is eager (purity.cpp
//   DefTime::note_input, reason `mutable-input`). Taking the reference only
//   (`ALIAS = CONFIG`, `def f(x=CONFIG)`, an element of a display) sees the
//   same object either way and stays lazy.
// - its binding, through `global` in a module function: the STORE_GLOBAL
//   writes the namespace directly, no hook sees it. A unit reading such a
//   name at definition time is eager (reason `global-rebound`).
// - its binding from outside (`mod.TIMEOUT = 1`, mock.patch): seen by the
//   module's class at run time (runtime/module_hooks.cpp, "inputs"), which
//   first runs the pending units that read the name.
//
// Here: what is known immutable. A value bound once by a constant, an
// f-string, a comparison, a tuple of immutable values, operators over them,
// a call known to return an immutable value, or a module, function or class
// of this module (classes are taken as immutable: rebinding their attributes
// is the `mock.patch.object` case docs/differences.md lists).
#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "analyze/analyzer_impl.h"

namespace lazyexec::analyze {
namespace {

// Callables whose result is immutable (or a class, a function, a compiled
// pattern) whatever their arguments: a fresh str, number, tuple or frozenset.
// tuple()/frozenset() are shallow: their elements are the argument's.
const std::set<std::string>& immutable_results() {
  static const std::set<std::string> s = {
      "builtins.str", "builtins.int", "builtins.float", "builtins.complex", "builtins.bool", "builtins.bytes",
      "builtins.frozenset", "builtins.tuple", "builtins.range", "builtins.len", "builtins.repr", "builtins.ascii",
      "builtins.ord", "builtins.chr", "builtins.hash", "builtins.hex", "builtins.oct", "builtins.bin",
      "builtins.format", "builtins.any", "builtins.all", "builtins.isinstance", "builtins.issubclass",
      "builtins.callable", "builtins.id", "builtins.object", "builtins.type", "builtins.property",
      "builtins.staticmethod", "builtins.classmethod", "builtins.slice",
      "re.compile", "re.escape", "struct.Struct", "struct.calcsize", "collections.namedtuple", "enum.auto",
      "functools.partial", "sys.intern", "decimal.Decimal", "fractions.Fraction",
  };
  return s;
}

// Results that are one of their arguments, or computed from them: immutable
// when the arguments are.
const std::set<std::string>& passthrough_results() {
  static const std::set<std::string> s = {"builtins.min", "builtins.max", "builtins.sum", "builtins.abs",
                                          "builtins.round", "builtins.divmod", "builtins.pow"};
  return s;
}

bool immutable_module_function(const std::string& dotted) {
  for (const char* prefix : {"typing.", "typing_extensions.", "operator.", "os.path.", "posixpath.", "ntpath."})
    if (dotted.compare(0, std::string(prefix).size(), prefix) == 0) return true;
  return false;
}

void target_names(Node t, std::vector<std::string>& out) {
  if (t.kind() == K::Name) out.push_back(t.str("id"));
  else if (t.kind() == K::Tuple || t.kind() == K::List)
    for (Node e : t.list("elts")) target_names(e, out);
  else if (t.kind() == K::Starred) target_names(t.get("value"), out);
}

}  // namespace

int Analyzer::global_writer(const std::string& name) const {
  if (!all_global_writes_.count(name)) return -1;
  for (const auto& u : units_)
    if (u.global_writes.count(name)) return u.id;
  return -1;
}

void Analyzer::collect_module_attr_writes(Node module) {
  const int end = (int)units_.size();
  auto note = [&](const std::string& dotted, int line) {
    if (!dotted.empty() && dotted.find('.') != std::string::npos) module_attr_writes_.emplace(dotted, line);
  };
  bool in_function = false;
  // An import's (or a from import's) dotted spelling; in a function, also a
  // class of this module's (`Defaults.timeout`: top-level writes are the
  // force plan's).
  auto imported = [&](Node chain) -> std::string {
    Node root = chain;
    std::string attrs;
    while (root.kind() == K::Attribute) {
      attrs = "." + root.str("attr") + attrs;
      root = root.get("value");
    }
    if (root.kind() != K::Name) return {};
    Resolution r = resolve(root.str("id"), end);
    if (r.kind == Resolution::LocalClass && in_function) return root.str("id") + attrs;
    if (r.kind != Resolution::Import && r.kind != Resolution::FromImport) return {};
    return callee_dotted(chain, end);
  };
  std::function<void(Node)> walk = [&](Node n) {
    if (n.kind() == K::FunctionDef || n.kind() == K::AsyncFunctionDef || n.kind() == K::Lambda) {
      bool was = std::exchange(in_function, true);
      for_each_child(n, walk);
      in_function = was;
      return;
    }
    if (n.kind() == K::Attribute && n.get("ctx").kind() != K::Load) {
      note(imported(n), n.line());
    } else if (n.kind() == K::Call && n.get("func").kind() == K::Name && resolve(n.get("func").str("id"), end).kind == Resolution::Builtin &&
               (n.get("func").str("id") == "setattr" || n.get("func").str("id") == "delattr")) {
      std::vector<Node> args = n.list("args");
      if (args.size() >= 2 && args[1].kind() == K::Constant && PyUnicode_Check(args[1].get("value").raw()) &&
          (args[0].kind() == K::Name || args[0].kind() == K::Attribute)) {
        std::string obj = imported(args[0]);
        if (!obj.empty()) note(obj + "." + py::utf8(args[1].get("value").raw()), n.line());
      }
    }
    for_each_child(n, walk);
  };
  walk(module);
}

// The import state a deferred import resolves against, and shows in. A write
// to one of these (or a reload) between an import's place and its first use
// could make it find another module, or none (sys.modules["m"] = None halts
// `import m`); a read of sys.modules there would miss the pending import's
// module. Reads naming their module by a string constant (`"m" in
// sys.modules`, `sys.modules["m"]`, `sys.modules.get("m")`) are recorded by
// name: logging's LogRecord asks for multiprocessing, which logging never
// imports.
void Analyzer::mark_import_state_users() {
  static const std::set<std::string> state = {"sys.modules", "sys.path", "sys.meta_path", "sys.path_hooks",
                                              "sys.path_importer_cache"};
  static const std::set<std::string> mutators = {"pop",    "popitem", "setdefault", "update",      "clear",
                                                 "insert", "append",  "extend",     "remove",      "sort",
                                                 "reverse", "__setitem__", "__delitem__", "__iadd__"};
  static const std::set<std::string> state_attrs = {"modules", "path", "meta_path", "path_hooks",
                                                    "path_importer_cache"};
  const int end = (int)units_.size();
  // Names resolve as the module binds them in the end: a body may run late.
  // The attribute's own name first: most attribute nodes are not these, and
  // resolving a chain walks it.
  auto is_state = [&](Node chain) {
    return chain.kind() == K::Attribute && state_attrs.count(chain.str("attr")) &&
           state.count(callee_dotted(chain, end)) != 0;
  };
  auto is_modules = [&](Node chain) {
    return chain.kind() == K::Attribute && chain.str("attr") == "modules" && callee_dotted(chain, end) == "sys.modules";
  };
  auto text = [](Node c) -> std::string {
    return c && c.kind() == K::Constant && PyUnicode_Check(c.get("value").raw()) ? py::utf8(c.get("value").raw()) : "";
  };
  for (auto& u : units_) {
    // What runs when the statement runs, and, apart, what runs only when a
    // function it defines is called (a method's `sys.modules.get(name)` in
    // an eager class: pickle's _Pickler, typing's ForwardRef).
    bool any[2] = {false, false};  // [at definition, in a body]
    bool change = false;           // a write or reload, anywhere
    Names named[2];
    int body = 0;
    // A call of (or decoration with) another module's callable that may
    // list subclasses (KB subclass_listers, from the summaries): decorators
    // run where the definition runs.
    bool lists = false;
    auto lister = [&](Node callee) {
      if (kb_.subclass_listers.empty()) return false;
      if (callee.kind() == K::Call) callee = callee.get("func");
      if (callee.kind() != K::Name && callee.kind() != K::Attribute) return false;
      std::string dotted = callee_dotted(callee, end);
      return !dotted.empty() && kb_.subclass_listers.contains(dotted);
    };
    std::function<void(Node)> visit = [&](Node n) {
      switch (n.kind()) {
        case K::FunctionDef:
        case K::AsyncFunctionDef:
        case K::ClassDef:
          for (Node d : n.list("decorator_list"))
            if (lister(d)) any[body] = lists = true;
          if (n.kind() == K::ClassDef) break;
          [[fallthrough]];
        case K::Lambda: {
          int was = std::exchange(body, 1);
          for_each_child(n, visit);
          body = was;
          return;
        }
        case K::Call: {
          Node f = n.get("func");
          std::vector<Node> args = n.list("args");
          if (lister(f)) any[body] = lists = true;
          if (f.kind() == K::Attribute && is_state(f.get("value")) && mutators.count(f.str("attr")))
            any[body] = change = true;
          if (f.kind() == K::Attribute && f.str("attr") == "get" && is_modules(f.get("value")) && !args.empty() &&
              !text(args[0]).empty()) {
            named[body].insert(text(args[0]));
            for (size_t i = 1; i < args.size(); ++i) visit(args[i]);
            return;
          }
          bool reload = (f.kind() == K::Attribute && f.str("attr") == "reload") ||
                        (f.kind() == K::Name && f.str("id") == "reload");
          if (reload) {
            std::string callee = callee_dotted(f, end);
            if (callee == "importlib.reload" || callee == "imp.reload") any[body] = change = true;
          }
          break;
        }
        case K::Compare: {
          std::vector<Node> ops = n.list("ops"), rhs = n.list("comparators");
          if (ops.size() == 1 && (ops[0].kind() == K::In || ops[0].kind() == K::NotIn) && is_modules(rhs[0]) &&
              !text(n.get("left")).empty()) {
            named[body].insert(text(n.get("left")));
            return;
          }
          break;
        }
        case K::Subscript: {
          Node v = n.get("value"), slice = n.get("slice");
          if (!is_state(v)) break;
          // sys.modules[__name__] (a module replacing itself) makes the
          // whole module eager already (module-introspection).
          if (slice.kind() == K::Name && slice.str("id") == "__name__") return;
          if (n.get("ctx").kind() != K::Load) {
            any[body] = change = true;
          } else if (is_modules(v) && !text(slice).empty()) {
            named[body].insert(text(slice));
            return;
          }
          break;
        }
        case K::Attribute:
          // x.__subclasses__(): lists the classes that imports made, a read
          // of every module's effects as `sys.modules` is.
          if (n.str("attr") == "__subclasses__") any[body] = lists = true;
          // sys.path = [...], sys.path += [...]; any other read of sys.modules
          // (iterated, copied, indexed by a variable) may look for anything.
          if (n.get("ctx").kind() != K::Load && is_state(n)) any[body] = change = true;
          else if (n.get("ctx").kind() == K::Load && is_modules(n)) any[body] = true;
          break;
        default: break;
      }
      for_each_child(n, visit);
    };
    for (int st : u.stmts) visit(stmts_[(size_t)st].node);
    u.import_state_at_definition = any[0];
    u.loaded_module_reads_at_definition = named[0];
    u.touches_import_state = any[0] || any[1];
    u.changes_import_state = change;
    u.lists_subclasses = lists;
    u.loaded_module_reads = std::move(named[0]);
    u.loaded_module_reads.insert(named[1].begin(), named[1].end());
  }
}

int Analyzer::module_attr_write(const std::string& dotted) const {
  if (module_attr_writes_.empty()) return 0;
  for (std::string d = dotted;;) {
    if (auto it = module_attr_writes_.find(d); it != module_attr_writes_.end()) return it->second;
    auto dot = d.rfind('.');
    if (dot == std::string::npos) return 0;
    d.resize(dot);
  }
}

bool Analyzer::compound_value_immutable(Node n, int unit, const std::string& name) const {
  if (!n) return true;
  switch (n.kind()) {
    case K::Assign: {
      bool ok = true;
      for (Node t : n.list("targets")) {
        std::vector<std::string> names;
        target_names(t, names);
        bool binds = std::find(names.begin(), names.end(), name) != names.end();
        // Unpacked from something (`a, b = f()`): unknown.
        if (binds && (t.kind() != K::Name || !value_immutable(n.get("value"), unit))) ok = false;
      }
      return ok;
    }
    case K::AnnAssign:
      return n.get("target").kind() != K::Name || n.get("target").str("id") != name ||
             value_immutable(n.get("value"), unit);
    case K::AugAssign:
    case K::For:
    case K::AsyncFor:
    case K::With:
    case K::AsyncWith: {
      // Binds through an operator, a loop or a context manager: unknown.
      std::vector<std::string> names;
      Node t = n.kind() == K::With || n.kind() == K::AsyncWith ? Node() : n.get("target");
      if (t) target_names(t, names);
      for (Node item : n.list("items"))
        if (Node v = item.get("optional_vars")) target_names(v, names);
      if (std::find(names.begin(), names.end(), name) != names.end()) return false;
      break;
    }
    case K::FunctionDef:
    case K::AsyncFunctionDef:
    case K::ClassDef:
    case K::Lambda:
      return true;  // a definition; its body runs later
    default:
      break;
  }
  bool ok = true;
  for_each_child(n, [&](Node c) { ok = ok && compound_value_immutable(c, unit, name); });
  return ok;
}

bool Analyzer::captures_arguments(const std::string& callee) {
  static const std::set<std::string> s = {
      "builtins.type", "builtins.id", "builtins.callable", "builtins.isinstance", "builtins.issubclass",
      "builtins.classmethod", "builtins.staticmethod", "builtins.property", "functools.partial",
      "functools.wraps", "dataclasses.field",
  };
  return s.count(callee) || callee.compare(0, 7, "typing.") == 0 || callee.compare(0, 18, "typing_extensions.") == 0;
}

bool Analyzer::binding_immutable(const Resolution& r) const {
  switch (r.kind) {
    case Resolution::FromImport:
      // Another module's value: known immutable when the KB knows it as a
      // callable or class (a summary of an analysed module counts), or it
      // is a submodule.
      return kb_.pure.contains(r.dotted) || kb_.pure_bases.contains(r.dotted) ||
             kb_.pure_metaclasses.contains(r.dotted) || kb_.safe_bases.contains(r.dotted) ||
             is_own_submodule(r.dotted);
    case Resolution::LocalValue: {
      const Unit& b = units_[(size_t)r.unit];
      for (const auto& n : b.binds)
        if (!unit_value_immutable(r.unit, n)) return false;
      return true;
    }
    default:
      // Modules, functions, classes, builtins, module dunders (set by the
      // import system), names local to a comprehension or class body; other
      // kinds make the unit eager anyway.
      return true;
  }
}

bool Analyzer::unit_value_immutable(int unit, const std::string& name) const {
  auto key = std::make_pair(unit, name);
  auto it = value_memo_.find(key);
  if (it != value_memo_.end()) return it->second == 2;
  value_memo_[key] = 0;  // a cycle reads as mutable
  const Unit& u = units_[(size_t)unit];
  bool immutable = false;
  if (u.kind == "type-alias") {
    immutable = true;
  } else if (u.kind == "assign") {
    Node s = unit_nodes_[(size_t)unit];
    immutable = (s.kind() == K::Assign || s.kind() == K::AnnAssign) && value_immutable(s.get("value"), unit);
  } else if (u.kind == "try" || u.kind == "if") {
    // An import guard or an undecided `if`: imports and definitions, or
    // assignments of immutable values to the name, on every path.
    immutable = compound_value_immutable(unit_nodes_[(size_t)unit], unit, name);
  }
  value_memo_[key] = immutable ? 2 : 1;
  return immutable;
}

// The dotted spelling of a Name/Attribute chain with its root replaced by
// what it resolves to ("builtins.len", "re.compile"); empty when not a chain.
std::string Analyzer::callee_dotted(Node f, int unit) const {
  std::vector<std::string> parts;  // innermost last
  Node root = f;
  while (root.kind() == K::Attribute) {
    parts.push_back(root.str("attr"));
    root = root.get("value");
  }
  std::string attrs;
  for (auto p = parts.rbegin(); p != parts.rend(); ++p) attrs += "." + *p;
  if (root.kind() != K::Name) return {};
  std::string id = root.str("id");
  Resolution r = resolve(id, unit);
  switch (r.kind) {
    case Resolution::Builtin: return "builtins." + id + attrs;
    case Resolution::Import:
    case Resolution::FromImport: return (r.dotted.empty() ? id : r.dotted) + attrs;
    default: return {};
  }
}

bool Analyzer::value_immutable(Node v, int unit) const {
  if (!v) return true;
  switch (v.kind()) {
    case K::Constant:
    case K::JoinedStr:
    case K::Compare:  // a bool
    case K::Lambda:
      return true;
    case K::Tuple:
      for (Node e : v.list("elts"))
        if (e.kind() == K::Starred || !value_immutable(e, unit)) return false;
      return true;
    case K::UnaryOp:
      return v.get("op").kind() == K::Not || value_immutable(v.get("operand"), unit);
    case K::BinOp: {
      // `"Python/" + x`, `"%d.%d" % x`, `a + "/" + b`: a str (or bytes)
      // whatever the other operand is.
      std::function<bool(Node)> text = [&](Node c) {
        if (c.kind() == K::Constant)
          return PyUnicode_Check(c.get("value").raw()) || PyBytes_Check(c.get("value").raw());
        if (c.kind() == K::JoinedStr) return true;
        return c.kind() == K::BinOp && (text(c.get("left")) || text(c.get("right")));
      };
      if (text(v)) return true;
      return value_immutable(v.get("left"), unit) && value_immutable(v.get("right"), unit);
    }
    case K::BoolOp:
      for (Node e : v.list("values"))
        if (!value_immutable(e, unit)) return false;
      return true;
    case K::IfExp:
      return value_immutable(v.get("body"), unit) && value_immutable(v.get("orelse"), unit);
    case K::Subscript: {
      // A generic alias (`tuple[int, str]`, `typing.Optional[X]`): immutable
      // whatever its parameters.
      Node base = v.get("value");
      std::string dotted = base.kind() == K::Name || base.kind() == K::Attribute ? callee_dotted(base, unit) : "";
      if (dotted.compare(0, 9, "builtins.") == 0 || dotted.compare(0, 7, "typing.") == 0 ||
          dotted.compare(0, 18, "typing_extensions.") == 0 || dotted.compare(0, 16, "collections.abc.") == 0)
        return true;
      return value_immutable(base, unit) && value_immutable(v.get("slice"), unit);
    }
    case K::Slice:
      return value_immutable(v.get("lower"), unit) && value_immutable(v.get("upper"), unit) &&
             value_immutable(v.get("step"), unit);
    case K::Name:
      return binding_immutable(resolve(v.str("id"), unit));
    case K::Attribute: {
      // Another module's function or class, or a submodule; any other
      // attribute's value is unknown.
      std::string dotted = callee_dotted(v, unit);
      if (dotted.empty()) return false;
      return kb_.pure.contains(dotted) || kb_.pure_bases.contains(dotted) || kb_.pure_metaclasses.contains(dotted) ||
             is_own_submodule(dotted);
    }
    case K::Call: {
      Node f = v.get("func");
      if (f.kind() == K::Attribute && f.get("value").kind() == K::Constant) {
        // A str/bytes literal's method: a new str/bytes or a tuple of them,
        // but for the few returning a list or a dict.
        static const std::set<std::string> mutable_methods = {"split", "rsplit", "splitlines", "maketrans"};
        return !mutable_methods.count(f.str("attr"));
      }
      std::string dotted = callee_dotted(f, unit);
      if (dotted.empty()) return false;
      if (immutable_results().count(dotted) || immutable_module_function(dotted)) return true;
      if (passthrough_results().count(dotted)) {
        for (Node a : v.list("args"))
          if (a.kind() == K::Starred || !value_immutable(a, unit)) return false;
        return v.list("keywords").empty();
      }
      return false;
    }
    default:
      return false;  // displays, comprehensions, generators: mutable or consumed
  }
}

}  // namespace lazyexec::analyze
