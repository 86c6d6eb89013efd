#include "compile/compiler.h"

#include <map>
#include <string>

namespace lazyexec::compile {
namespace {

using analyze::ModuleAnalysis;
using analyze::Unit;
using py::Ref;

PyObject* ast_module() {
  static PyObject* mod = py::check(PyImport_ImportModule("_ast")).release();
  return mod;
}

Ref attr(PyObject* o, const char* name) { return py::check(PyObject_GetAttrString(o, name)); }

void copy_location(PyObject* from, PyObject* to) {
  for (const char* a : {"lineno", "col_offset", "end_lineno", "end_col_offset"}) {
    Ref v = Ref::steal(PyObject_GetAttrString(from, a));
    if (!v) {
      PyErr_Clear();
      continue;
    }
    if (PyObject_SetAttrString(to, a, v.get()) < 0) throw py::PyError{};
  }
}

// ast.<type>(**fields), located like `where`.
Ref make_node(const char* type, PyObject* fields, PyObject* where) {
  Ref cls = attr(ast_module(), type);
  Ref empty = py::check(PyTuple_New(0));
  Ref node = py::check(PyObject_Call(cls.get(), empty.get(), fields));
  if (where) copy_location(where, node.get());
  return node;
}

std::string root_of(const std::string& dotted) { return dotted.substr(0, dotted.find('.')); }

// The statements that run a unit. An import unit binds one name: it gets an
// import statement of its own holding just the aliases that bind that name.
std::vector<Ref> statements_for(const ModuleAnalysis& m, const Unit& u) {
  std::vector<Ref> out;
  const auto& stmts = m.syntax.statements[(size_t)u.id];
  PyObject* alias = static_cast<PyObject*>(m.syntax.alias[(size_t)u.id]);
  if ((u.kind == "import" || u.kind == "from-import" || u.kind == "future-import") && alias) {
    for (void* sp : stmts) {
      PyObject* s = static_cast<PyObject*>(sp);
      Ref names = py::check(PyList_New(0));
      if (u.kind == "import") {
        Ref asname = attr(alias, "asname");
        if (asname.get() != Py_None) {
          if (sp == stmts.front()) PyList_Append(names.get(), alias);
        } else {
          Ref all = attr(s, "names");
          for (Py_ssize_t i = 0; i < PyList_GET_SIZE(all.get()); ++i) {
            PyObject* a = PyList_GET_ITEM(all.get(), i);
            Ref an = attr(a, "asname");
            if (an.get() == Py_None && root_of(py::utf8(attr(a, "name").get())) == u.binds[0])
              PyList_Append(names.get(), a);
          }
        }
      } else {
        PyList_Append(names.get(), alias);
      }
      if (PyList_GET_SIZE(names.get()) == 0) continue;
      Ref fields = py::check(PyDict_New());
      PyDict_SetItemString(fields.get(), "names", names.get());
      if (u.kind != "import") {
        PyDict_SetItemString(fields.get(), "module", attr(s, "module").get());
        PyDict_SetItemString(fields.get(), "level", attr(s, "level").get());
      }
      out.push_back(make_node(u.kind == "import" ? "Import" : "ImportFrom", fields.get(), s));
    }
    return out;
  }
  for (void* s : stmts) out.push_back(Ref::borrow(static_cast<PyObject*>(s)));
  return out;
}

Ref compile_body(const std::vector<Ref>& body, PyObject* filename, long flags) {
  Ref list = py::check(PyList_New(0));
  for (const auto& s : body)
    if (PyList_Append(list.get(), s.get()) < 0) throw py::PyError{};
  Ref fields = py::check(PyDict_New());
  PyDict_SetItemString(fields.get(), "body", list.get());
  Ref ignores = py::check(PyList_New(0));
  PyDict_SetItemString(fields.get(), "type_ignores", ignores.get());
  Ref module = make_node("Module", fields.get(), nullptr);
  Ref builtins = py::check(PyImport_ImportModule("builtins"));
  Ref compile = attr(builtins.get(), "compile");
  return py::check(PyObject_CallFunction(compile.get(), "OOsli", module.get(), filename, "exec", flags, 1));
}

// `__annotations__["x"] = <annotation>` for a lazy `x: T = v`: the module's
// annotations are complete from the start, as eagerly (the statement itself
// stays deferred). Under `from __future__ import annotations` the annotation
// is stored as its source text, as the compiler would.
Ref hoisted_annotation(PyObject* stmt, bool stringify) {
  Ref annotation = attr(stmt, "annotation");
  Ref target = attr(stmt, "target");
  Ref value = annotation;
  if (stringify) {
    Ref ast = py::check(PyImport_ImportModule("ast"));
    Ref text = py::check(PyObject_CallMethod(ast.get(), "unparse", "O", annotation.get()));
    Ref f = py::check(PyDict_New());
    PyDict_SetItemString(f.get(), "value", text.get());
    value = make_node("Constant", f.get(), annotation.get());
  }
  Ref empty = py::check(PyDict_New());
  Ref load = make_node("Load", empty.get(), nullptr);
  Ref store = make_node("Store", empty.get(), nullptr);
  Ref nf = py::check(PyDict_New());
  PyDict_SetItemString(nf.get(), "id", py::str("__annotations__").get());
  PyDict_SetItemString(nf.get(), "ctx", load.get());
  Ref name = make_node("Name", nf.get(), stmt);
  Ref kf = py::check(PyDict_New());
  PyDict_SetItemString(kf.get(), "value", attr(target.get(), "id").get());
  Ref key = make_node("Constant", kf.get(), stmt);
  Ref sf = py::check(PyDict_New());
  PyDict_SetItemString(sf.get(), "value", name.get());
  PyDict_SetItemString(sf.get(), "slice", key.get());
  PyDict_SetItemString(sf.get(), "ctx", store.get());
  Ref sub = make_node("Subscript", sf.get(), stmt);
  Ref targets = py::check(PyList_New(0));
  PyList_Append(targets.get(), sub.get());
  Ref af = py::check(PyDict_New());
  PyDict_SetItemString(af.get(), "targets", targets.get());
  PyDict_SetItemString(af.get(), "value", value.get());
  return make_node("Assign", af.get(), stmt);
}

bool is_string_statement(PyObject* s) {
  Ref type_name = attr((PyObject*)Py_TYPE(s), "__name__");
  if (py::utf8(type_name.get()) != "Expr") return false;
  Ref value = attr(s, "value");
  Ref vt = attr((PyObject*)Py_TYPE(value.get()), "__name__");
  if (py::utf8(vt.get()) != "Constant") return false;
  return PyUnicode_Check(attr(value.get(), "value").get());
}

}  // namespace

CompiledModule compile_module(const ModuleAnalysis& m, PyObject* filename) {
  CompiledModule out;
  if (!m.syntax.future_features.empty()) {
    Ref future = py::check(PyImport_ImportModule("__future__"));
    for (const auto& f : m.syntax.future_features) {
      Ref feature = Ref::steal(PyObject_GetAttrString(future.get(), f.c_str()));
      if (!feature) {
        PyErr_Clear();
        continue;  // the compiler reports unknown features itself
      }
      out.flags |= PyLong_AsLong(attr(feature.get(), "compiler_flag").get());
    }
  }
  std::vector<int> force_before(m.units.size(), -1);
  for (size_t i = 0; i < m.forces.size(); ++i) force_before[(size_t)m.forces[i].before] = (int)i;

  // Eager statements read some names without passing through the trap: a
  // class body's LOAD_NAME looks in the globals dict directly (3.10-3.13).
  // So the lazy units binding what an eager statement reads at definition
  // time (what it mentions, for statements not walked by the analyzer) run
  // just before it, after the stable-inputs plan.
  std::map<std::string, std::vector<int>> binders;
  for (const auto& u : m.units)
    for (const auto& b : u.binds) binders[b].push_back(u.id);
  // Units already forced by an earlier step, in source order.
  std::vector<char> forced(m.units.size(), 0);
  auto reads_to_force = [&](const Unit& u) {
    std::vector<int> ids;
    const analyze::Names& reads = (u.kind == "def" || u.kind == "class") ? u.def_reads : u.mentions;
    for (const auto& n : reads) {
      auto it = binders.find(n);
      if (it == binders.end()) continue;
      int latest = -1;
      for (int b : it->second)
        if (b < u.id) latest = b;
      if (latest >= 0 && m.units[(size_t)latest].lazy && !forced[(size_t)latest]) ids.push_back(latest);
    }
    return ids;
  };

  out.unit_code.resize(m.units.size());
  std::vector<Ref> segment;
  bool segment_has_first = false;
  int segment_end = 0;
  auto flush = [&]() {
    if (segment.empty()) return;
    // A later segment starting with a string would compile as a docstring
    // and rebind __doc__: a leading `pass` keeps it an expression statement.
    if (!segment_has_first && is_string_statement(segment.front().get())) {
      Ref fields = py::check(PyDict_New());
      segment.insert(segment.begin(), make_node("Pass", fields.get(), segment.front().get()));
    }
    out.steps.push_back({Step::Run, compile_body(segment, filename, out.flags), {}, segment_end});
    segment.clear();
    segment_has_first = false;
  };
  for (const auto& u : m.units) {
    if (u.lazy) {
      out.unit_code[(size_t)u.id] = compile_body(statements_for(m, u), filename, out.flags);
      PyObject* stmt = static_cast<PyObject*>(m.syntax.statements[(size_t)u.id].front());
      Ref type_name = attr((PyObject*)Py_TYPE(stmt), "__name__");
      if (py::utf8(type_name.get()) == "AnnAssign" && PyLong_AsLong(attr(stmt, "simple").get()) == 1) {
        segment.push_back(hoisted_annotation(stmt, m.future_annotations));
        segment_end = u.id;  // the annotation may read any name bound before this unit
      }
      continue;
    }
    // A temporary import and its `del`, absorbed into the lazy units that
    // read it (analyzer.cpp, absorb_temporaries): no statement of their own.
    if (u.reason.code == analyze::Code::Absorbed) continue;
    std::vector<int> ids;
    if (force_before[(size_t)u.id] >= 0) ids = m.forces[(size_t)force_before[(size_t)u.id]].units;
    for (int id : ids) forced[(size_t)id] = 1;
    for (int id : reads_to_force(u)) {
      forced[(size_t)id] = 1;
      ids.push_back(id);
    }
    if (!ids.empty()) {
      flush();
      out.steps.push_back({Step::Force, {}, std::move(ids)});
    }
    if (u.reason.code == analyze::Code::DecidedBranch) continue;  // its branch is flattened into units
    if (u.stmts.front() == 0) segment_has_first = true;
    for (auto& s : statements_for(m, u)) segment.push_back(std::move(s));
    segment_end = u.id + 1;
  }
  flush();
  return out;
}

}  // namespace lazyexec::compile
