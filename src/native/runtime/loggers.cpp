// Deferred `logging.getLogger(...)` definitions and logging configuration
// (runtime/loggers.py says why): before logging.config's fileConfig /
// dictConfig and logging.setLoggerClass run, every pending unit mentioning
// getLogger runs. The wrapper is C++ so that a program importing logging
// loads none of lazyexec's Python modules for it.
#include "runtime/loggers.h"

#include <cstddef>

#include "py/handle.h"
#include "runtime/module_hooks.h"
#include "runtime/module_state.h"

namespace lazyexec::runtime {
namespace {

using py::Ref;

struct WrapperObject {
  PyObject_HEAD
  PyObject* wrapped;
  PyObject* dict;  // functools.wraps copies the wrapped function's __dict__ (an empty one here)
};

PyObject* wrapper_call(PyObject* self, PyObject* args, PyObject* kwargs) {
  Ref keep = Ref::borrow(self);
  materialize_mentioning("getLogger");
  if (PyErr_Occurred()) return nullptr;
  return PyObject_Call(((WrapperObject*)self)->wrapped, args, kwargs);
}

// As a function is: bound when read through an instance (Manager.setLoggerClass,
// DictConfigurator.configure are methods).
PyObject* wrapper_descr_get(PyObject* self, PyObject* obj, PyObject*) {
  if (obj == nullptr || obj == Py_None) return Py_NewRef(self);
  return PyMethod_New(self, obj);
}

// functools.wraps: the wrapped function's name, qualname, doc and module,
// and __wrapped__ (inspect.signature follows it).
PyObject* wrapper_getattro(PyObject* self, PyObject* name) {
  auto* w = (WrapperObject*)self;
  if (PyUnicode_Check(name)) {
    for (const char* forwarded : {"__name__", "__qualname__", "__doc__", "__module__", "__annotations__"})
      if (PyUnicode_CompareWithASCIIString(name, forwarded) == 0) return PyObject_GetAttr(w->wrapped, name);
    if (PyUnicode_CompareWithASCIIString(name, "__wrapped__") == 0) return Py_NewRef(w->wrapped);
    if (PyUnicode_CompareWithASCIIString(name, "_lazyexec_loggers") == 0) Py_RETURN_TRUE;
  }
  PyObject* r = PyObject_GenericGetAttr(self, name);
  if (r != nullptr || !PyErr_ExceptionMatches(PyExc_AttributeError)) return r;
  PyErr_Clear();
  return PyObject_GetAttr(w->wrapped, name);
}

PyObject* wrapper_repr(PyObject* self) {
  return PyUnicode_FromFormat("<lazyexec loggers wrapper of %R>", ((WrapperObject*)self)->wrapped);
}

int wrapper_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(((WrapperObject*)self)->wrapped);
  Py_VISIT(((WrapperObject*)self)->dict);
  return 0;
}

int wrapper_clear(PyObject* self) {
  Py_CLEAR(((WrapperObject*)self)->wrapped);
  Py_CLEAR(((WrapperObject*)self)->dict);
  return 0;
}

void wrapper_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  wrapper_clear(self);
  Py_TYPE(self)->tp_free(self);
}

PyTypeObject wrapper_type = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "lazyexec._lazyexec.LoggersWrapper";
  t.tp_basicsize = sizeof(WrapperObject);
  t.tp_dictoffset = offsetof(WrapperObject, dict);
  t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
  t.tp_doc = "Runs the pending getLogger units, then the logging function it wraps.";
  t.tp_call = wrapper_call;
  t.tp_descr_get = wrapper_descr_get;
  t.tp_getattro = wrapper_getattro;
  t.tp_setattro = PyObject_GenericSetAttr;
  t.tp_repr = wrapper_repr;
  t.tp_traverse = wrapper_traverse;
  t.tp_clear = wrapper_clear;
  t.tp_dealloc = wrapper_dealloc;
  return t;
}();

