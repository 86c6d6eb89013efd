// after_exec(loader, after): the loader's exec_module runs, then after(module).
#pragma once

#include <Python.h>

namespace lazyexec::runtime {

// 1 when installed, 0 when the loader takes no hook, -1 with an exception set.
int after_exec(PyObject* loader, PyObject* after);

}  // namespace lazyexec::runtime
