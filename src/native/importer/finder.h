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

// Whether `obj` is a Finder: the start-up extension (_lazyexec_boot) and
// the full one (_lazyexec) each build the type, under one name.
bool is_finder(PyObject* obj);

// Replaces the loader factory of a Finder (the start-up extension's
// first-claim stand-in hands over to the full extension's).
void finder_set_make_loader(PyObject* finder, PyObject* make_loader);

// lazyexec's own imports (while it builds or reads a plan) load normally:
// set per thread, returns the previous value.
bool set_busy(bool busy);

}  // namespace lazyexec::importer
