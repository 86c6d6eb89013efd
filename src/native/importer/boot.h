// Activation from the .pth file without any Python module of lazyexec's
// (DESIGN: "no Python of lazyexec's own on the warm path beyond a small
// activation entry"). It reads the caches the Python layer writes (the
// parsed configuration, the knowledge base's never-lazy set, the program's
// usage profile), builds the Finder and places it before PathFinder. When a
// cache is missing or anything needs a message (a bad configuration, a
// damaged profile), it declines and lazyexec.activate() does the work, with
// its errors and warnings, and writes the caches for the next start.
#pragma once

#include <Python.h>

namespace lazyexec::importer {

// boot() -> the installed Finder, or None when the Python layer must
// activate instead. `module` is the extension module (its file locates
// knowledge.toml). The program is named from the interpreter's command line
// (profile.program_identity()); boot(head, args) names it as `lazyexec run`
// does (head + profile.usage(args)) and, when it declines, returns None in
// both extensions: the caller activates through the Python layer.
// boot(head, args, image) also serves that image (`lazyexec run --image`)
// as LAZYEXEC_IMAGE would, in its place.
PyObject* boot(PyObject* module, PyObject* const* args, Py_ssize_t nargs);

// boot_state() -> {"finder", "table", "source", "profile", "known"} after a
// successful boot(), else None: the Python layer adopts it on first need.
PyObject* boot_state(PyObject* module, PyObject* unused);

// In the full extension: the start-up extension (borrowed) when activation
// ran there, whose state (boot_state, the cold path's remembered modules and
// exit hook) is the process's; else null.
PyObject* start_up_extension();

// In the start-up extension: cold_loader(fullname, path) -> the cold path's
// loader (importer/cold_start.h), or None when the Python layer decides.
PyObject* cold_loader_of_boot(PyObject* module, PyObject* const* args, Py_ssize_t nargs);

// warm_start(key, cache_dir, settle_threshold, settle_now, inline_build,
// profile_path, known, complete_on_settle): what boot() in the start-up
// extension (_lazyexec_boot) decided, handed to this one when it is first
// needed (the loader's settings, exec/eval, the settle policy).
PyObject* warm_start(PyObject* module, PyObject* args);

}  // namespace lazyexec::importer
