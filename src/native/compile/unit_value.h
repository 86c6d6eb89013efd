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

// Whether running a unit's code costs about what binding a constant does
// (the usage profile's cost model, runtime::used_nearly_whole): it only
// loads constants and names, builds displays, unpacks and stores (`EnumMeta
// = EnumType`, `_convert = {'__lt__': [('__gt__', _gt_from_lt)], ...}`,
// `A, B = Pair`), and if it calls, every name it loads is one
// `cheap_callable` accepts (a builtin: `object()`, `frozenset({...})`); on
// 3.11 also a comprehension over a constant of at most 256 items whose own
// code only calls such builtins and applies operators to builtin values
// (re's `_special_chars_map`). No attribute access, subscript, other
// operator or call: each may run code of any cost (`re.compile(...)`,
// `List[int]`). -1 when not; else how many items its comprehensions take.
long runs_like_a_constant(PyObject* code, bool (*cheap_callable)(PyObject* name, void* context), void* context);

}  // namespace lazyexec::compile
