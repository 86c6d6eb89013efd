// Splitting a module into units: decided version branches are flattened, each
// statement becomes one unit (a `from m import a, b` one per bound name), and
// plain `import a.x` / `import a.y` binding the same root `a` share one unit.
#include <unordered_map>

#include "analyze/analyzer_impl.h"

namespace lazyexec::analyze {

bool is_ast_node(PyObject* o) {
  static PyObject* ast_base = [] {
    py::Ref mod = py::check(PyImport_ImportModule("_ast"));
    return py::check(PyObject_GetAttrString(mod.get(), "AST")).release();
  }();
  return PyObject_TypeCheck(o, (PyTypeObject*)ast_base);
}

void for_each_child(Node n, const std::function<void(Node)>& fn) {
  if (!n) return;
  static std::unordered_map<PyTypeObject*, std::vector<std::string>> fields_by_type;
  PyTypeObject* t = Py_TYPE(n.raw());
  auto it = fields_by_type.find(t);
  if (it == fields_by_type.end()) {
    std::vector<std::string> names;
    py::Ref fields = py::Ref::steal(PyObject_GetAttrString((PyObject*)t, "_fields"));
    if (fields && PyTuple_Check(fields.get()))
      for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields.get()); ++i)
        names.push_back(py::utf8(PyTuple_GET_ITEM(fields.get(), i)));
    else
      PyErr_Clear();
    it = fields_by_type.emplace(t, std::move(names)).first;
  }
  for (const auto& f : it->second) {
    Node v = n.get(f.c_str());
    if (!v) continue;
    if (PyList_Check(v.raw())) {
      for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v.raw()); ++i) {
        PyObject* item = PyList_GET_ITEM(v.raw(), i);
        if (is_ast_node(item)) fn(Node(item));
      }
    } else if (is_ast_node(v.raw())) {
      fn(v);
    }
  }
}

namespace {

bool is_scope(K k) {
  return k == K::FunctionDef || k == K::AsyncFunctionDef || k == K::ClassDef || k == K::Lambda ||
         k == K::ListComp || k == K::SetComp || k == K::DictComp || k == K::GeneratorExp;
}

void targets_of(Node t, std::vector<std::string>& out) {
  switch (t.kind()) {
    case K::Name: out.push_back(t.str("id")); break;
    case K::Tuple:
    case K::List:
      for (Node e : t.list("elts")) targets_of(e, out);
      break;
    case K::Starred: targets_of(t.get("value"), out); break;
    default: break;  // attribute/subscript targets bind no module name
  }
}

// Walrus targets bind in the enclosing (module) scope even from inside a
// comprehension (PEP 572), but not from inside a lambda or def.
void walrus_targets(Node n, std::vector<std::string>& out) {
  if (!n) return;
  K k = n.kind();
  if (k == K::NamedExpr) targets_of(n.get("target"), out);
  if (k == K::Lambda || k == K::FunctionDef || k == K::AsyncFunctionDef || k == K::ClassDef) return;
  for_each_child(n, [&](Node c) { walrus_targets(c, out); });
}

std::string import_root(const std::string& dotted) { return dotted.substr(0, dotted.find('.')); }

}  // namespace

