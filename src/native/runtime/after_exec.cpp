// A loader's exec_module followed by a callback on the module (patch points
// such as logging's, set once a module's own code has run). Shared by the
// full extension and the start-up one (logging found before the runtime).
#include "runtime/after_exec.h"

#include "py/handle.h"

namespace lazyexec::runtime {
namespace {

using py::Ref;


struct AfterExecObject {
  PyObject_HEAD
  PyObject* loader;
  PyObject* original;  // the loader's exec_module, bound
  PyObject* after;
};

PyObject* after_exec_call(PyObject* self_obj, PyObject* args, PyObject* kwargs) {
  auto* self = (AfterExecObject*)self_obj;
  PyObject* module;
  if (!PyArg_ParseTuple(args, "O", &module)) return nullptr;
  // The loader compares and hashes as the one an eager import made again.
  if (Ref dict = Ref::steal(PyObject_GetAttrString(self->loader, "__dict__")); dict && PyDict_Check(dict.get())) {
    if (PyDict_DelItemString(dict.get(), "exec_module") < 0) PyErr_Clear();
  } else {
    PyErr_Clear();
  }
  Ref keep = Ref::borrow(self_obj);
  Ref r = Ref::steal(PyObject_CallOneArg(self->original, module));
  if (!r) return nullptr;
  return PyObject_CallOneArg(self->after, module);
}

int after_exec_traverse(PyObject* self_obj, visitproc visit, void* arg) {
  auto* self = (AfterExecObject*)self_obj;
  Py_VISIT(self->loader);
  Py_VISIT(self->original);
  Py_VISIT(self->after);
  return 0;
}

int after_exec_clear(PyObject* self_obj) {
  auto* self = (AfterExecObject*)self_obj;
  Py_CLEAR(self->loader);
  Py_CLEAR(self->original);
  Py_CLEAR(self->after);
  return 0;
}

void after_exec_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  after_exec_clear(self);
  Py_TYPE(self)->tp_free(self);
}

PyTypeObject after_exec_type = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "lazyexec._lazyexec.AfterExec";
  t.tp_basicsize = sizeof(AfterExecObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
  t.tp_doc = "A loader's exec_module, then a patch point.";
  t.tp_call = after_exec_call;
  t.tp_traverse = after_exec_traverse;
  t.tp_clear = after_exec_clear;
  t.tp_dealloc = after_exec_dealloc;
  return t;
}();

bool type_ready = false;

}  // namespace

int after_exec(PyObject* loader, PyObject* after) {
  Ref original = Ref::steal(PyObject_GetAttrString(loader, "exec_module"));
  if (!original) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
    PyErr_Clear();
    return 0;
  }
  if (!type_ready) {
    if (PyType_Ready(&after_exec_type) < 0) return -1;
    type_ready = true;
  }
  auto* w = PyObject_GC_New(AfterExecObject, &after_exec_type);
  if (w == nullptr) return -1;
  w->loader = Py_NewRef(loader);
  w->original = original.release();
  w->after = Py_NewRef(after);
  PyObject_GC_Track((PyObject*)w);
  Ref wrapper = Ref::steal((PyObject*)w);
  if (PyObject_SetAttrString(loader, "exec_module", wrapper.get()) < 0) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError) && !PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
    PyErr_Clear();
    return 0;
  }
  return 1;
}

}  // namespace lazyexec::runtime
