// call_reads and global_writes come from CPython's own symbol table, so
// scoping rules (comprehension inlining in 3.12, PEP 695 annotation scopes)
// are the running interpreter's, not a re-implementation.
#include <algorithm>

#include "analyze/analyzer_impl.h"

namespace lazyexec::analyze {
namespace {

struct SymtableConsts {
  long scope_off = 11, scope_mask = 15, global_implicit = 3, global_explicit = 2;
  long use = 16, def_global = 1, def_bound = 134;
  long type_function = 0, type_class = 1;
};

const SymtableConsts& consts(PyObject* mod) {
  static SymtableConsts c = [mod] {
    SymtableConsts k;
    auto get = [mod](const char* name, long& out) {
      py::Ref v = py::Ref::steal(PyObject_GetAttrString(mod, name));
      if (v && PyLong_Check(v.get())) out = PyLong_AsLong(v.get());
      else PyErr_Clear();
    };
    get("SCOPE_OFF", k.scope_off);
    get("SCOPE_MASK", k.scope_mask);
    get("GLOBAL_IMPLICIT", k.global_implicit);
    get("GLOBAL_EXPLICIT", k.global_explicit);
    get("USE", k.use);
    get("DEF_GLOBAL", k.def_global);
    get("DEF_BOUND", k.def_bound);
    get("TYPE_FUNCTION", k.type_function);
    get("TYPE_CLASS", k.type_class);
    return k;
  }();
  return c;
}

bool is_comprehension(const std::string& name) {
  return name == "listcomp" || name == "setcomp" || name == "dictcomp" || name == "genexpr" ||
         name == "<listcomp>" || name == "<setcomp>" || name == "<dictcomp>" || name == "<genexpr>";
}

long attr_long(PyObject* o, const char* name) {
  py::Ref v = py::check(PyObject_GetAttrString(o, name));
  return PyLong_AsLong(v.get());
}

// Walks one symbol-table entry. Code in functions, lambdas and lazily
// evaluated annotation scopes runs later (call time); class bodies and
// comprehensions run while the statement runs (the AST walker covers them).
//
// A class body that runs at call time (a class defined inside a function)
// reads its implicit globals with LOAD_NAME, which looks the module's dict up
// with PyDict_GetItem: no trap sees those misses, so such names are also
// collected in `name_reads` (they must be bound before the code runs).
void walk(PyObject* ste, const SymtableConsts& c, bool call_time, Names& reads, Names& writes, Names& name_reads) {
  long type = attr_long(ste, "type");
  py::Ref name_obj = py::check(PyObject_GetAttrString(ste, "name"));
  std::string name = py::utf8(name_obj.get());
  bool later = call_time || (type == c.type_function && !is_comprehension(name)) ||
               (type != c.type_function && type != c.type_class);
  if (later) {
    py::Ref symbols = py::check(PyObject_GetAttrString(ste, "symbols"));
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(symbols.get(), &pos, &key, &value)) {
      long flags = PyLong_AsLong(value);
      long scope = (flags >> c.scope_off) & c.scope_mask;
      if (scope != c.global_implicit && scope != c.global_explicit) continue;
      std::string sym = py::utf8(key);
      if (flags & c.use) reads.insert(sym);
      if ((flags & c.use) && type == c.type_class && scope == c.global_implicit) name_reads.insert(sym);
      if ((flags & c.def_global) && (flags & c.def_bound)) writes.insert(sym);
    }
  }
  py::Ref children = py::check(PyObject_GetAttrString(ste, "children"));
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(children.get()); ++i)
    walk(PyList_GET_ITEM(children.get(), i), c, later, reads, writes, name_reads);
}


// Names a unit's call-time code mentions only in annotations CPython never
// evaluates: those of local variables and attribute targets in a function
// body (`x: Optional[int] = None`, `self._config: Optional[Config] = None`,
// `y: T`; PEP 526: "annotations for local variables will not be evaluated",
// 3.10-3.13 alike, with or without `from __future__ import annotations`).
// The symbol table still lists them as globals the function uses, so they
// would count as call_reads: code that may run later and read (or, for the
// stable-inputs plan, touch) them. `other` gets every other name of
// call-time code (a class body inside a function evaluates its annotations).
enum class Scope { DefTime, Function, ClassInFunction };

