// What a lazy unit's code does, read from its bytecode: bind a constant
// (stored as the value itself: the seed's "constants as values"), bind a
// display of constants (cheap to run eagerly), or anything else.
#pragma once

#include <Python.h>

namespace lazyexec::compile {

enum class UnitValue { Constant, Display, Code };

// `*value` (borrowed) is the constant for UnitValue::Constant.
UnitValue classify_unit_code(PyObject* code, PyObject** value);

}  // namespace lazyexec::compile
