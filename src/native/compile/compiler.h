// The compile stage: every lazy unit becomes its own code object, and the
// eager statements become a sequence of code objects interleaved with the
// stable-inputs force steps. CPython's own compiler runs on sub-trees of the
// parsed module, so filenames, line numbers and __future__ flags are kept.
#pragma once

#include <Python.h>

#include <vector>

#include "analyze/unit.h"
#include "py/handle.h"

namespace lazyexec::compile {

struct Step {
  enum Kind { Run, Force } kind = Run;
  py::Ref code;            // Run: eager statements, in source order
  std::vector<int> units;  // Force: lazy units to materialize first
  // Run: units with a smaller id are defined once this step starts (the
  // module's top level has reached them); later ones are not bound yet.
  int end = 0;
};

struct CompiledModule {
  std::vector<py::Ref> unit_code;  // per unit: code object if lazy, empty if eager
  std::vector<Step> steps;
  long flags = 0;                  // __future__ compiler flags in force
};

// Raises (py::PyError) the interpreter's SyntaxError for statements that are
// only invalid in context (`return` at module level, ...), as importing would.
CompiledModule compile_module(const analyze::ModuleAnalysis& m, PyObject* filename);

}  // namespace lazyexec::compile
