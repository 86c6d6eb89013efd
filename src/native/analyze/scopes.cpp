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
}

}  // namespace lazyexec::analyze