// Names a statement binds in the module scope, including inside compound
// statements, but not inside function or class bodies.
void Analyzer::bound_names(Node n, std::vector<std::string>& out) {
  switch (n.kind()) {
    case K::FunctionDef:
    case K::AsyncFunctionDef:
    case K::ClassDef:
      out.push_back(n.str("name"));
      for (Node d : n.list("decorator_list")) walrus_targets(d, out);
      return;
    case K::Import:
      for (Node a : n.list("names")) {
        std::string as = a.str("asname");
        out.push_back(as.empty() ? import_root(a.str("name")) : as);
      }
      return;
    case K::ImportFrom:
      for (Node a : n.list("names")) {
        std::string as = a.str("asname");
        std::string nm = a.str("name");
        if (nm != "*") out.push_back(as.empty() ? nm : as);
      }
      return;
    case K::Assign:
      for (Node t : n.list("targets")) targets_of(t, out);
      walrus_targets(n.get("value"), out);
      return;
    case K::AugAssign:
    case K::AnnAssign:
      if (n.kind() == K::AugAssign || n.get("value")) targets_of(n.get("target"), out);
      walrus_targets(n.get("value"), out);
      return;
    case K::TypeAlias: targets_of(n.get("name"), out); return;
    case K::Delete:
      for (Node t : n.list("targets")) targets_of(t, out);
      return;
    case K::For:
    case K::AsyncFor:
      targets_of(n.get("target"), out);
      walrus_targets(n.get("iter"), out);
      break;
    case K::With:
    case K::AsyncWith:
      for (Node item : n.list("items")) {
        targets_of(item.get("optional_vars"), out);
        walrus_targets(item.get("context_expr"), out);
      }
      break;
    case K::Expr:
    case K::Return:
    case K::Raise:
    case K::Assert:
      walrus_targets(n, out);
      return;
    case K::If:
    case K::While:
      walrus_targets(n.get("test"), out);
      break;
    default: break;
  }
  // Compound statements: walk nested statements, handlers and match cases.
  std::function<void(Node)> visit = [&](Node c) {
    K k = c.kind();
    std::string tn = c.type_name();
    if (tn == "ExceptHandler") {
      std::string nm = c.str("name");
      if (!nm.empty()) out.push_back(nm);
      for (Node s : c.list("body")) bound_names(s, out);
      return;
    }
    if (tn == "MatchAs" || tn == "MatchStar") {
      std::string nm = c.str("name");
      if (!nm.empty()) out.push_back(nm);
    }
    if (tn == "MatchMapping") {
      std::string nm = c.str("rest");
      if (!nm.empty()) out.push_back(nm);
    }
    if (tn == "match_case" || tn.rfind("Match", 0) == 0) {
      for_each_child(c, visit);
      return;
    }
    if (tn == "withitem" || tn == "comprehension" || tn == "arguments" || tn == "keyword") return;
    if (is_scope(k)) return;
    // A nested statement.
    if (c.get("lineno") && (k != K::Other || tn == "TryStar")) {
      bool is_stmt = k == K::FunctionDef || k == K::AsyncFunctionDef || k == K::ClassDef ||
                     k == K::Return || k == K::Delete || k == K::Assign || k == K::AugAssign ||
                     k == K::AnnAssign || k == K::For || k == K::AsyncFor || k == K::While ||
                     k == K::If || k == K::With || k == K::AsyncWith || k == K::Match ||
                     k == K::Raise || k == K::Try || k == K::TryStar || k == K::Assert ||
                     k == K::Import || k == K::ImportFrom || k == K::Global || k == K::Nonlocal ||
                     k == K::Expr || k == K::Pass || k == K::Break || k == K::Continue ||
                     k == K::TypeAlias;
      if (is_stmt) {
        bound_names(c, out);
        return;
      }
    }
  };
  for (const char* field : {"body", "orelse", "finalbody", "handlers", "cases"})
    for (Node c : n.list(field)) visit(c);
}

// ---- compile-time decided branches ------------------------------------------

namespace {

// The value a `sys.version_info` / `sys.platform` expression has in this
// interpreter, or nothing when the expression is not one of those forms.
py::Ref sys_value(Node e) {
  K k = e.kind();
  if (k == K::Attribute) {
    Node v = e.get("value");
    std::string attr = e.str("attr");
    if (v.kind() == K::Name && v.str("id") == "sys" && (attr == "version_info" || attr == "platform"))
      return py::Ref::borrow(PySys_GetObject(attr.c_str()));
    if (v.kind() == K::Attribute && (attr == "major" || attr == "minor" || attr == "micro")) {
      py::Ref base = sys_value(v);
      if (!base) return {};
      py::Ref r = py::Ref::steal(PyObject_GetAttrString(base.get(), attr.c_str()));
      if (!r) PyErr_Clear();
      return r;
    }
    return {};
  }
  if (k == K::Subscript) {
    py::Ref base = sys_value(e.get("value"));
    if (!base) return {};
    Node s = e.get("slice");
    if (s.kind() == K::Other && std::string(s.type_name()) == "Index") s = s.get("value");  // 3.8 compat
    py::Ref key;
    if (s.kind() == K::Constant) {
      key = py::Ref::borrow(s.get("value").raw());
    } else if (s.kind() == K::Slice) {
      auto part = [](Node p) -> py::Ref {
        if (!p) return py::Ref::borrow(Py_None);
        if (p.kind() == K::Constant && PyLong_Check(p.get("value").raw()))
          return py::Ref::borrow(p.get("value").raw());
        return {};
      };
      py::Ref lo = part(s.get("lower")), hi = part(s.get("upper")), st = part(s.get("step"));
      if (!lo || !hi || !st) return {};
      key = py::Ref::steal(PySlice_New(lo.get(), hi.get(), st.get()));
    }
    if (!key) return {};
    py::Ref r = py::Ref::steal(PyObject_GetItem(base.get(), key.get()));
    if (!r) PyErr_Clear();
    return r;
  }
  return {};
}

// A constant or a tuple of constants from the source.
py::Ref literal(Node e) {
  if (e.kind() == K::Constant) return py::Ref::borrow(e.get("value").raw());
  if (e.kind() == K::Tuple) {
    std::vector<Node> elts = e.list("elts");
    py::Ref t = py::Ref::steal(PyTuple_New((Py_ssize_t)elts.size()));
    if (!t) throw py::PyError{};
    for (size_t i = 0; i < elts.size(); ++i) {
      py::Ref v = literal(elts[i]);
      if (!v) return {};
      PyTuple_SET_ITEM(t.get(), (Py_ssize_t)i, v.release());
    }
    return t;
  }
  return {};
}

}  // namespace

