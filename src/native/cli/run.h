// `lazyexec run SCRIPT ARGS` and `lazyexec run -m MODULE ARGS` in C++: the
// start-up path of the `lazyexec` command, without importing lazyexec's
// command-line modules (cli/run.py keeps every other form and the error
// paths).
#pragma once

#include <Python.h>

namespace lazyexec::cli {

using Activate = PyObject* (*)(PyObject* module, PyObject* const* args, Py_ssize_t nargs);

// run(argv) -> the exit status (0) once the program has run, or None before
// anything happened: the Python layer runs this command line (an option it
// parses, a missing target, a directory or zip, LAZYEXEC=0). `activate` is the
// extension's boot(program, args).
PyObject* run(PyObject* module, PyObject* argv, Activate activate);

// command(argv) -> the `lazyexec` command's exit status: run() where it
// runs the program, else lazyexec.cli.command(argv).
PyObject* command(PyObject* module, PyObject* argv, Activate activate);

}  // namespace lazyexec::cli
