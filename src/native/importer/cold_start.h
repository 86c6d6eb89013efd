// The cold path in C++: a module the booted finder claims but that has no
// current artifact yet loads eagerly through importlib's own
// SourceFileLoader, is remembered, and at exit is queued for the detached
// background builder (lazyexec/store/builder.py takes the job), so that the
// next start is lazy. No Python module of lazyexec's is imported for it: a
// first start costs an eager start plus the finder (DESIGN: no analysis on
// any start, never slower than eager).
#pragma once

#include <Python.h>

#include <string>

namespace lazyexec::importer {

// The loader for a claimed module whose artifact is missing: a plain
// SourceFileLoader (the module loads exactly as eagerly), the module
// remembered for the builder when the build mode is "background". Null
// without an exception when the Python layer must decide (no boot state,
// the build is "inline"); null with an exception set on an error.
PyObject* cold_loader(PyObject* fullname, PyObject* path, const std::string& cache_dir);

// The job the builder reads (version 2): the boot state's configuration
// table, its file and the opted-in distributions' `never`, so that the
// builder keys the artifacts exactly as activation did.
PyObject* cold_job(PyObject* modules);

// A job (a marshalled dict) queued for the detached builder in
// cache_dir/queue, and a builder started unless one runs. Raises only
// what marshalling the job raises; an unwritable queue is one warning.
void queue_for_builder(PyObject* job, const std::string& cache_dir);

// Whether the build mode in force is "off" (nothing is queued).
bool builds_off();

}  // namespace lazyexec::importer