std::optional<bool> Analyzer::decide(Node test) const {
  switch (test.kind()) {
    case K::Constant: {
      // `if True:` / `if 0:`: CPython's own compiler drops the branch not
      // taken (the code object has no test), so nothing can run there.
      // pytest's compat module re-exports typing.overload under `if True:`.
      int r = PyObject_IsTrue(test.get("value").raw());
      if (r < 0) {
        PyErr_Clear();
        return std::nullopt;
      }
      return r == 1;
    }
    case K::Name:
      if (type_checking_ok_ && test.str("id") == "TYPE_CHECKING") return false;
      return std::nullopt;
    case K::Attribute:
      if (typing_ok_ && test.str("attr") == "TYPE_CHECKING" && test.get("value").kind() == K::Name &&
          test.get("value").str("id") == "typing")
        return false;
      return std::nullopt;
    case K::UnaryOp: {
      if (test.get("op").kind() != K::Not) return std::nullopt;
      auto v = decide(test.get("operand"));
      if (!v) return std::nullopt;
      return !*v;
    }
    case K::BoolOp: {
      bool is_and = test.get("op").kind() == K::And;
      // Every operand must be decidable: an undecided one could still run code.
      bool result = is_and;
      for (Node v : test.list("values")) {
        auto d = decide(v);
        if (!d) return std::nullopt;
        result = is_and ? (result && *d) : (result || *d);
      }
      return result;
    }
    case K::Compare: {
      if (!sys_ok_) return std::nullopt;
      py::Ref left = sys_value(test.get("left"));
      if (!left) return std::nullopt;
      std::vector<Node> ops = test.list("ops"), rights = test.list("comparators");
      bool result = true;
      for (size_t i = 0; i < ops.size(); ++i) {
        py::Ref right = literal(rights[i]);
        if (!right) return std::nullopt;
        int r = -1;
        switch (ops[i].kind()) {
          case K::Eq: r = PyObject_RichCompareBool(left.get(), right.get(), Py_EQ); break;
          case K::NotEq: r = PyObject_RichCompareBool(left.get(), right.get(), Py_NE); break;
          case K::Lt: r = PyObject_RichCompareBool(left.get(), right.get(), Py_LT); break;
          case K::LtE: r = PyObject_RichCompareBool(left.get(), right.get(), Py_LE); break;
          case K::Gt: r = PyObject_RichCompareBool(left.get(), right.get(), Py_GT); break;
          case K::GtE: r = PyObject_RichCompareBool(left.get(), right.get(), Py_GE); break;
          case K::In: r = PySequence_Contains(right.get(), left.get()); break;
          case K::NotIn:
            r = PySequence_Contains(right.get(), left.get());
            if (r >= 0) r = !r;
            break;
          default: return std::nullopt;
        }
        if (r < 0) {
          PyErr_Clear();
          return std::nullopt;
        }
        result = result && r;
        left = right;
      }
      return result;
    }
    case K::Call: {
      // sys.platform.startswith("...")
      if (!sys_ok_) return std::nullopt;
      Node f = test.get("func");
      if (f.kind() != K::Attribute || f.str("attr") != "startswith" || !test.list("keywords").empty())
        return std::nullopt;
      py::Ref base = sys_value(f.get("value"));
      std::vector<Node> args = test.list("args");
      if (!base || args.size() != 1) return std::nullopt;
      py::Ref arg = literal(args[0]);
      if (!arg || !PyUnicode_Check(base.get())) return std::nullopt;
      py::Ref r = py::Ref::steal(PyObject_CallMethod(base.get(), "startswith", "O", arg.get()));
      if (!r) {
        PyErr_Clear();
        return std::nullopt;
      }
      return r.get() == Py_True;
    }
    default: return std::nullopt;
  }
}

