// logging's patch points (see runtime/loggers.cpp and lazyexec/runtime/loggers.py).
#pragma once

#include <Python.h>

namespace lazyexec::runtime {

// Wraps logging.setLoggerClass / Manager.setLoggerClass, or logging.config's
// fileConfig / DictConfigurator.configure, so that pending getLogger units
// run first. A module of another shape is left alone. -1 with an exception set.
int patch_logging(PyObject* module);

int add_loggers_functions(PyObject* module);

}  // namespace lazyexec::runtime
