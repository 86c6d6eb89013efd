// Import hooks installed after modules loaded (see lazyexec/runtime/import_hooks.py).
//
// A unit that imports runs the import system, and with it every import hook
// on sys.meta_path and sys.path_hooks. A hook installed after the unit's
// module loaded may run code that reads a name that very unit is binding
// (pytest's assertion-rewriting hook calls _pytest.pathlib.fnmatch_ex, which
// reads `fnmatch`, while `import fnmatch` of _pytest.pathlib runs). Eagerly
// that name was bound before the hook existed. So before a unit runs, the
// runtime checks whether the hooks changed since it last looked (a pointer
// comparison of both lists); when they did, the Python layer, given the hooks
// seen before, prepares the new ones: with them out of the lists, it runs the pending units their code
// reaches, as eagerly they had run before the hooks were installed.
#include "runtime/module_state.h"

#include <vector>

namespace lazyexec::runtime {
namespace {

PyObject* hooks_changed_fn = nullptr;
// sys.meta_path's items, an empty separator, then sys.path_hooks' items, as
// last seen. Strong references: identity is compared against live objects.
// Never destroyed (as the runtime's other tables): a static's destructor would
// drop references after the interpreter finalized.
std::vector<py::Ref>& seen_hooks() {
  static auto* v = new std::vector<py::Ref>();
  return *v;
}
bool preparing = false;  // the preparation runs units itself: no nested check

Py_ssize_t size_of(PyObject* list) { return list && PyList_Check(list) ? PyList_GET_SIZE(list) : 0; }

bool same_as_seen(PyObject* meta, PyObject* hooks) {
  const std::vector<py::Ref>& seen = seen_hooks();
  Py_ssize_t n_meta = size_of(meta), n_hooks = size_of(hooks);
  if ((Py_ssize_t)seen.size() != n_meta + n_hooks + 1) return false;
  for (Py_ssize_t i = 0; i < n_meta; ++i)
    if (PyList_GET_ITEM(meta, i) != seen[(size_t)i].get()) return false;
  for (Py_ssize_t i = 0; i < n_hooks; ++i)
    if (PyList_GET_ITEM(hooks, i) != seen[(size_t)(n_meta + 1 + i)].get()) return false;
  return true;
}

void remember(PyObject* meta, PyObject* hooks) {
  std::vector<py::Ref> now;
  for (Py_ssize_t i = 0; i < size_of(meta); ++i) now.push_back(py::Ref::borrow(PyList_GET_ITEM(meta, i)));
  now.emplace_back();
  for (Py_ssize_t i = 0; i < size_of(hooks); ++i) now.push_back(py::Ref::borrow(PyList_GET_ITEM(hooks, i)));
  seen_hooks().swap(now);  // the old references go last (a decref can run Python code)
}

}  // namespace

void set_hooks_changed(PyObject* fn) {
  Py_XINCREF(fn);
  Py_XSETREF(hooks_changed_fn, fn);
  remember(PySys_GetObject("meta_path"), PySys_GetObject("path_hooks"));  // borrowed; the hooks known now
}

void check_import_hooks() {
  if (!hooks_changed_fn || preparing) return;
  PyObject* meta = PySys_GetObject("meta_path");  // borrowed
  PyObject* hooks = PySys_GetObject("path_hooks");
  if (same_as_seen(meta, hooks)) return;
  preparing = true;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  py::Ref fn = py::Ref::borrow(hooks_changed_fn);
  const std::vector<py::Ref>& seen = seen_hooks();
  py::Ref before = py::Ref::steal(PyTuple_New((Py_ssize_t)seen.size()));
  py::Ref r;
  if (before) {
    for (size_t i = 0; i < seen.size(); ++i) {
      PyObject* item = seen[i] ? seen[i].get() : Py_None;  // None: between meta_path's and path_hooks' items
      Py_INCREF(item);
      PyTuple_SET_ITEM(before.get(), (Py_ssize_t)i, item);
    }
    r = py::Ref::steal(PyObject_CallOneArg(fn.get(), before.get()));
  }
  if (!r) PyErr_WriteUnraisable(fn.get());  // the preparation never fails the unit that triggered it
  PyErr_Restore(type, value, tb);
  preparing = false;
  remember(PySys_GetObject("meta_path"), PySys_GetObject("path_hooks"));
}

}  // namespace lazyexec::runtime