void Analyzer::flatten(const std::vector<Node>& body, int depth) {
  for (Node s : body) {
    stmts_.push_back({s, depth});
    if (s.kind() != K::If) continue;
    auto taken = decide(s.get("test"));
    if (!taken) continue;
    flatten(s.list(*taken ? "body" : "orelse"), depth + 1);
  }
}

std::string Analyzer::absolute_module(const std::string& mod, int level) const {
  if (level == 0) return mod;
  std::string pkg = module_.name;
  if (!module_.is_package) {
    auto dot = pkg.rfind('.');
    pkg = dot == std::string::npos ? std::string() : pkg.substr(0, dot);
  }
  for (int i = 1; i < level && !pkg.empty(); ++i) {
    auto dot = pkg.rfind('.');
    pkg = dot == std::string::npos ? std::string() : pkg.substr(0, dot);
  }
  if (pkg.empty()) return std::string(level, '.') + mod;  // unknown package: keep it relative
  return mod.empty() ? pkg : pkg + "." + mod;
}

// Typed code declares a function's signatures first: `@overload def f(x:
// int) -> int: ...`, then `def f(x): ...`, the one implementation. Each
// overload binds `f` to a stub the next statement replaces (and, from 3.11,
// typing records it for get_overloads), so nothing can read the stubs in
// between: the run of statements is one unit binding `f` once, which runs
// them in order. Statement `i` joins the unit before it when that unit is a
// function definition (or such a run) of the same name, at the same depth,
// right before it, whose last statement is decorated with a name spelled
// `overload` (the unit's verdict checks every decorator of every statement
// as for any definition: an impure one keeps the whole run eager, in order).
// Without this, `f` is bound several times and every statement is eager
// (`rebound`), with whatever a decorator of the last one forces first.
bool Analyzer::joins_overloads(int i) const {
  Node s = stmts_[(size_t)i].node;
  if ((s.kind() != K::FunctionDef && s.kind() != K::AsyncFunctionDef) || units_.empty()) return false;
  const Unit& p = units_.back();
  Node ps = unit_nodes_.back();
  if (p.kind != "def" || p.stmts.back() != i - 1 || p.depth != stmts_[(size_t)i].depth ||
      ps.str("name") != s.str("name"))
    return false;
  for (Node d : ps.list("decorator_list")) {
    if (d.kind() == K::Name && d.str("id") == "overload") return true;
    if (d.kind() == K::Attribute && d.str("attr") == "overload") return true;
  }
  return false;
}