// `owner.attr = wrap(owner.attr)`, once.
void wrap_attribute(PyObject* owner, const char* attr) {
  // The class's own entry for a method (a plain function), the module's
  // attribute for a function.
  Ref current = py::check(PyObject_GetAttrString(owner, attr));
  if (Py_TYPE(current.get()) == &wrapper_type) return;
  Ref marked = Ref::steal(PyObject_GetAttrString(current.get(), "_lazyexec_loggers"));
  if (!marked) PyErr_Clear();
  if (marked && PyObject_IsTrue(marked.get()) == 1) return;
  auto* w = PyObject_GC_New(WrapperObject, &wrapper_type);
  if (w == nullptr) throw py::PyError{};
  w->wrapped = current.release();
  w->dict = nullptr;
  PyObject_GC_Track((PyObject*)w);
  Ref wrapper = Ref::steal((PyObject*)w);
  if (PyObject_SetAttrString(owner, attr, wrapper.get()) < 0) throw py::PyError{};
}

}  // namespace

int patch_logging(PyObject* module) {
  Ref name = Ref::steal(PyObject_GetAttrString(module, "__name__"));
  if (!name) {
    PyErr_Clear();
    return 0;
  }
  try {
    if (PyUnicode_Check(name.get()) && PyUnicode_CompareWithASCIIString(name.get(), "logging.config") == 0) {
      wrap_attribute(module, "fileConfig");
      // dictConfig() and logging.config.listen() both end in configure().
      Ref cls = py::check(PyObject_GetAttrString(module, "DictConfigurator"));
      wrap_attribute(cls.get(), "configure");
    } else if (PyUnicode_Check(name.get()) && PyUnicode_CompareWithASCIIString(name.get(), "logging") == 0) {
      wrap_attribute(module, "setLoggerClass");
      Ref manager = py::check(PyObject_GetAttrString(module, "Manager"));
      wrap_attribute(manager.get(), "setLoggerClass");
    }
  } catch (const py::PyError&) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
    PyErr_Clear();  // a logging we do not know: nothing (more) to patch
  }
  return 0;
}

namespace {

PyObject* py_patch_logging(PyObject*, PyObject* module) {
  if (patch_logging(module) < 0) return nullptr;
  Py_RETURN_NONE;
}

// Once logging or logging.config has run: its patch points, and the active
// finder stops watching the name.
PyObject* logging_loaded(PyObject*, PyObject* module) {
  if (patch_logging(module) < 0) return nullptr;
  if (PyObject* finder = active_finder()) {
    Ref name = Ref::steal(PyObject_GetAttrString(module, "__name__"));
    if (!name) return nullptr;
    Ref r = Ref::steal(PyObject_CallMethod(finder, "watch", "OO", name.get(), Py_None));
    if (!r) return nullptr;
  }
  Py_RETURN_NONE;
}
PyMethodDef logging_loaded_def = {"logging_loaded", logging_loaded, METH_O, nullptr};

// The finder's watch on logging and logging.config: patched once the
// module's loader has run (a loader that takes no hook: configuration sees
// the loggers that exist).
PyObject* logging_found(PyObject*, PyObject* spec) {
  try {
    Ref loader = py::check(PyObject_GetAttrString(spec, "loader"));
    Ref after = py::check(PyCFunction_New(&logging_loaded_def, nullptr));
    if (after_exec(loader.get(), after.get()) < 0) throw py::PyError{};
  } catch (const py::PyError&) {
    return nullptr;
  }
  return Py_NewRef(spec);
}

PyMethodDef functions[] = {
    {"patch_logging", py_patch_logging, METH_O,
     "patch_logging(module): logging's or logging.config's patch points (runtime/loggers.py)."},
    {"logging_found", logging_found, METH_O,
     "logging_found(spec) -> spec: the finder's watch on logging and logging.config (patched once loaded)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int add_loggers_functions(PyObject* module) {
  if (PyType_Ready(&wrapper_type) < 0) return -1;
  return PyModule_AddFunctions(module, functions);
}

}  // namespace lazyexec::runtime
