// What a lazy unit's code does, read from its bytecode: bind a constant
// (stored as the value itself: the seed's "constants as values"), bind a
// display of constants (cheap to run eagerly), bind a plain function (no
// decorator, default, annotation or closure: stored as the function's own
// code, made into a function at first use without running unit code), or
// anything else.
#pragma once

#include <Python.h>

namespace lazyexec::compile {

enum class UnitValue { Constant, Display, Function, Class, Code };

// `*value` (borrowed) is the constant for UnitValue::Constant, the
// function's code object for UnitValue::Function. For UnitValue::Class (a
// plain `class C(B1, B2):`: no decorator, keyword, type parameter; bases
// plain names), `*value` is a new reference to (body code, name, (base
// names)).
UnitValue classify_unit_code(PyObject* code, PyObject** value);

}  // namespace lazyexec::compile
