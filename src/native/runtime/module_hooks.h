// What a lazily loaded module carries besides its trapping namespace, in C++
// so that a warm start runs no Python of lazyexec's own (DESIGN "Never slower
// than eager"):
//
// - its PEP 562 `__getattr__` and `__dir__` (chaining to the module's own);
// - the record of its deferred imports, and the miss hook of the packages
//   they import under (DESIGN rule 7: a submodule attribute an eager import
//   would have bound does not disappear), with the meta-path watcher that
//   hooks such a package when it is imported later;
// - the class swaps of runtime/module_class.py (that Python layer reads and
//   writes the same tables, for the rarer cases it still handles);
// - the default of what happens when a module settles or completes.
#pragma once

#include <Python.h>

#include "runtime/after_exec.h"

#include <string>

namespace lazyexec::runtime {

// Adds the hook, package watcher and after-exec types and their functions'
// shared state to the extension module; -1 with an exception set.
int add_module_hook_types(PyObject* module);

// (getattr hook, dir hook, own) for `module`: `own` is the dict
// {"getattr": ..., "dir": ...} of the module's own hooks, filled in when the
// module's eager part defined them.
PyObject* make_hooks(PyObject* module);

// lazyexec's hook type, set once the extension is initialised: the trapping
// namespace compares a hit's type with it (a pointer, no call per lookup).
extern PyTypeObject* module_hook_type;

// The module's own code writes `__getattr__` or `__dir__` (STORE_NAME, or
// `del`) while lazyexec's hook `current` holds the name: the write goes to
// the hook's record of the module's own hooks, so that the chain stays
// (pending names of the module are still found through it by other modules
// while its top level runs: matplotlib's `class __getattr__` at line 240,
// then its rcsetup reading `mpl.color_sequences` still pending). `value`
// null deletes. 1 done, 0 `current` is not a hook, -1 with an exception.
int store_own_hook(PyObject* current, PyObject* value);

// The module's own hook behind lazyexec's `hook` (borrowed), or null (no
// exception) when the module defined none: the module's own code reading the
// name sees its own value, as eagerly.
PyObject* own_hook(PyObject* hook);

// Records the plan's deferred imports ((unit, name, mode, modules, attr)
// each) and hooks the packages they import under. -1 with an exception set.
int watch_deferred_imports(PyObject* module, PyObject* specs);

// Before the top level runs (and again when it ends, if the top level
// replaced the module's class): records which pending units read which
// module globals at definition time (`readers`: ((name, (unit, ...)), ...),
// the plan's "watch" step) and, if any is still pending, swaps the module's
// class for one whose __setattr__/__delattr__ run those units before a name
// they read is rebound or deleted through the module (mock.patch,
// monkeypatch, cryptography's utils.deprecated during the import itself:
// there only the units above the running statement). Does nothing while the
// class is watching already. -1 with an exception set.
int watch_inputs(PyObject* module, PyObject* readers);

// A package whose pending `from .x import x` units bind the names `names`
// (a set) of its own submodules: its class is swapped for the "binders" one,
// whose __setattr__ runs such a unit when importlib binds the freshly
// imported submodule on it, so the package keeps what the unit binds, as
// eagerly (`unittest.main` is the function). -1 with an exception set.
int watch_binders(PyObject* module, PyObject* names);

// Whether an import of something under `prefix` is still deferred somewhere.
bool deferred_under(const std::string& prefix);

// The active lazyexec finder on sys.meta_path (borrowed), or null.
PyObject* active_finder();

// Process-wide: whether a module settling because it is hot first runs its
// units still pending (settle_complete).
extern bool complete_on_settle;

// A module settled or completed with no Python hook registered: the common
// case (a module of its own class whose units have all run) is handled here;
// anything else loads runtime/module_class.py and hands it over. -1 with an
// exception set.
int default_on_settled(PyObject* module, bool hot);

}  // namespace lazyexec::runtime
