// The warm path's loader: a module with a current artifact is loaded by C++
// from the finder's spec to its plan run, with no Python of lazyexec's own.
// Anything else (no artifact yet, a damaged one, a module object of another
// class) is handed to the Python layer's loader (importer/importlib_bootstrap.py),
// which builds, warns or falls back exactly as before.
#pragma once

#include <Python.h>

#include <string>

namespace lazyexec::importer {

// What activation decided for every module (boot.cpp computes it once).
struct WarmSettings {
  std::string key;          // the artifact key (store.key_for(knowledge_hash(config)))
  std::string cache_dir;    // config.cache_dir()
  long settle_threshold = 10000;
  bool settle_now = false;
  bool inline_build = false;         // build "inline": every claimed module gets the Python layer's loader
  PyObject* profile_path = nullptr;  // the usage profile file (str), or None; owned
  PyObject* known = nullptr;         // {module: expiry} read from it; owned
};

// Installs the settings (taking the two references) and the at-exit check
// of the usage profile; -1 with an exception set.
int set_warm_settings(WarmSettings settings);

// make_loader(fullname, path) for the boot finder: an instance of the C++
// LazySourceLoader class (a SourceFileLoader subclass).
PyObject* make_warm_loader(PyObject* self, PyObject* const* args, Py_ssize_t nargs);

// run_plan(module, units, steps, settle_threshold, settle_now): installs a
// plan into a fresh module and runs its eager part (the plan runner shared
// by every loader). Python-callable.
PyObject* run_plan(PyObject* self, PyObject* args);

// The lists the usage profile reads at exit: modules whose plan ran, in load
// order, and modules read through lazyexec's loader with nothing to defer.
PyObject* loaded_list();
PyObject* nothing_to_defer_list();

// The artifact format the warm path reads (store.FORMAT).
constexpr int kArtifactFormat = 14;

int add_loader_functions(PyObject* module);

}  // namespace lazyexec::importer
