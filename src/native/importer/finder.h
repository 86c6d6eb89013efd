// The sys.meta_path finder, placed just before importlib's PathFinder: it
// asks PathFinder for the spec and, for a pure-Python source module that
// policy selects, swaps in lazyexec's loader. Every other spec is returned
// as PathFinder made it, so an unclaimed module costs one C++ call.
#pragma once

#include <Python.h>

namespace lazyexec::importer {

// Adds the Finder type to the extension module; -1 with an exception set.
int add_finder_type(PyObject* module);

// The Finder type (borrowed), for activation from C++ (boot.cpp).
PyObject* finder_type();

// lazyexec's own imports (while it builds or reads a plan) load normally:
// set per thread, returns the previous value.
bool set_busy(bool busy);

}  // namespace lazyexec::importer