void Analyzer::split_units() {
  std::unordered_map<std::string, int> import_group;  // root -> unit of plain `import root...`
  auto new_unit = [&](int stmt, const char* kind, Node alias = Node(), int part = -1) -> Unit& {
    Node s = stmts_[(size_t)stmt].node;
    Unit u;
    u.id = (int)units_.size();
    u.kind = kind;
    u.stmts = {stmt};
    u.part = part;
    u.line = s.line();
    u.end_line = s.end_line();
    u.col = s.col();
    u.lines = {u.line};
    u.depth = stmts_[(size_t)stmt].depth;
    // Decorators come before `def`/`class`: the unit starts at the first one.
    for (Node d : s.list("decorator_list")) u.line = std::min(u.line, d.line());
    u.lines[0] = u.line;
    units_.push_back(std::move(u));
    unit_nodes_.push_back(s);
    unit_alias_.push_back(alias);
    star_.push_back(false);
    return units_.back();
  };

  for (int i = 0; i < (int)stmts_.size(); ++i) {
    Node s = stmts_[(size_t)i].node;
    switch (s.kind()) {
      case K::Import: {
        std::vector<Node> aliases = s.list("names");
        for (size_t a = 0; a < aliases.size(); ++a) {
          std::string name = aliases[a].str("name"), as = aliases[a].str("asname");
          int part = aliases.size() > 1 ? (int)a : -1;
          if (as.empty()) {
            std::string root = import_root(name);
            auto g = import_group.find(root);
            if (g != import_group.end()) {
              Unit& u = units_[(size_t)g->second];
              if (u.stmts.back() != i) {
                u.stmts.push_back(i);
                u.lines.push_back(s.line());
              }
              u.imports.push_back(name);
              continue;
            }
            Unit& u = new_unit(i, "import", aliases[a], part);
            u.binds = {root};
            u.imports = {name};
            import_group[root] = u.id;
          } else {
            Unit& u = new_unit(i, "import", aliases[a], part);
            u.binds = {as};
            u.imports = {name};
          }
        }
        break;
      }
      case K::ImportFrom: {
        std::string mod = s.str("module");
        int level = (int)s.num("level");
        std::vector<Node> aliases = s.list("names");
        if (aliases.size() == 1 && aliases[0].str("name") == "*") {
          Unit& u = new_unit(i, "star-import");
          u.imports = {absolute_module(mod, level)};
          star_.back() = true;
          if (first_star_unit_ < 0) {
            first_star_unit_ = u.id;
            first_star_line_ = u.line;
          }
          break;
        }
        for (size_t a = 0; a < aliases.size(); ++a) {
          std::string name = aliases[a].str("name"), as = aliases[a].str("asname");
          Unit& u = new_unit(i, mod == "__future__" && level == 0 ? "future-import" : "from-import",
                             aliases[a], aliases.size() > 1 ? (int)a : -1);
          u.binds = {as.empty() ? name : as};
          std::string absolute = absolute_module(mod, level);
          u.imports = {absolute, absolute.back() == '.' ? absolute + name : absolute + "." + name};
          if (mod == "__future__" && name == "annotations") future_annotations_ = true;
        }
        break;
      }
      default: {
        static const std::unordered_map<int, const char*> kinds = {
            {(int)K::FunctionDef, "def"}, {(int)K::AsyncFunctionDef, "def"},
            {(int)K::ClassDef, "class"}, {(int)K::Assign, "assign"},
            {(int)K::AnnAssign, "assign"}, {(int)K::AugAssign, "augmented-assign"},
            {(int)K::TypeAlias, "type-alias"}, {(int)K::Expr, "expression"},
            {(int)K::If, "if"}, {(int)K::For, "for"}, {(int)K::AsyncFor, "for"},
            {(int)K::While, "while"}, {(int)K::With, "with"}, {(int)K::AsyncWith, "with"},
            {(int)K::Try, "try"}, {(int)K::TryStar, "try"}, {(int)K::Match, "match"},
            {(int)K::Delete, "del"}, {(int)K::Global, "global"}, {(int)K::Nonlocal, "nonlocal"},
            {(int)K::Assert, "assert"}, {(int)K::Raise, "raise"}, {(int)K::Pass, "pass"},
        };
        if (joins_overloads(i)) {
          // `@overload def f(...)` ... `def f(...)`: one unit (see joins_overloads).
          Unit& p = units_.back();
          p.stmts.push_back(i);
          int line = s.line();
          for (Node d : s.list("decorator_list")) line = std::min(line, d.line());
          p.lines.push_back(line);
          p.end_line = s.end_line();
          unit_nodes_.back() = s;  // the definition that stays bound: the unit's node
          break;
        }
        auto it = kinds.find((int)s.kind());
        const char* kind = it == kinds.end() ? "statement" : it->second;
        if (s.kind() == K::Other && std::string(s.type_name()) == "TryStar") kind = "try";
        Unit& u = new_unit(i, kind);
        // A decided `if` binds nothing itself: its taken branch is flattened into units.
        bool decided = s.kind() == K::If && decide(s.get("test")).has_value();
        if (s.kind() != K::Delete && !decided) bound_names(s, u.binds);
        break;
      }
    }
  }
}

void Analyzer::index_bindings() {
  for (const auto& u : units_)
    for (const auto& n : u.binds) {
      auto& v = binders_[n];
      if (v.empty() || v.back() != u.id) v.push_back(u.id);
    }
}

}  // namespace lazyexec::analyze