void unevaluated_annotations(Node n, Scope scope, Names& unevaluated, Names& other) {
  if (!n) return;
  K k = n.kind();
  if (k == K::Name) {
    if (scope != Scope::DefTime) other.insert(n.str("id"));
    return;
  }
  if (k == K::Global || k == K::Nonlocal) {
    Node l = n.get("names");
    if (scope != Scope::DefTime && l && PyList_Check(l.raw()))
      for (Py_ssize_t i = 0; i < PyList_GET_SIZE(l.raw()); ++i) other.insert(py::utf8(PyList_GET_ITEM(l.raw(), i)));
    return;
  }
  if (k == K::FunctionDef || k == K::AsyncFunctionDef) {
    // Decorators, defaults, parameter and return annotations run in the
    // enclosing scope; the body at call time.
    for (Node d : n.list("decorator_list")) unevaluated_annotations(d, scope, unevaluated, other);
    unevaluated_annotations(n.get("args"), scope, unevaluated, other);
    unevaluated_annotations(n.get("returns"), scope, unevaluated, other);
    for (Node st : n.list("type_params")) unevaluated_annotations(st, Scope::Function, unevaluated, other);
    for (Node st : n.list("body")) unevaluated_annotations(st, Scope::Function, unevaluated, other);
    return;
  }
  if (k == K::Lambda) {
    unevaluated_annotations(n.get("args"), scope, unevaluated, other);
    unevaluated_annotations(n.get("body"), Scope::Function, unevaluated, other);
    return;
  }
  if (k == K::ClassDef) {
    for (Node d : n.list("decorator_list")) unevaluated_annotations(d, scope, unevaluated, other);
    for (Node b : n.list("bases")) unevaluated_annotations(b, scope, unevaluated, other);
    for (Node kw : n.list("keywords")) unevaluated_annotations(kw, scope, unevaluated, other);
    for (Node st : n.list("type_params")) unevaluated_annotations(st, Scope::Function, unevaluated, other);
    Scope body = scope == Scope::DefTime ? Scope::DefTime : Scope::ClassInFunction;
    for (Node st : n.list("body")) unevaluated_annotations(st, body, unevaluated, other);
    return;
  }
  if (k == K::AnnAssign && scope == Scope::Function) {
    Names in_annotation;
    unevaluated_annotations(n.get("annotation"), Scope::ClassInFunction, in_annotation, in_annotation);
    unevaluated.insert(in_annotation.begin(), in_annotation.end());
    unevaluated_annotations(n.get("target"), scope, unevaluated, other);
    unevaluated_annotations(n.get("value"), scope, unevaluated, other);
    return;
  }
  for_each_child(n, [&](Node c) { unevaluated_annotations(c, scope, unevaluated, other); });
}

}  // namespace

void Analyzer::collect_scopes(PyObject* source, PyObject* filename) {
  static PyObject* mod = py::check(PyImport_ImportModule("_symtable")).release();
  const SymtableConsts& c = consts(mod);
  py::Ref top = py::check(PyObject_CallMethod(mod, "symtable", "OOs", source, filename, "exec"));
  py::Ref children = py::check(PyObject_GetAttrString(top.get(), "children"));
  // Unit spans by start line (units are already in source order). Spans are
  // disjoint or nested (a decided `if` holds its branch), so the innermost
  // unit holding a line is the latest-starting one that reaches it.
  std::vector<std::pair<int, int>> spans;  // (start, end) per unit id
  spans.reserve(units_.size());
  for (const auto& u : units_) spans.emplace_back(u.line, unit_nodes_[(size_t)u.id].end_line());
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(children.get()); ++i) {
    PyObject* ste = PyList_GET_ITEM(children.get(), i);
    int line = (int)attr_long(ste, "lineno");
    auto after = std::upper_bound(spans.begin(), spans.end(), line,
                                  [](int l, const std::pair<int, int>& s) { return l < s.first; });
    // Several statements on one line share a start: each gets the facts (a superset is safe).
    std::vector<int> owners;
    int owner_start = -1;
    for (auto it = after; it != spans.begin();) {
      --it;
      if (owner_start >= 0 && it->first != owner_start) break;
      if (it->second < line) continue;
      owner_start = it->first;
      owners.push_back((int)(it - spans.begin()));
    }
    Names reads, writes, name_reads;
    walk(ste, c, false, reads, writes, name_reads);
    for (int id : owners) {
      Unit& u = units_[(size_t)id];
      u.call_reads.insert(reads.begin(), reads.end());
      u.name_reads.insert(name_reads.begin(), name_reads.end());
      u.global_writes.insert(writes.begin(), writes.end());
    }
    all_global_writes_.insert(writes.begin(), writes.end());
  }
  // Names only in never-evaluated annotations are read by no code.
  for (auto& u : units_) {
    if (u.call_reads.empty()) continue;
    Names unevaluated, other;
    for (int st : u.stmts) unevaluated_annotations(stmts_[(size_t)st].node, Scope::DefTime, unevaluated, other);
    for (const auto& n : unevaluated)
      if (!other.count(n)) u.call_reads.erase(n);
  }
}

}  // namespace lazyexec::analyze
