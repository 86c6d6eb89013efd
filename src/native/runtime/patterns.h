// The pattern cache (runtime/patterns.cpp): compiled regular expressions
// kept across starts, per program beside its usage profile.
#pragma once

#include <Python.h>

namespace lazyexec::runtime {

// Patches the regex compiler's `compile` now if it is loaded, else asks the
// finder to watch for it. `profile_path` is the program's usage profile
// (None: no profile, so no cache); LAZYEXEC_PATTERNS=0 turns it off.
// 0, or -1 with an exception set.
int watch_patterns(PyObject* finder, PyObject* profile_path);

// watch_patterns(finder, profile_path) for the Python layer's activation.
int add_patterns_functions(PyObject* module);

}  // namespace lazyexec::runtime
