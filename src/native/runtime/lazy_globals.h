// The trapping globals dict: a `dict` subclass with dict's exact layout whose
// lookups consult the module's pending units on a miss. The interpreter's
// LOAD_GLOBAL / LOAD_NAME take their slow path (PyObject_GetItem) for a
// non-exact dict on every supported version, which is what lets the trap see
// misses. Settling (issue #4) turns it back into an exact dict in place.
#pragma once

#include <Python.h>

namespace lazyexec::runtime {

// Readies the type; false (with a warning already issued) when this
// interpreter's dict layout is not what the trap relies on.
bool ready_lazy_globals();
PyTypeObject* lazy_globals_type();

// Turns an exact dict into a trapping dict in place (same layout).
int make_trapping(PyObject* dict);

}  // namespace lazyexec::runtime
