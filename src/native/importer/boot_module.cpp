// _lazyexec_boot: the start-up extension the .pth line loads. It holds
// activation (boot.cpp, built with LAZYEXEC_BOOT_MODULE) and the finder and
// nothing else, so that a start costs the loading of a small library; the
// full extension (_lazyexec: loader, runtime, analyzer, compiler, image) is
// loaded by its path when the finder first claims a module.
#include <Python.h>

#include "importer/boot.h"
#include "importer/finder.h"

namespace {

PyObject* set_busy(PyObject*, PyObject* flag) {
  int on = PyObject_IsTrue(flag);
  if (on < 0) return nullptr;
  return PyBool_FromLong(lazyexec::importer::set_busy(on != 0));
}

PyMethodDef methods[] = {
    {"boot", lazyexec::importer::boot, METH_NOARGS,
     "boot() -> the Finder, activated from C++ with the Python layer's caches; None: call lazyexec.activate()."},
    {"boot_state", lazyexec::importer::boot_state, METH_NOARGS,
     "boot_state() -> what boot() read (finder, configuration table and file, usage profile), or None."},
    {"set_busy", set_busy, METH_O, "set_busy(flag) -> previous: this thread's imports bypass the finder."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_lazyexec_boot", "lazyexec's start-up extension.", -1, methods,
                          nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__lazyexec_boot(void) {
  PyObject* m = PyModule_Create(&module_def);
  if (m && lazyexec::importer::add_finder_type(m) < 0) Py_CLEAR(m);
  return m;
}
