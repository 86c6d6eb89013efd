// The analyzer's public entry point: source in, ModuleAnalysis out.
#pragma once

#include <Python.h>

#include <string>

#include "analyze/knowledge.h"
#include "analyze/unit.h"

namespace lazyexec::analyze {

struct ModuleInfo {
  std::string name;         // dotted module name, empty when unknown (a script)
  bool is_package = false;  // the source is a package's __init__
};

// Parses `source` (bytes, encoding cookie honoured, or str) with CPython's own
// parser and symtable, and decides every top-level statement. A syntax error
// is raised as the interpreter's own SyntaxError (throws py::PyError).
ModuleAnalysis analyze(PyObject* source, PyObject* filename, const KnowledgeBase& kb,
                       const ModuleInfo& module);

// PEP 810 compatibility for a module that is not itself lazy: only imports
// of the modules its `__lazy_modules__` names stay deferred; every other unit
// becomes eager and the force plan is recomputed.
void restrict_to_lazy_modules(ModuleAnalysis& m);

// Configuration `defer = "imports"` (KnowledgeBase::imports_only, applied by
// analyze()): only import units stay lazy, the force plan is recomputed.
void restrict_to_imports(ModuleAnalysis& m);

}  // namespace lazyexec::analyze
