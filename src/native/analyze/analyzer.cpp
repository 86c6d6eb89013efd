#include <filesystem>
#include <system_error>

#include "analyze/analyzer.h"

#include "analyze/analyzer_impl.h"
#include "analyze/stable_inputs.h"

namespace lazyexec::analyze {
namespace {

void all_names(Node n, Names& out) {
  if (!n) return;
  if (n.kind() == K::Name) out.insert(n.str("id"));
  if (n.kind() == K::Global || n.kind() == K::Nonlocal) {
    Node l = n.get("names");
    if (l && PyList_Check(l.raw()))
      for (Py_ssize_t i = 0; i < PyList_GET_SIZE(l.raw()); ++i) out.insert(py::utf8(PyList_GET_ITEM(l.raw(), i)));
  }
  for_each_child(n, [&](Node c) { all_names(c, out); });
}

// Rule 5: frame and namespace introspection at top level (not inside
// function bodies) can observe which names exist, so the module stays eager.
std::string introspection(Node n, const std::map<std::string, std::vector<int>>& binders, bool class_body = false,
                          const std::set<PyObject*>* writes = nullptr, const std::set<std::string>* guarded = nullptr) {
  if (!n) return {};
  K k = n.kind();
  if (writes && k == K::Call && writes->count(n.raw())) return {};  // a namespace write (dynamic_writes)
  if (k == K::FunctionDef || k == K::AsyncFunctionDef) {
    std::string r;
    for (Node d : n.list("decorator_list"))
      if (r.empty()) r = introspection(d, binders, class_body, writes, guarded);
    return r;  // the body runs later
  }
  if (k == K::Lambda) return {};
  if (k == K::ClassDef) {
    // Decorators, bases and keywords run in the enclosing scope; the body in
    // the class namespace, where locals() and vars() name the class's own
    // namespace, not the module's (importlib.metadata's DeprecatedList
    // updates its locals()). globals(), eval, exec and frames still count.
    std::string r;
    for (const char* field : {"decorator_list", "bases", "keywords"})
      for (Node d : n.list(field))
        if (r.empty()) r = introspection(d, binders, class_body, writes, guarded);
    for (Node b : n.list("body"))
      if (r.empty()) r = introspection(b, binders, true, nullptr, guarded);
    return r;
  }
  if (k == K::Call) {
    Node f = n.get("func");
    if (f.kind() == K::Name) {
      std::string id = f.str("id");
      bool own_namespace = class_body && (id == "locals" || id == "vars") && n.list("args").empty() &&
                           n.list("keywords").empty();
      if ((id == "globals" || id == "locals" || id == "vars" || id == "eval" || id == "exec") && !binders.count(id) &&
          !own_namespace)
        return id + "() at line " + std::to_string(n.line());
    }
    if (f.kind() == K::Attribute && f.get("value").kind() == K::Name) {
      std::string base = f.get("value").str("id"), attr = f.str("attr");
      if ((base == "sys" && attr == "_getframe") || (base == "inspect" && (attr == "currentframe" || attr == "stack")))
        return base + "." + attr + "() at line " + std::to_string(n.line());
    }
  }
  if (k == K::Compare) {
    // `"name" in globals()` / `not in` (locale's `if 'strxfrm' not in
    // globals():`): a membership test of one name, which the trapping
    // namespace answers as eagerly (lazy_globals.cpp, contains(): a bound
    // name, or a pending one bound earlier in the source) without running
    // anything; not a view of the whole namespace. Not for a name a
    // top-level `try` binds (`guarded`): a deferred import guard's pending
    // name counts as bound, though its fallback may leave it unbound.
    std::vector<Node> ops = n.list("ops"), rhs = n.list("comparators");
    Node left = n.get("left");
    if (ops.size() == 1 && (ops[0].kind() == K::In || ops[0].kind() == K::NotIn) && left.kind() == K::Constant &&
        PyUnicode_Check(left.get("value").raw()) && rhs[0].kind() == K::Call && rhs[0].list("args").empty() &&
        rhs[0].list("keywords").empty() && rhs[0].get("func").kind() == K::Name &&
        rhs[0].get("func").str("id") == "globals" && !binders.count("globals") &&
        !(guarded && guarded->count(py::utf8(left.get("value").raw()))))
      return {};
  }
  if (k == K::Subscript) {  // sys.modules[__name__]
    Node v = n.get("value"), s = n.get("slice");
    if (v.kind() == K::Attribute && v.str("attr") == "modules" && v.get("value").kind() == K::Name &&
        v.get("value").str("id") == "sys" && s.kind() == K::Name && s.str("id") == "__name__")
      return "sys.modules[__name__] at line " + std::to_string(n.line());
  }
  std::string r;
  for_each_child(n, [&](Node c) {
    if (r.empty()) r = introspection(c, binders, class_body, writes, guarded);
  });
  return r;
}

// The names `n` tests with `"name" in globals()` / `not in` (one literal
// name against the module's own globals()), in any scope.
void membership_tests(Node n, const std::map<std::string, std::vector<int>>& binders, std::set<std::string>& out) {
  if (n.kind() == K::Compare) {
    std::vector<Node> ops = n.list("ops"), rhs = n.list("comparators");
    Node left = n.get("left");
    for (size_t i = 0; i < ops.size() && i < rhs.size(); ++i) {
      Node l = i == 0 ? left : rhs[i - 1];
      if ((ops[i].kind() == K::In || ops[i].kind() == K::NotIn) && l.kind() == K::Constant &&
          PyUnicode_Check(l.get("value").raw()) && rhs[i].kind() == K::Call && rhs[i].list("args").empty() &&
          rhs[i].list("keywords").empty() && rhs[i].get("func").kind() == K::Name &&
          rhs[i].get("func").str("id") == "globals" && !binders.count("globals"))
        out.insert(py::utf8(l.get("value").raw()));
    }
  }
  for_each_child(n, [&](Node c) { membership_tests(c, binders, out); });
}

bool is_globals_call(Node n, const std::map<std::string, std::vector<int>>& binders) {
  return n && n.kind() == K::Call && n.get("func").kind() == K::Name && n.get("func").str("id") == "globals" &&
         n.list("args").empty() && n.list("keywords").empty() && !binders.count("globals");
}

// Top-level writes into the module's namespace through globals() that read
// nothing of it: `globals().update(...)` (http.client's HTTPStatus members),
// `globals()[key] = value` (hashlib's constructors), and an alias bound once
// by `NAME = globals()` used only that way and by `del NAME` (inspect's
// `mod_dict["CO_" + v] = k`). Finds the statements (function and class
// bodies not entered) and the globals() calls they make.
struct NamespaceWrites {
  std::set<PyObject*> calls;  // globals() calls in write position
  std::set<std::string> aliases;
  // What the writes may bind: names starting with one of `prefixes` (a key
  // `"CO_" + v`, f"CO_{v}" or a literal name), or any name at all (`any`:
  // `update(...)`, a key of another shape).
  std::set<std::string> prefixes;
  bool any = false;
  void key(Node k) {
    std::string p = key_prefix(k);
    if (p.empty()) any = true;
    else prefixes.insert(p);
  }
  // The constant start of a subscript key, or "" when unknown.
  static std::string key_prefix(Node k) {
    if (!k) return {};
    if (k.kind() == K::Constant) {
      PyObject* v = k.get("value").raw();
      if (!PyUnicode_Check(v)) return {};
      Py_ssize_t n = 0;
      const char* c = PyUnicode_AsUTF8AndSize(v, &n);
      if (!c) {
        PyErr_Clear();
        return {};
      }
      return std::string(c, (size_t)n);
    }
    if (k.kind() == K::BinOp && std::string(k.get("op").type_name()) == "Add") return key_prefix(k.get("left"));
    if (k.kind() == K::JoinedStr) {
      std::vector<Node> parts = k.list("values");
      return parts.empty() ? std::string() : key_prefix(parts[0]);
    }
    return {};
  }
  bool may_bind(const std::string& name) const {
    if (any) return true;
    for (const auto& p : prefixes)
      if (name.compare(0, p.size(), p) == 0) return true;
    return false;
  }
  bool contains(Node n) const {
    if (!n) return false;
    if (n.kind() == K::Call && calls.count(n.raw())) return true;
    if (n.kind() == K::FunctionDef || n.kind() == K::AsyncFunctionDef || n.kind() == K::ClassDef || n.kind() == K::Lambda)
      return false;
    bool found = false;
    for_each_child(n, [&](Node c) { found = found || contains(c); });
    return found;
  }
};

void find_writes(Node n, const std::map<std::string, std::vector<int>>& binders, NamespaceWrites& w,
                 std::map<std::string, Node>& alias_defs) {
  if (!n) return;
  K k = n.kind();
  if (k == K::FunctionDef || k == K::AsyncFunctionDef || k == K::ClassDef || k == K::Lambda) return;
  if (k == K::Expr) {
    Node c = n.get("value");
    if (c.kind() == K::Call && c.get("func").kind() == K::Attribute && c.get("func").str("attr") == "update" &&
        is_globals_call(c.get("func").get("value"), binders)) {
      w.calls.insert(c.get("func").get("value").raw());
      w.any = true;
    }
  } else if (k == K::Assign) {
    std::vector<Node> targets = n.list("targets");
    if (targets.size() == 1 && targets[0].kind() == K::Name && is_globals_call(n.get("value"), binders))
      alias_defs.emplace(targets[0].str("id"), n.get("value"));
    for (Node t : targets)
      if (t.kind() == K::Subscript && is_globals_call(t.get("value"), binders)) {
        w.calls.insert(t.get("value").raw());
        w.key(t.get("slice"));
      }
  }
  for_each_child(n, [&](Node c) { find_writes(c, binders, w, alias_defs); });
}

// What an alias's writes (`NAME[key] = value`, `NAME.update(...)`) may bind.
void alias_write_keys(Node n, const std::string& name, NamespaceWrites& w) {
  if (!n) return;
  K k = n.kind();
  if (k == K::FunctionDef || k == K::AsyncFunctionDef || k == K::ClassDef || k == K::Lambda) return;
  if (k == K::Assign)
    for (Node t : n.list("targets"))
      if (t.kind() == K::Subscript && t.get("value").kind() == K::Name && t.get("value").str("id") == name)
        w.key(t.get("slice"));
  if (k == K::Call && n.get("func").kind() == K::Attribute && n.get("func").str("attr") == "update" &&
      n.get("func").get("value").kind() == K::Name && n.get("func").get("value").str("id") == name)
    w.any = true;
  for_each_child(n, [&](Node c) { alias_write_keys(c, name, w); });
}

// Every occurrence of `name` in the module is the alias's own binding, a
// `NAME[key] = value` target, a `NAME.update(...)` call or a `del NAME`.
bool write_only_alias(Node n, const std::string& name, Node parent_ok = Node()) {
  if (!n) return true;
  K k = n.kind();
  if (k == K::Name && n.str("id") == name) return n.raw() == parent_ok.raw();
  if (k == K::Global || k == K::Nonlocal) {
    Names g;
    all_names(n, g);
    if (g.count(name)) return false;
  }
  bool ok = true;
  auto child = [&](Node c, Node allowed) { ok = ok && write_only_alias(c, name, allowed); };
  if (k == K::Assign) {
    for (Node t : n.list("targets")) {
      if (t.kind() == K::Name) child(t, t);  // its own binding (Store)
      else if (t.kind() == K::Subscript && t.get("value").kind() == K::Name) {
        child(t.get("value"), t.get("value"));
        child(t.get("slice"), Node());
      } else child(t, Node());
    }
    child(n.get("value"), Node());
    return ok;
  }
  if (k == K::Call && n.get("func").kind() == K::Attribute && n.get("func").str("attr") == "update" &&
      n.get("func").get("value").kind() == K::Name) {
    child(n.get("func").get("value"), n.get("func").get("value"));
    for (Node a : n.list("args")) child(a, Node());
    for (Node kw : n.list("keywords")) child(kw, Node());
    return ok;
  }
  if (k == K::Delete) {
    for (Node t : n.list("targets"))
      if (t.kind() != K::Name) child(t, Node());
    return ok;
  }
  for_each_child(n, [&](Node c) { child(c, Node()); });
  return ok;
}


void string_constants(Node n, Names& out) {
  if (!n) return;
  if (n.kind() == K::Constant && PyUnicode_Check(n.get("value").raw())) out.insert(py::utf8(n.get("value").raw()));
  for_each_child(n, [&](Node c) { string_constants(c, out); });
}

// Does statement `s` write `__all__` (`__all__ = [...]`, `__all__ += [...]`,
// `__all__.extend([...])` / `.append(...)`)?
bool writes_all(Node s) {
  auto is_all = [](Node t) { return t && t.kind() == K::Name && t.str("id") == "__all__"; };
  switch (s.kind()) {
    case K::Assign:
      for (Node t : s.list("targets"))
        if (is_all(t)) return true;
      return false;
    case K::AugAssign:
    case K::AnnAssign: return is_all(s.get("target"));
    case K::Expr: {
      Node c = s.get("value");
      if (c.kind() != K::Call || c.get("func").kind() != K::Attribute) return false;
      return is_all(c.get("func").get("value"));
    }
    default: return false;
  }
}

}  // namespace

// Rule 7: an import whose bound names the module never reads (at definition
// time, in function bodies run later, in class bodies run at call time, in
// eager statements) nor exports through `__all__` is presumed made for its
// side effect: `from . import patterns` in pathspec's `__init__` registers
// the pattern classes. Deferring it would defer the registration forever, so
// it stays eager. Reads through a module `__getattr__`/`__dir__` count: the
// strings they hold are names, and `globals()`/`vars()` in them may read any.
// Names used in annotations anywhere in `n` (parameters, returns, annotated
// assignments, nested too).
void annotation_names(Node n, Names& out) {
  if (!n) return;
  K k = n.kind();
  if (k == K::FunctionDef || k == K::AsyncFunctionDef) {
    all_names(n.get("returns"), out);
    Node a = n.get("args");
    for (const char* field : {"posonlyargs", "args", "kwonlyargs"})
      for (Node arg : a.list(field)) all_names(arg.get("annotation"), out);
    for (const char* field : {"vararg", "kwarg"})
      if (Node arg = a.get(field)) all_names(arg.get("annotation"), out);
  } else if (k == K::AnnAssign) {
    all_names(n.get("annotation"), out);
  }
  for_each_child(n, [&](Node c) { annotation_names(c, out); });
}

void Analyzer::side_effect_imports(const std::set<std::string>& explicitly_lazy) {
  Names read;
  bool any_read = false;
  for (const auto& u : units_) {
    if (u.kind == "import" || u.kind == "from-import") continue;
    if (u.lazy) {
      for (const Names* set : {&u.def_reads, &u.call_reads, &u.name_reads, &u.annotation_reads})
        read.insert(set->begin(), set->end());
    } else {
      for (int st : u.stmts) all_names(stmts_[(size_t)st].node, read);
    }
    for (int st : u.stmts) {
      Node s = stmts_[(size_t)st].node;
      if (writes_all(s)) string_constants(s, read);
      if ((s.kind() == K::FunctionDef || s.kind() == K::AsyncFunctionDef) &&
          (s.str("name") == "__getattr__" || s.str("name") == "__dir__")) {
        Names inside;
        all_names(s, inside);
        if (inside.count("globals") || inside.count("vars")) any_read = true;
        string_constants(s, read);
        read.insert(inside.begin(), inside.end());
      }
    }
  }
  for (const auto& u : units_) read.insert(u.global_writes.begin(), u.global_writes.end());
  if (any_read) return;
  for (auto& u : units_) {
    // An import guard whose imports bind a name nothing reads: the same
    // presumption (`try: import readline except ImportError: pass`).
    if (u.lazy && u.kind == "try") {
      auto g = guard_imports_.find(u.id);
      if (g == guard_imports_.end()) continue;
      std::string unread;
      for (const auto& n : g->second)
        if (!read.count(n) && unread.empty()) unread = n;
      if (unread.empty()) continue;
      bool effect_free = !u.imports.empty();  // a re-export (as below)
      for (const auto& m : u.imports) effect_free = effect_free && kb_.effect_free.contains(m);
      if (effect_free) continue;
      u.lazy = false;
      u.reason = {Code::SideEffectImport, "'try' statement at line " + std::to_string(u.line) + " imports " + unread +
                                              ", which the module never reads nor exports in __all__: presumed made "
                                              "for its side effect"};
      continue;
    }
    if (!u.lazy || (u.kind != "import" && u.kind != "from-import")) continue;
    if (!u.imports.empty() && explicitly_lazy.count(u.imports[0])) continue;  // PEP 810: asked for lazy
    // A re-export (`from .models import Request` in a package __init__
    // without __all__, read by importers as pkg.Request): the build found
    // that importing it changes nothing outside the imported modules.
    bool effect_free = !u.imports.empty();
    for (const auto& m : u.imports) effect_free = effect_free && kb_.effect_free.contains(m);
    if (effect_free) continue;
    bool used = false;
    for (const auto& n : u.binds) used = used || read.count(n);
    if (used) continue;
    u.lazy = false;
    std::string names;
    for (const auto& n : u.binds) names += (names.empty() ? "" : ", ") + n;
    u.reason = {Code::SideEffectImport, "import at line " + std::to_string(u.line) + " binds " + names +
                                            ", which the module never reads nor exports in __all__: presumed made "
                                            "for its side effect"};
  }
}

namespace {

// Method decorators that only wrap the function (no call of it).
bool wrapping_decorator(Node d) {
  if (d.kind() == K::Name) {
    std::string id = d.str("id");
    return id == "property" || id == "staticmethod" || id == "classmethod";
  }
  if (d.kind() == K::Attribute) {
    std::string a = d.str("attr");
    return a == "setter" || a == "getter" || a == "deleter";
  }
  return false;
}

// Does `n` (a class body's statement or expression, function bodies not
// entered) call anything, or hold something else that runs code it does not
// show: a nested class, a method decorator other than a wrapping one?
bool runs_code(Node n) {
  if (!n) return false;
  K k = n.kind();
  if (k == K::Call || k == K::ClassDef || k == K::Await || k == K::Yield || k == K::YieldFrom) return true;
  if (k == K::FunctionDef || k == K::AsyncFunctionDef) {
    for (Node d : n.list("decorator_list"))
      if (!wrapping_decorator(d)) return true;
    return runs_code(n.get("args")) || runs_code(n.get("returns"));
  }
  if (k == K::Lambda) return runs_code(n.get("args"));
  bool found = false;
  for_each_child(n, [&](Node c) { found = found || runs_code(c); });
  return found;
}

// The names a definition evaluates when it runs: for a function, its
// decorators (none here), defaults and annotations; for a class, its bases
// and body with each method's header but not the method's body.
void definition_names(Node n, Names& out) {
  if (!n) return;
  K k = n.kind();
  if (k == K::FunctionDef || k == K::AsyncFunctionDef) {
    for (Node d : n.list("decorator_list")) all_names(d, out);
    all_names(n.get("args"), out);
    all_names(n.get("returns"), out);
    return;
  }
  if (k == K::Lambda) {
    all_names(n.get("args"), out);
    return;
  }
  if (k == K::Name) out.insert(n.str("id"));
  for_each_child(n, [&](Node c) { definition_names(c, out); });
}

// Names a class body binds at class level (method bodies not entered).
void class_level_bindings(Node n, Names& out) {
  if (!n) return;
  K k = n.kind();
  if (k == K::FunctionDef || k == K::AsyncFunctionDef || k == K::ClassDef) {
    out.insert(n.str("name"));
    return;
  }
  if (k == K::Lambda) return;
  if (k == K::Name) {
    Node ctx = n.get("ctx");
    if (ctx && std::string(ctx.type_name()) != "Load") out.insert(n.str("id"));
  }
  if (k == K::Import || k == K::ImportFrom)
    for (Node a : n.list("names")) {
      std::string name = a.str("asname").empty() ? a.str("name") : a.str("asname");
      out.insert(name.substr(0, name.find('.')));
    }
  for_each_child(n, [&](Node c) { class_level_bindings(c, out); });
}

// Calls at class level (method bodies not entered; decorators, defaults and
// annotations are), in source order.
void class_level_calls(Node n, std::vector<Node>& out) {
  if (!n) return;
  K k = n.kind();
  if (k == K::FunctionDef || k == K::AsyncFunctionDef) {
    for (Node d : n.list("decorator_list")) class_level_calls(d, out);
    class_level_calls(n.get("args"), out);
    class_level_calls(n.get("returns"), out);
    return;
  }
  if (k == K::Lambda) {
    class_level_calls(n.get("args"), out);
    return;
  }
  if (k == K::Call) out.push_back(n);
  for_each_child(n, [&](Node c) { class_level_calls(c, out); });
}

}  // namespace

// Writes into the namespace through globals() (find_writes) bind names no
// analysis can know. A lazy unit before the first one may stay lazy: if the
// write binds its name, the written value is there first and the unit's
// binding gives way, as the later write wins eagerly (the plan forces first
// the lazy units that read names at definition time, which the write may
// change). A unit after it binding any name must be eager: eagerly its
// binding replaces what the write may have put there, lazily the written
// value would stay.
//
// Where every key of the writes has a constant start (inspect's
// `mod_dict["CO_" + v] = k` binds only names starting with "CO_"), only
// the names with such a start count: units after the writes binding other
// names stay lazy, and only the lazy units reading such names run first.
void Analyzer::namespace_writes(int first, bool any, const std::set<std::string>& prefixes) {
  first_namespace_write_ = first;
  namespace_binds_any_ = any;
  namespace_may_bind_.assign(prefixes.begin(), prefixes.end());
  int line = units_[(size_t)first].line;
  for (auto& u : units_) {
    if (u.id <= first || !u.lazy || u.binds.empty()) continue;
    for (const auto& n : u.binds) {
      if (!namespace_may_bind(n)) continue;
      u.lazy = false;
      u.reason = {Code::ModuleIntrospection, "binds " + n + " after the globals() write at line " +
                                                 std::to_string(line) + (any ? ", which may bind any name"
                                                                             : ", which may bind it")};
      break;
    }
  }
}

bool Analyzer::namespace_may_bind(const std::string& name) const {
  if (namespace_binds_any_) return true;
  for (const auto& p : namespace_may_bind_)
    if (name.compare(0, p.size(), p) == 0) return true;
  return false;
}

// Rule 4 touches what a statement may change while it runs. An eager `def`
// without decorators runs none of its body (defaults and annotations only),
// nor does an eager class whose header is known pure (safe_base: no
// decorator, metaclass or __init_subclass__ that could call a method) and
// whose body calls nothing: their bodies run when called, and a statement
// calling them reaches their call_reads through their name. Mentioning the
// whole body forced, before sphinx.cmd.build's `def main(argv=sys.argv[1:])`
// (eager: it reads sys.argv), every import its body names.
bool Analyzer::definition_runs_no_body(const Unit& u, Node s) const {
  if (u.stmts.size() != 1) return false;
  if (u.kind == "def") return s.list("decorator_list").empty();
  if (u.kind != "class" || !plan_header(u, s) || !s.list("keywords").empty()) return false;
  for (Node b : s.list("bases"))
    if (runs_code(b)) return false;
  for (Node st : s.list("body"))
    if (runs_code(st)) return false;
  return true;
}

// For the plan, a class header runs nothing but `type` (and the class body)
// when it is known pure (safe_base), or when, with no decorator and no
// keyword, each base is a builtin class, a known pure or safe external base,
// or a class of this module, lazy or eager (importlib.metadata's EntryPoints
// over the eager DeprecatedList), whose own header is such a header and that
// neither defines __init_subclass__ nor brings a metaclass.
bool Analyzer::plan_header(const Unit& u, Node s) const {
  if (u.safe_base) return true;
  if (u.kind != "class" || u.stmts.size() != 1 || s.kind() != K::ClassDef) return false;
  if (!s.list("decorator_list").empty() || !s.list("keywords").empty()) return false;
  for (Node b : s.list("bases")) {
    std::vector<std::string> attrs;
    Node root = b;
    while (root.kind() == K::Attribute) {
      attrs.insert(attrs.begin(), root.str("attr"));
      root = root.get("value");
    }
    if (root.kind() != K::Name) return false;
    std::string name = root.str("id");
    Resolution r = resolve(name, u.id);
    if (attrs.empty() && r.kind == Resolution::LocalClass) {
      auto it = classes_.find(r.unit);
      if (it == classes_.end() || r.unit >= u.id) return false;
      const ClassInfo& bi = it->second;
      if (bi.defines_init_subclass || bi.registers_subclasses || bi.is_side_effect_metaclass ||
          !bi.metaclass_units.empty())
        return false;
      if (!plan_header(units_[(size_t)r.unit], unit_nodes_[(size_t)r.unit])) return false;
      continue;
    }
    if (attrs.empty() && r.kind == Resolution::Builtin) {
      PyObject* v = PyDict_GetItemString(builtins_.get(), name.c_str());
      if (v && PyType_Check(v)) continue;
      return false;
    }
    if (r.kind == Resolution::Import || r.kind == Resolution::FromImport) {
      std::string dotted = r.dotted.empty() ? name : r.dotted;
      for (const auto& a : attrs) dotted += "." + a;
      if (kb_.pure_bases.contains(dotted) || kb_.safe_bases.contains(dotted)) continue;
    }
    return false;
  }
  return true;
}

// An eager class whose header is known pure (as above) and whose body calls
// things at class level (`_sample = textwrap.dedent(...)` in importlib.
// metadata's Sectioned, `x = helper()`), where every such call runs code
// outside the class body: what those calls may touch is reached through what
// they mention, as for an eager expression statement (a module function's
// call_reads through its binding unit; another module's code touches no
// pending input of this one, the limit DESIGN accepts for every eager call).
// Not when the body may run its own methods' code at class level: a nested
// class, a method decorator that is not a plain wrapper, `await`/`yield`, or a
// call mentioning a name the body binds (a method handed to map(),
// `locals().update(...)` with one, a class-local descriptor); then the whole
// body is mentioned.
bool Analyzer::class_calls_outside_code(const Unit& u, Node s, Names& out) const {
  if (u.stmts.size() != 1 || u.kind != "class" || !plan_header(u, s) || !s.list("keywords").empty()) return false;
  for (Node b : s.list("bases"))
    if (runs_code(b)) return false;
  Names local;
  std::vector<Node> calls;
  for (Node st : s.list("body")) {
    K k = st.kind();
    if (k == K::ClassDef) return false;
    if (k == K::FunctionDef || k == K::AsyncFunctionDef)
      for (Node d : st.list("decorator_list"))
        if (!wrapping_decorator(d)) return false;
    class_level_bindings(st, local);
    class_level_calls(st, calls);
  }
  bool other = false;
  std::function<void(Node)> look = [&](Node n) {
    if (!n || other) return;
    K k = n.kind();
    if (k == K::FunctionDef || k == K::AsyncFunctionDef || k == K::Lambda) return;  // bodies run later
    if (k == K::Await || k == K::Yield || k == K::YieldFrom) other = true;
    for_each_child(n, look);
  };
  for (Node st : s.list("body")) look(st);
  if (other) return false;
  Names mentioned;
  for (Node c : calls) {
    Names names;
    all_names(c, names);
    for (const auto& n : names)
      if (local.count(n)) return false;
    mentioned.insert(names.begin(), names.end());
  }
  definition_mentions(s, out);
  out.insert(mentioned.begin(), mentioned.end());
  return true;
}

// `if __name__ == "__main__":` (either operand order) in a module imported
// under its own name: plans run only in a module made by lazyexec's loader
// for its spec's name (runpy, `python -m` and scripts run the loader's plain
// get_code), so the test is false whenever the plan runs. The statement stays
// eager and in the eager code as written; only the stable-inputs plan and the
// compile stage's forcing skip its body, which cannot run.
// Unit::def_calls: whether the unit's definition-time code makes a call
// that may ask isinstance/issubclass (any call but a builtin constructor of
// constants: pathlib's `drive_letters = set('abc...')`), a decorator, or a
// class keyword (a metaclass). Function and lambda bodies run later.
bool Analyzer::definition_calls(const Unit& u, Node s) const {
  static const std::set<std::string> constructors = {"set", "frozenset", "list", "tuple", "dict", "str", "bytes",
                                                     "int", "float", "complex", "bool", "range", "object"};
  // property, staticmethod, classmethod (and a property's .setter/.deleter/
  // .getter) wrap the function and ask nothing.
  auto builtin_wrapper = [&](Node d) {
    if (d.kind() == K::Attribute && (d.str("attr") == "setter" || d.str("attr") == "deleter" || d.str("attr") == "getter"))
      return true;
    if (d.kind() != K::Name) return false;
    std::string id = d.str("id");
    return (id == "property" || id == "staticmethod" || id == "classmethod") &&
           resolve(id, u.id).kind == Resolution::Builtin;
  };
  // A class of this module whose instances are made without running code of
  // its making but an __init__ that calls nothing (Unit::plain_new; its local
  // bases' too): pathlib's `_posix_flavour = _PosixFlavour()`.
  std::function<bool(const std::string&, int)> quiet_class = [&](const std::string& name, int depth) {
    if (depth > 8) return false;
    Resolution r = resolve(name, u.id);
    if (r.kind != Resolution::LocalClass || r.unit < 0 || !units_[(size_t)r.unit].plain_new) return false;
    Node c = unit_nodes_[(size_t)r.unit];
    if (c.kind() != K::ClassDef) return false;
    bool calls = false;
    std::function<void(Node)> any_call = [&](Node n) {
      if (calls) return;
      if (n.kind() == K::Call) calls = true;
      else for_each_child(n, any_call);
    };
    for (Node st : c.list("body"))
      if (st.kind() == K::FunctionDef && st.str("name") == "__init__")
        for (Node b : st.list("body")) any_call(b);
    if (calls) return false;
    for (Node b : c.list("bases")) {
      if (b.kind() != K::Name) return false;
      Resolution br = resolve(b.str("id"), u.id);
      if (br.kind == Resolution::Builtin && b.str("id") == "object") continue;
      if (!quiet_class(b.str("id"), depth + 1)) return false;
    }
    return true;
  };
  std::function<bool(Node)> constant = [&](Node e) {
    switch (e.kind()) {
      case K::Constant: return true;
      case K::Tuple: case K::List: case K::Set:
        for (Node x : e.list("elts"))
          if (!constant(x)) return false;
        return true;
      default: return false;
    }
  };
  bool found = false;
  std::function<void(Node)> walk = [&](Node n) {
    if (!n || found) return;
    switch (n.kind()) {
      case K::Lambda:
        for (Node d : n.get("args").list("defaults")) walk(d);
        for (Node d : n.get("args").list("kw_defaults")) walk(d);
        return;
      case K::FunctionDef:
      case K::AsyncFunctionDef:
        for (Node d : n.list("decorator_list"))
          if (!builtin_wrapper(d)) {
            found = true;
            return;
          }
        walk(n.get("args"));  // defaults and annotations run now
        walk(n.get("returns"));
        return;
      case K::ClassDef:
        if (!n.list("decorator_list").empty() || !n.list("keywords").empty()) {
          found = true;
          return;
        }
        for (Node b : n.list("bases")) walk(b);
        for (Node st : n.list("body")) walk(st);
        return;
      case K::Call: {
        Node f = n.get("func");
        bool allowed = f.kind() == K::Name && n.list("keywords").empty() &&
                       ((constructors.count(f.str("id")) && resolve(f.str("id"), u.id).kind == Resolution::Builtin) ||
                        quiet_class(f.str("id"), 0));
        for (Node a : n.list("args"))
          if (!constant(a)) allowed = false;
        if (!allowed) {
          found = true;
          return;
        }
        return;
      }
      default: for_each_child(n, walk);
    }
  };
  walk(s);
  return found;
}

// Whether `name` (read at unit `unit`) is a class whose metaclass is `type`
// and whose every base is one too (or `object`): ABCMeta.register's
// `issubclass(abc, cls)` then runs type's check, no code of this module.
// A builtin type qualifies.
bool Analyzer::plain_registrant(const std::string& name, int unit, int depth) const {
  if (depth > 8) return false;
  Resolution r = resolve(name, unit);
  if (r.kind == Resolution::Builtin) {
    PyObject* t = PyDict_GetItemString(builtins_.get(), name.c_str());
    return t != nullptr && PyType_Check(t) && Py_TYPE(t) == &PyType_Type;
  }
  if (r.kind != Resolution::LocalClass || r.unit < 0) return false;
  auto b = binders_.find(name);
  if (b == binders_.end() || b->second.size() != 1) return false;
  Node c = unit_nodes_[(size_t)r.unit];
  if (c.kind() != K::ClassDef || !c.list("keywords").empty()) return false;
  for (Node base : c.list("bases"))
    if (base.kind() != K::Name || !plain_registrant(base.str("id"), r.unit, depth + 1)) return false;
  return true;
}

// Unit::abc_registrant: `ABC.register(Cls)` as an expression statement, the
// ABC a KB abc_registries entry, Cls a plain_registrant.
std::string Analyzer::abc_registrant(const Unit& u, Node s) const {
  if (u.lazy || s.kind() != K::Expr) return {};
  Node v = s.get("value");
  if (v.kind() != K::Call || v.list("args").size() != 1 || !v.list("keywords").empty()) return {};
  Node f = v.get("func");
  if (f.kind() != K::Attribute || f.str("attr") != "register") return {};
  std::string abc = callee_dotted(f.get("value"), u.id);
  Node a = v.list("args")[0];
  if (abc.empty() || !kb_.abc_registries.contains(abc) || a.kind() != K::Name) return {};
  if (!plain_registrant(a.str("id"), u.id, 0)) return {};
  return a.str("id");
}

void Analyzer::collect_subclass_reads(Node module) {
  // `a.b.C` as spelled, when every part is a plain name and the root is
  // bound at module level or is a builtin; "" otherwise.
  auto spelled = [&](Node e) -> std::string {
    std::string out;
    while (e.kind() == K::Attribute) {
      out = "." + e.str("attr") + out;
      e = e.get("value");
    }
    if (e.kind() != K::Name) return "";
    std::string root = e.str("id");
    if (!binders_.count(root) && !PyDict_GetItemString(builtins_.get(), root.c_str())) return "";
    return root + out;
  };
  auto note = [&](Node receiver, int line) {
    std::string name = spelled(receiver);
    // type.__subclasses__(t) lists t's: any class.
    if (name.empty() || name == "type") {
      if (!subclasses_read_any_) subclasses_read_any_ = line;
    } else {
      subclasses_read_.emplace(name, line);
    }
  };
  std::function<void(Node)> walk = [&](Node n) {
    if (n.kind() == K::Attribute && n.str("attr") == "__subclasses__") {
      note(n.get("value"), n.line());
    } else if (n.kind() == K::Call) {  // getattr(C, "__subclasses__")
      Node f = n.get("func");
      std::vector<Node> args = n.list("args");
      if (f.kind() == K::Name && f.str("id") == "getattr" && args.size() >= 2 && args[1].kind() == K::Constant &&
          PyUnicode_Check(args[1].get("value").raw()) &&
          PyUnicode_CompareWithASCIIString(args[1].get("value").raw(), "__subclasses__") == 0)
        note(args[0], n.line());
    }
    for_each_child(n, walk);
  };
  walk(module);
}

bool Analyzer::main_guard(Node s) const {
  if (!name_known_ || s.kind() != K::If) return false;
  Node t = s.get("test");
  if (t.kind() != K::Compare) return false;
  std::vector<Node> ops = t.list("ops"), rights = t.list("comparators");
  if (ops.size() != 1 || ops[0].kind() != K::Eq) return false;
  auto is_name = [](Node e) { return e.kind() == K::Name && e.str("id") == "__name__"; };
  auto is_main = [](Node e) {
    if (e.kind() != K::Constant) return false;
    PyObject* v = e.get("value").raw();
    return PyUnicode_Check(v) && PyUnicode_CompareWithASCIIString(v, "__main__") == 0;
  };
  Node left = t.get("left");
  return (is_name(left) && is_main(rights[0])) || (is_main(left) && is_name(rights[0]));
}

void Analyzer::definition_mentions(Node s, Names& out) const {
  if (s.kind() == K::ClassDef) {
    for (Node b : s.list("bases")) all_names(b, out);
    for (Node st : s.list("body")) definition_names(st, out);
    return;
  }
  definition_names(s, out);
}

// `from . import sub` (or `from pkg import sub`) in pkg/__init__.py, where
// pkg/sub.py or pkg/sub/__init__.py exists: the name is the submodule (unless
// the package binds it itself, which the rebinding rule keeps eager), and
// reading its attributes is reading a module's attributes.
bool Analyzer::is_own_submodule(const std::string& dotted) const {
  if (package_dir_.empty() || module_.name.empty()) return false;
  if (dotted.size() <= module_.name.size() + 1 || dotted.compare(0, module_.name.size(), module_.name) != 0 ||
      dotted[module_.name.size()] != '.')
    return false;
  std::string rest = dotted.substr(module_.name.size() + 1);
  if (rest.find('.') != std::string::npos) return false;
  std::error_code ec;
  std::filesystem::path dir(package_dir_);
  return std::filesystem::is_regular_file(dir / (rest + ".py"), ec) ||
         std::filesystem::is_regular_file(dir / rest / "__init__.py", ec);
}

namespace {

// Does expression `n` hold a scope of its own (lambda, comprehension)? Code
// there reads module names through the globals only, not through the
// locals a unit's code runs with.
bool has_nested_scope(Node n) {
  if (!n) return false;
  K k = n.kind();
  if (k == K::Lambda || k == K::ListComp || k == K::SetComp || k == K::DictComp || k == K::GeneratorExp) return true;
  bool found = false;
  for_each_child(n, [&](Node c) { found = found || has_nested_scope(c); });
  return found;
}

}  // namespace

// A temporary import: a name bound once by a lazy import of a single name,
// read only while lazy units between it and a later top-level `del NAME`
// are defined, and mentioned nowhere else (logging's `from string import
// Formatter as StrFormatter`, `_str_formatter = StrFormatter()`, `del
// StrFormatter`). Eagerly the name exists only while the module loads. The
// `del` would force every reader, and with it the import, at import time;
// instead each reader runs the import itself before its own statement and
// the `del` after it, in its scratch namespace, so the name is never
// published, and the import and the `del` leave the module's eager code
// (reason `absorbed`). Readers are plain assignments and undecorated or
// decorated `def`s whose definition-time code holds no lambda or
// comprehension (those read globals only, not the unit's locals); a class
// body would not see the unit's locals either. Running the import once per
// reader gives each the same module or attribute, as a lazy `from m import
// x` gives what m.x is at its first use (rule 7).
void Analyzer::absorb_temporaries() {
  if (kb_.imports_only || first_namespace_write_ >= 0 || first_star_unit_ >= 0) return;
  for (auto& d : units_) {
    if (d.lazy || d.reason.code != Code::DelStatement || d.depth != 0 || d.stmts.size() != 1) continue;
    Node del = unit_nodes_[(size_t)d.id];
    std::vector<Node> targets = del.list("targets");
    if (del.kind() != K::Delete || targets.size() != 1 || targets[0].kind() != K::Name) continue;
    const std::string n = targets[0].str("id");
    auto b = binders_.find(n);
    if (b == binders_.end() || b->second.size() != 1) continue;
    Unit& imp = units_[(size_t)b->second[0]];
    Node is = unit_nodes_[(size_t)imp.id];
    if (!imp.lazy || imp.id >= d.id || imp.depth != 0 || imp.stmts.size() != 1 || imp.binds.size() != 1 ||
        (imp.kind != "import" && imp.kind != "from-import") || is.list("names").size() != 1 || bound_in_compound_.count(n))
      continue;
    std::vector<int> readers;
    bool ok = true;
    for (const auto& u : units_) {
      if (u.id == d.id || u.id == imp.id) continue;
      if (u.call_reads.count(n) || u.name_reads.count(n) || u.annotation_reads.count(n) || u.global_writes.count(n)) {
        ok = false;
        break;
      }
      if (!u.lazy) {
        Names mentioned;
        for (int st : u.stmts) all_names(stmts_[(size_t)st].node, mentioned);
        if (mentioned.count(n)) ok = false;
      } else if (u.def_reads.count(n)) {
        Node s = unit_nodes_[(size_t)u.id];
        bool plain = u.depth == 0 && u.stmts.size() == 1 && u.id > imp.id && u.id < d.id;
        if (plain && s.kind() == K::Assign) {
          plain = !has_nested_scope(s.get("value"));
        } else if (plain && (s.kind() == K::FunctionDef || s.kind() == K::AsyncFunctionDef)) {
          for (Node dec : s.list("decorator_list")) plain = plain && !has_nested_scope(dec);
          plain = plain && !has_nested_scope(s.get("args")) && !has_nested_scope(s.get("returns"));
        } else {
          plain = false;
        }
        if (!plain) ok = false;
        readers.push_back(u.id);
      }
      if (!ok) break;
    }
    if (!ok || readers.empty()) continue;
    for (int r : readers) {
      Unit& u = units_[(size_t)r];
      absorbed_into_[r].emplace_back(is, del);
      u.def_reads.erase(n);
      u.def_reads.insert(imp.def_reads.begin(), imp.def_reads.end());
      u.imports.insert(u.imports.end(), imp.imports.begin(), imp.imports.end());
    }
    std::string lines;
    for (int r : readers) lines += (lines.empty() ? "" : ", ") + std::to_string(units_[(size_t)r].line);
    imp.lazy = false;
    imp.reason = {Code::Absorbed, "imports " + n + " only for the unit(s) at line(s) " + lines +
                                      ", which run it themselves; deleted at line " + std::to_string(d.line)};
    d.reason = {Code::Absorbed, "deletes the temporary " + n + ", which the unit(s) at line(s) " + lines +
                                    " import and delete themselves"};
  }
}

namespace {

// An expression of constants, names and displays only: evaluating it runs no
// code and reads nothing but the names (entries added to a registry dict).
bool display_of_names(Node n, Names& names) {
  switch (n.kind()) {
    case K::Constant:
      return true;
    case K::Name:
      names.insert(n.str("id"));
      return true;
    case K::Tuple:
    case K::List:
    case K::Set: {
      for (Node e : n.list("elts"))
        if (!display_of_names(e, names)) return false;
      return true;
    }
    case K::Dict: {
      for (Node k : n.list("keys"))
        if (!k || !display_of_names(k, names)) return false;
      for (Node v : n.list("values"))
        if (!display_of_names(v, names)) return false;
      return true;
    }
    default:
      return false;
  }
}

}  // namespace

// Entries added to a lazy dict under a flag (shutil: `_ARCHIVE_FORMATS = {...}`
// then `if _BZ2_SUPPORTED: _ARCHIVE_FORMATS['bztar'] = (_make_tarball, [...],
// "bzip2'ed tar-file")`, where `_BZ2_SUPPORTED` is an availability probe that
// imports bz2). The eager `if` reads the flag at import, so the probe runs at
// every import of the module. Such an `if` runs instead at the end of the
// unit binding the dict, in its scratch namespace (reason `absorbed`), when:
// the dict is bound once, by a lazy plain assignment; the `if` tests a name
// (or `not` a name) and holds, in its branches, only `D['key'] = value` with
// constant keys and values built of constants, names and displays; every name
// it reads besides the dict is bound once (by one statement), before the
// dict's unit, and never rebound through `global`, the tested ones to values that cannot change (mutable_inputs.cpp);
// and nothing between the dict's unit and the `if` mentions the dict. The
// names it reads become the unit's definition-time reads (materialized first,
// watched after the import, forced before a statement touching them).
void Analyzer::absorb_entry_additions() {
  if (kb_.imports_only || first_namespace_write_ >= 0 || first_star_unit_ >= 0) return;
  for (auto& e : units_) {
    if (e.lazy || e.kind != "if" || e.reason.code != Code::CompoundStatement || e.depth != 0 || e.stmts.size() != 1)
      continue;
    Node s = unit_nodes_[(size_t)e.id];
    if (s.kind() != K::If) continue;
    Node test = s.get("test");
    if (test.kind() == K::UnaryOp && test.get("op").kind() == K::Not) test = test.get("operand");
    if (test.kind() != K::Name) continue;
    std::string dict;
    Names reads;
    bool ok = true;
    std::vector<Node> body = s.list("body");
    for (Node b : s.list("orelse")) body.push_back(b);
    for (Node b : body) {
      std::vector<Node> targets = b.list("targets");
      if (b.kind() != K::Assign || targets.size() != 1 || targets[0].kind() != K::Subscript) {
        ok = false;
        break;
      }
      Node base = targets[0].get("value"), key = targets[0].get("slice");
      if (base.kind() != K::Name || key.kind() != K::Constant || (!dict.empty() && dict != base.str("id")) ||
          !display_of_names(b.get("value"), reads)) {
        ok = false;
        break;
      }
      dict = base.str("id");
    }
    if (!ok || dict.empty() || reads.count(dict) || test.str("id") == dict) continue;
    auto db = binders_.find(dict);
    if (db == binders_.end() || db->second.size() != 1) continue;
    Unit& u = units_[(size_t)db->second[0]];
    Node us = unit_nodes_[(size_t)u.id];
    if (!u.lazy || u.id >= e.id || u.depth != 0 || u.stmts.size() != 1 || us.kind() != K::Assign ||
        us.list("targets").size() != 1 || us.list("targets")[0].kind() != K::Name || all_global_writes_.count(dict))
      continue;
    reads.insert(test.str("id"));
    for (const auto& n : reads) {
      auto b = binders_.find(n);
      if (b == binders_.end() || b->second.size() != 1 || b->second[0] >= u.id || all_global_writes_.count(n)) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    const std::string& flag = test.str("id");
    if (!unit_value_immutable(binders_[flag][0], flag)) continue;
    for (int i = u.id + 1; ok && i < e.id; ++i) {
      const Unit& w = units_[(size_t)i];
      if (w.reason.code == Code::Absorbed) continue;  // an earlier addition to this dict: runs with it, in order
      if (w.def_reads.count(dict)) ok = false;
      if (!w.lazy) {
        // What the eager statement may read, transitively: the code of the
        // units binding what it mentions (function bodies it may call, the
        // values behind names), as the stable-inputs plan reaches it.
        Names reached;
        std::vector<std::string> work;
        for (int st : w.stmts) {
          Names mentioned;
          all_names(stmts_[(size_t)st].node, mentioned);
          work.insert(work.end(), mentioned.begin(), mentioned.end());
        }
        while (!work.empty() && ok) {
          std::string name = std::move(work.back());
          work.pop_back();
          if (name == dict) ok = false;
          if (!reached.insert(name).second) continue;
          auto bs = binders_.find(name);
          if (bs == binders_.end()) continue;
          for (int id : bs->second) {
            const Unit& r = units_[(size_t)id];
            for (const Names* set : {&r.call_reads, &r.def_reads, &r.global_writes})
              for (const auto& x : *set)
                if (!reached.count(x)) work.push_back(x);
          }
        }
      }
    }
    if (!ok) continue;
    appended_[u.id].push_back(s);
    u.def_reads.insert(reads.begin(), reads.end());
    e.reason = {Code::Absorbed, "adds entries to " + dict + ": runs at the end of the unit at line " +
                                    std::to_string(u.line) + ", which binds it"};
  }
}

ModuleAnalysis Analyzer::run(PyObject* source, PyObject* filename) {
  if (module_.is_package && filename && PyUnicode_Check(filename)) {
    std::filesystem::path file(py::utf8(filename));
    if (file.filename() == "__init__.py") package_dir_ = file.parent_path().string();
  }
  builtins_ = py::Ref::borrow(PyEval_GetBuiltins());
  if (!builtins_) {
    py::Ref mod = py::check(PyImport_ImportModule("builtins"));
    builtins_ = py::Ref::borrow(PyModule_GetDict(mod.get()));
  }
  {
    py::Ref compile = py::check(PyObject_GetAttrString(PyImport_AddModule("builtins"), "compile"));
    // PyCF_ONLY_AST = 0x400; dont_inherit so the caller's __future__ flags do not leak in.
    tree_ = py::check(PyObject_CallFunction(compile.get(), "OOsii", source, filename, "exec", 0x400, 1));
  }
  Node module(tree_.get());
  std::vector<Node> body = module.list("body");

  // Names version branches depend on must be bound exactly once, by the expected import.
  {
    std::map<std::string, int> counts;
    std::vector<std::string> names;
    for (Node s : body) bound_names(s, names);
    for (auto& n : names) counts[n]++;
    name_known_ = !module_.name.empty() && module_.name != "__main__" && counts["__name__"] == 0;
    for (Node s : body) {
      if (s.kind() == K::Import)
        for (Node a : s.list("names")) {
          if (a.str("name") == "sys" && a.str("asname").empty()) sys_ok_ = counts["sys"] == 1;
          if (a.str("name") == "typing" && a.str("asname").empty()) typing_ok_ = counts["typing"] == 1;
        }
      if (s.kind() == K::ImportFrom && s.num("level") == 0 &&
          (s.str("module") == "typing" || s.str("module") == "typing_extensions"))
        for (Node a : s.list("names"))
          if (a.str("name") == "TYPE_CHECKING" && a.str("asname").empty())
            type_checking_ok_ = counts["TYPE_CHECKING"] == 1;
    }
  }

  flatten(body, 0);
  split_units();
  index_bindings();
  collect_scopes(source, filename);
  // Postponed annotations (`from __future__ import annotations`) are read
  // later, by typing.get_type_hints, through the function's __globals__: they
  // are call-time reads. So an import used only as a type is used (not a
  // side-effect import), and settling binds it with the function.
  if (future_annotations_)
    for (auto& u : units_)
      if (u.kind == "def" || u.kind == "class")
        for (int st : u.stmts) annotation_names(stmts_[(size_t)st].node, u.call_reads);

  static const std::set<std::string> compound = {"if", "for", "while", "with", "try", "match"};
  for (const auto& u : units_) {
    if (!compound.count(u.kind)) continue;
    for (const auto& n : u.binds) bound_in_compound_.emplace(n, u.line);
  }

  collect_module_attr_writes(module);
  mark_import_state_users();
  collect_subclass_reads(module);

  for (Node s : body) membership_tests(s, binders_, membership_tested_);

  ModuleAnalysis out;
  for (auto& u : units_) decide_unit(u);

  // Module-wide facts and rules.
  for (const auto& u : units_) {
    if (u.depth != 0 || u.kind != "assign") continue;
    for (const auto& n : u.binds) {
      if (n == "__lazy_modules__") {  // PEP 810: names of modules whose imports are lazy
        Node v = unit_nodes_[(size_t)u.id].get("value");
        if (v.kind() == K::List || v.kind() == K::Tuple || v.kind() == K::Set) {
          out.lazy_modules.clear();
          for (Node e : v.list("elts"))
            if (e.kind() == K::Constant && PyUnicode_Check(e.get("value").raw()))
              out.lazy_modules.push_back(py::utf8(e.get("value").raw()));
        }
        continue;
      }
      if (n != "__lazy_module__") continue;
      Node v = unit_nodes_[(size_t)u.id].get("value");
      if (v.kind() == K::Constant && v.get("value").raw() == Py_True) out.lazy_marker = "true";
      else if (v.kind() == K::Constant && v.get("value").raw() == Py_False) out.lazy_marker = "false";
      else out.lazy_marker = "other";
    }
  }
  if (!module_.name.empty() && kb_.module_never_lazy(module_.name)) {
    out.module_eager = true;
    out.module_reason = {Code::NeverLazyModule, "module " + module_.name + " is in the never-lazy set"};
  } else if (out.lazy_marker == "false") {
    out.module_eager = true;
    out.module_reason = {Code::OptedOut};
  } else {
    NamespaceWrites writes;
    std::map<std::string, Node> alias_defs;
    for (Node s : body) find_writes(s, binders_, writes, alias_defs);
    for (const auto& [name, call] : alias_defs) {
      auto b = binders_.find(name);
      if (b == binders_.end() || b->second.size() != 1) continue;
      bool ok = true;
      for (Node s : body) ok = ok && write_only_alias(s, name);
      if (ok) {
        writes.calls.insert(call.raw());
        for (Node s : body) alias_write_keys(s, name, writes);
      }
    }
    std::set<std::string> guarded;
    for (Node s : body)
      if (s.kind() == K::Try) {
        std::vector<std::string> v;
        bound_names(s, v);
        guarded.insert(v.begin(), v.end());
      }
    for (Node s : body) {
      std::string why = introspection(s, binders_, false, &writes.calls, &guarded);
      if (!why.empty()) {
        out.module_eager = true;
        out.module_reason = {Code::ModuleIntrospection, "module uses " + why + ", so every statement stays eager"};
        break;
      }
    }
    if (!out.module_eager && !writes.calls.empty())
      for (const auto& u : units_) {
        bool here = false;
        for (int st : u.stmts) here = here || writes.contains(stmts_[(size_t)st].node);
        if (here) {
          namespace_writes(u.id, writes.any, writes.prefixes);
          break;
        }
      }
  }
  if (!out.module_eager)
    side_effect_imports(std::set<std::string>(out.lazy_modules.begin(), out.lazy_modules.end()));
  if (out.module_eager)
    for (auto& u : units_)
      if (u.lazy) {
        u.lazy = false;
        u.reason = out.module_reason;
      }

  // `from m import a` reads m's attribute a when it runs: where the module
  // also binds m's root (`import sys` beside `from sys import intern`), a
  // later eager statement mentioning that root may change the attribute
  // first (ansible's `sys.intern = _intern`), so the stable-inputs plan
  // forces the unit before it (Unit::plan_reads: the from-import reads the
  // module through sys.modules, not the global, so the import binding the
  // root need not run first).
  for (auto& u : units_) {
    if (!u.lazy || u.kind != "from-import" || u.imports.empty() || u.imports[0].empty() || u.imports[0][0] == '.')
      continue;
    std::string root = u.imports[0].substr(0, u.imports[0].find('.'));
    auto b = binders_.find(root);
    if (b == binders_.end()) continue;
    for (int id : b->second)
      if (units_[(size_t)id].kind == "import") {
        u.plan_reads.insert(root);
        break;
      }
  }

  if (!out.module_eager) {
    absorb_temporaries();
    absorb_entry_additions();
  }

  // What each unit mentions, for the stable-inputs plan.
  for (auto& u : units_) {
    if (u.reason.code == Code::Absorbed) continue;  // runs inside its readers only
    Node s = unit_nodes_[(size_t)u.id];
    if (u.lazy) {
      u.def_calls = false;
      if (u.kind != "import" && u.kind != "from-import")
        for (int st : u.stmts) u.def_calls = u.def_calls || definition_calls(u, stmts_[(size_t)st].node);
    } else {
      u.abc_registrant = abc_registrant(u, s);
    }
    if (u.kind == "if" && u.reason.code == Code::DecidedBranch) all_names(s.get("test"), u.mentions);
    else if (u.kind == "if" && main_guard(s)) {
      // Its body never runs here: what it calls cannot touch what lazy units
      // read, and it reads nothing through the globals dict directly.
      all_names(s.get("test"), u.mentions);
      for (Node e : s.list("orelse")) all_names(e, u.mentions);
    }
    else if (u.kind == "import" || u.kind == "from-import") u.mentions.insert(u.binds.begin(), u.binds.end());
    else if (!u.lazy && definition_runs_no_body(u, s)) definition_mentions(s, u.mentions);
    else if (!u.lazy && class_calls_outside_code(u, s, u.mentions)) continue;
    else
      for (int st : u.stmts) all_names(stmts_[(size_t)st].node, u.mentions);
  }
  // A namespace write may rebind any name: the lazy units before it that
  // read names at definition time run first (they must see what they would
  // have eagerly), as before any statement touching what they read.
  // (Only for the plan: the compile stage reads `mentions` as what an eager
  // statement reads.)
  if (first_namespace_write_ >= 0) {
    std::vector<Unit> planned = units_;
    for (auto& u : planned) u.captured_reads.clear();  // a namespace write may rebind what they took
    for (const auto& [n, ids] : binders_)
      if (namespace_may_bind(n)) planned[(size_t)first_namespace_write_].mentions.insert(n);
    out.forces = plan_forces(planned, star_);
  } else {
    out.forces = plan_forces(units_, star_);
  }
  out.statements = (int)stmts_.size();
  out.top_level_statements = (int)body.size();
  out.future_annotations = future_annotations_;
  for (const auto& st : stmts_)
    if (st.node.kind() == K::AnnAssign && st.node.num("simple") == 1) out.module_annotations = true;
  // Hand the tree to the compile stage.
  PyObject* tree = tree_.get();
  Py_INCREF(tree);
  out.syntax.tree = std::shared_ptr<void>(tree, [](void* p) {
    PyGILState_STATE g = PyGILState_Ensure();
    Py_DECREF(static_cast<PyObject*>(p));
    PyGILState_Release(g);
  });
  for (const auto& u : units_) {
    std::vector<void*> nodes;
    auto absorbed = absorbed_into_.find(u.id);
    if (absorbed != absorbed_into_.end())
      for (const auto& [import, del] : absorbed->second) nodes.push_back(import.raw());
    for (int st : u.stmts) nodes.push_back(stmts_[(size_t)st].node.raw());
    auto appended = appended_.find(u.id);
    if (appended != appended_.end())
      for (Node a : appended->second) nodes.push_back(a.raw());
    if (absorbed != absorbed_into_.end())
      for (const auto& [import, del] : absorbed->second) nodes.push_back(del.raw());
    out.syntax.statements.push_back(std::move(nodes));
    Node alias = unit_alias_[(size_t)u.id];
    out.syntax.alias.push_back(alias ? alias.raw() : nullptr);
    if (u.kind == "future-import" && alias) out.syntax.future_features.push_back(alias.str("name"));
  }
  out.units = std::move(units_);
  return out;
}

void restrict_to_lazy_modules(ModuleAnalysis& m) {
  std::set<std::string> wanted(m.lazy_modules.begin(), m.lazy_modules.end());
  std::vector<bool> star(m.units.size(), false);
  for (auto& u : m.units) {
    star[(size_t)u.id] = u.kind == "star-import";
    if (!u.lazy) continue;
    bool keep = (u.kind == "import" || u.kind == "from-import") && !u.imports.empty() && wanted.count(u.imports[0]);
    if (!keep) {
      u.lazy = false;
      u.reason = {Code::OtherStatement, "not an import of a module named in __lazy_modules__ (PEP 810 mode)"};
    }
  }
  m.forces = plan_forces(m.units, star);
}

// Configuration `defer = "imports"`: what PEP 690/810 defer, on the same
// machinery. Only import units keep a lazy verdict; the force plan is redone
// because a unit that turned eager may now rebind or mutate a lazy input.
void restrict_to_imports(ModuleAnalysis& m) {
  std::vector<bool> star(m.units.size(), false);
  for (auto& u : m.units) {
    star[(size_t)u.id] = u.kind == "star-import";
    if (u.lazy && u.kind != "import" && u.kind != "from-import") {
      u.lazy = false;
      u.reason = {Code::OtherStatement, "not an import (configuration defer = \"imports\")"};
    }
  }
  m.forces = plan_forces(m.units, star);
}

ModuleAnalysis analyze(PyObject* source, PyObject* filename, const KnowledgeBase& kb, const ModuleInfo& module) {
  Analyzer a(kb, module);
  ModuleAnalysis m = a.run(source, filename);
  if (kb.imports_only) restrict_to_imports(m);
  return m;
}

}  // namespace lazyexec::analyze
