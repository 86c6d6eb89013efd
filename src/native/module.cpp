// The extension module `lazyexec._lazyexec`: the public face of the C++ core.
// Only conversion lives here; every decision is made in the rooms below.
#include <Python.h>

#include <memory>

#include "analyze/analyzer.h"
#include "py/handle.h"

namespace lazyexec {
namespace {

using py::Ref;

constexpr const char* kKnowledgeCapsule = "lazyexec.KnowledgeBase";

Ref names_list(const analyze::Names& names) {
  Ref l = py::check(PyList_New(0));
  for (const auto& n : names)
    if (PyList_Append(l.get(), py::str(n).get()) < 0) throw py::PyError{};
  return l;
}

template <class Seq, class Fn>
Ref list_of(const Seq& seq, Fn fn) {
  Ref l = py::check(PyList_New(0));
  for (const auto& v : seq)
    if (PyList_Append(l.get(), fn(v).get()) < 0) throw py::PyError{};
  return l;
}

void set(PyObject* d, const char* key, Ref value) {
  if (PyDict_SetItemString(d, key, value.get()) < 0) throw py::PyError{};
}

Ref to_python(const analyze::ModuleAnalysis& m) {
  Ref units = list_of(m.units, [](const analyze::Unit& u) {
    Ref d = py::check(PyDict_New());
    set(d.get(), "id", py::check(PyLong_FromLong(u.id)));
    set(d.get(), "kind", py::str(u.kind));
    set(d.get(), "line", py::check(PyLong_FromLong(u.line)));
    set(d.get(), "end_line", py::check(PyLong_FromLong(u.end_line)));
    set(d.get(), "col", py::check(PyLong_FromLong(u.col)));
    set(d.get(), "lines", list_of(u.lines, [](int l) { return py::check(PyLong_FromLong(l)); }));
    set(d.get(), "statements", list_of(u.stmts, [](int s) { return py::check(PyLong_FromLong(s)); }));
    set(d.get(), "part", u.part < 0 ? Ref::borrow(Py_None) : py::check(PyLong_FromLong(u.part)));
    set(d.get(), "depth", py::check(PyLong_FromLong(u.depth)));
    set(d.get(), "binds", list_of(u.binds, [](const std::string& s) { return py::str(s); }));
    set(d.get(), "imports", list_of(u.imports, [](const std::string& s) { return py::str(s); }));
    set(d.get(), "def_reads", names_list(u.def_reads));
    set(d.get(), "call_reads", names_list(u.call_reads));
    set(d.get(), "global_writes", names_list(u.global_writes));
    set(d.get(), "verdict", py::str(u.lazy ? "lazy" : "eager"));
    set(d.get(), "reason", py::str(analyze::short_code(u.reason.code)));
    set(d.get(), "message", py::str(u.reason.text()));
    return d;
  });
  Ref forces = list_of(m.forces, [](const analyze::Force& f) {
    Ref d = py::check(PyDict_New());
    set(d.get(), "before", py::check(PyLong_FromLong(f.before)));
    set(d.get(), "units", list_of(f.units, [](int id) { return py::check(PyLong_FromLong(id)); }));
    return d;
  });
  Ref out = py::check(PyDict_New());
  set(out.get(), "units", units);
  set(out.get(), "forces", forces);
  set(out.get(), "statements", py::check(PyLong_FromLong(m.statements)));
  set(out.get(), "top_level_statements", py::check(PyLong_FromLong(m.top_level_statements)));
  set(out.get(), "lazy_marker", py::str(m.lazy_marker));
  set(out.get(), "future_annotations", Ref::borrow(m.future_annotations ? Py_True : Py_False));
  set(out.get(), "module_eager", Ref::borrow(m.module_eager ? Py_True : Py_False));
  set(out.get(), "module_reason",
      m.module_eager ? py::str(analyze::short_code(m.module_reason.code)) : Ref::borrow(Py_None));
  set(out.get(), "module_message", m.module_eager ? py::str(m.module_reason.text()) : Ref::borrow(Py_None));
  return out;
}

void destroy_knowledge(PyObject* capsule) {
  delete static_cast<analyze::KnowledgeBase*>(PyCapsule_GetPointer(capsule, kKnowledgeCapsule));
}

void fill(analyze::NameSet& set, PyObject* iterable, const char* what) {
  if (iterable == nullptr || iterable == Py_None) return;
  Ref it = Ref::steal(PyObject_GetIter(iterable));
  if (!it) throw py::PyError{};
  while (Ref item = Ref::steal(PyIter_Next(it.get()))) {
    if (!PyUnicode_Check(item.get())) {
      PyErr_Format(PyExc_TypeError, "knowledge base: %s entries must be str, not %.100s", what, Py_TYPE(item.get())->tp_name);
      throw py::PyError{};
    }
    set.add(py::utf8(item.get()));
  }
  if (PyErr_Occurred()) throw py::PyError{};
}

PyObject* knowledge(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"pure", "pure_bases", "pure_metaclasses", "never_lazy", "impure", nullptr};
  PyObject *pure = nullptr, *bases = nullptr, *metas = nullptr, *never = nullptr, *impure = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOOOO", const_cast<char**>(kwlist), &pure, &bases, &metas, &never, &impure))
    return nullptr;
  auto kb = std::make_unique<analyze::KnowledgeBase>();
  try {
    fill(kb->pure, pure, "pure");
    fill(kb->pure_bases, bases, "pure_bases");
    fill(kb->pure_metaclasses, metas, "pure_metaclasses");
    fill(kb->never_lazy, never, "never_lazy");
    if (impure && impure != Py_None) {
      if (!PyDict_Check(impure)) {
        PyErr_SetString(PyExc_TypeError, "knowledge base: impure must be a dict of name -> reason");
        return nullptr;
      }
      PyObject *k, *v;
      Py_ssize_t pos = 0;
      while (PyDict_Next(impure, &pos, &k, &v)) kb->impure[py::utf8(k)] = py::utf8(v);
    }
  } catch (const py::PyError&) {
    return nullptr;
  }
  PyObject* capsule = PyCapsule_New(kb.get(), kKnowledgeCapsule, destroy_knowledge);
  if (capsule) kb.release();
  return capsule;
}

PyObject* analyze_source(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"source", "filename", "knowledge", "module", "is_package", nullptr};
  PyObject *source, *filename, *capsule;
  const char* module = "";
  int is_package = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|zp", const_cast<char**>(kwlist), &source, &filename, &capsule,
                                   &module, &is_package))
    return nullptr;
  if (!PyBytes_Check(source) && !PyUnicode_Check(source)) {
    PyErr_Format(PyExc_TypeError, "source must be bytes or str, not %.100s", Py_TYPE(source)->tp_name);
    return nullptr;
  }
  auto* kb = static_cast<analyze::KnowledgeBase*>(PyCapsule_GetPointer(capsule, kKnowledgeCapsule));
  if (!kb) return nullptr;
  try {
    analyze::ModuleInfo info{module ? module : "", is_package != 0};
    return to_python(analyze::analyze(source, filename, *kb, info)).release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* reason_codes(PyObject*, PyObject*) {
  try {
    Ref l = py::check(PyList_New(0));
    for (int c = 0; c <= static_cast<int>(analyze::Code::OptedOut); ++c) {
      auto code = static_cast<analyze::Code>(c);
      Ref item = py::check(Py_BuildValue("(s s s)", std::string(analyze::short_code(code)).c_str(),
                                          analyze::is_lazy(code) ? "lazy" : "eager",
                                          std::string(analyze::sentence(code)).c_str()));
      if (PyList_Append(l.get(), item.get()) < 0) throw py::PyError{};
    }
    return l.release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyMethodDef methods[] = {
    {"reason_codes", reason_codes, METH_NOARGS,
     "reason_codes() -> [(code, verdict, sentence)]: every reason the analyzer can give."},
    {"knowledge", (PyCFunction)(void (*)(void))knowledge, METH_VARARGS | METH_KEYWORDS,
     "knowledge(pure=(), pure_bases=(), pure_metaclasses=(), never_lazy=(), impure={})\n"
     "Build a knowledge base for analyze()."},
    {"analyze", (PyCFunction)(void (*)(void))analyze_source, METH_VARARGS | METH_KEYWORDS,
     "analyze(source, filename, knowledge, module=None, is_package=False) -> dict\n"
     "Split a module into units and decide each one (see docs/explain-json.md)."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_lazyexec", "lazyexec's C++ core.", -1, methods,
                          nullptr, nullptr, nullptr, nullptr};

}  // namespace
}  // namespace lazyexec

PyMODINIT_FUNC PyInit__lazyexec(void) { return PyModule_Create(&lazyexec::module_def); }
