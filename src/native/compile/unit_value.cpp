#include "compile/unit_value.h"

#include <opcode.h>

#include <vector>

#include "py/handle.h"

namespace lazyexec::compile {
namespace {

// Opcodes a display of constants is built with (none reads a name or calls).
bool builds_constant_display(int op) {
  switch (op) {
    case LOAD_CONST:
    case STORE_NAME:
    case BUILD_TUPLE:
    case BUILD_LIST:
    case BUILD_SET:
    case BUILD_MAP:
    case BUILD_CONST_KEY_MAP:
#ifdef LIST_EXTEND
    case LIST_EXTEND:
    case SET_UPDATE:
    case DICT_UPDATE:
#endif
    case RETURN_VALUE:
#ifdef RETURN_CONST
    case RETURN_CONST:
#endif
      return true;
    default:
      return false;
  }
}

bool skipped(int op) {
#ifdef RESUME
  if (op == RESUME) return true;
#endif
#ifdef CACHE
  if (op == CACHE) return true;
#endif
  return op == NOP;
}

// `def name(...)` with nothing evaluated at definition time: LOAD_CONST
// <code>, (3.10: LOAD_CONST <qualname>,) MAKE_FUNCTION with no flags (3.13:
// no SET_FUNCTION_ATTRIBUTE after it), STORE_NAME <code's co_name>, return
// None. Running it is PyFunction_New(code, globals), as MAKE_FUNCTION does.
template <typename IsNone>
UnitValue plain_function(PyCodeObject* co, const std::vector<std::pair<int, int>>& ops, IsNone is_none,
                         PyObject** value) {
  PyObject* consts = co->co_consts;
  size_t at = 0;
  auto next = [&](int op) { return at < ops.size() && ops[at].first == op ? ops[at++].second : -1; };
  int code_at = next(LOAD_CONST);
  if (code_at < 0 || code_at >= PyTuple_GET_SIZE(consts) || !PyCode_Check(PyTuple_GET_ITEM(consts, code_at)))
    return UnitValue::Code;
  auto* fn = reinterpret_cast<PyCodeObject*>(PyTuple_GET_ITEM(consts, code_at));
#if PY_VERSION_HEX < 0x030B0000
  int qualname_at = next(LOAD_CONST);  // 3.10 passes the qualified name
  if (qualname_at < 0 || qualname_at >= PyTuple_GET_SIZE(consts)) return UnitValue::Code;
  PyObject* qualname = PyTuple_GET_ITEM(consts, qualname_at);
  if (!PyUnicode_Check(qualname) || PyUnicode_Compare(qualname, fn->co_name) != 0) return UnitValue::Code;
#endif
  if (next(MAKE_FUNCTION) != 0) return UnitValue::Code;  // flags: defaults, annotations, closure
  int store_at = next(STORE_NAME);
  if (store_at < 0 || store_at >= PyTuple_GET_SIZE(co->co_names)) return UnitValue::Code;
  PyObject* name = PyTuple_GET_ITEM(co->co_names, store_at);
  if (PyUnicode_Compare(name, fn->co_name) != 0) {
    PyErr_Clear();
    return UnitValue::Code;
  }
  bool returns_none = false;
#ifdef RETURN_CONST
  if (at + 1 == ops.size() && ops[at].first == RETURN_CONST && is_none(ops[at].second)) returns_none = true;
#endif
  if (at + 2 == ops.size() && ops[at].first == LOAD_CONST && is_none(ops[at].second) && ops[at + 1].first == RETURN_VALUE)
    returns_none = true;
  if (!returns_none) return UnitValue::Code;
  *value = reinterpret_cast<PyObject*>(fn);
  return UnitValue::Function;
}

// `class Name(B1, ...):` with nothing else evaluated at definition time:
// (PUSH_NULL,) LOAD_BUILD_CLASS, LOAD_CONST <body>, (3.10: LOAD_CONST
// <qualname>,) MAKE_FUNCTION 0, LOAD_CONST <name>, LOAD_NAME <base>...,
// (PRECALL,) CALL n, STORE_NAME <name>, return None. Running it is
// __build_class__(PyFunction_New(body, globals), name, *bases), as those
// opcodes do. `*value`: a new (body, name, (base names)).
template <typename IsNone>
UnitValue plain_class(PyCodeObject* co, const std::vector<std::pair<int, int>>& ops, IsNone is_none,
                      PyObject** value) {
  PyObject* consts = co->co_consts;
  std::vector<std::pair<int, int>> rest;
  for (auto op : ops) {
#ifdef PUSH_NULL
    if (op.first == PUSH_NULL) continue;
#endif
#ifdef PRECALL
    if (op.first == PRECALL) continue;
#endif
    rest.push_back(op);
  }
  size_t at = 0;
  auto next = [&](int op) { return at < rest.size() && rest[at].first == op ? rest[at++].second : -1; };
  auto str_const = [&](int i) -> PyObject* {
    if (i < 0 || i >= PyTuple_GET_SIZE(consts) || !PyUnicode_Check(PyTuple_GET_ITEM(consts, i))) return nullptr;
    return PyTuple_GET_ITEM(consts, i);
  };
  if (next(LOAD_BUILD_CLASS) < 0) return UnitValue::Code;
  int body_at = next(LOAD_CONST);
  if (body_at < 0 || body_at >= PyTuple_GET_SIZE(consts) || !PyCode_Check(PyTuple_GET_ITEM(consts, body_at)))
    return UnitValue::Code;
  PyObject* body = PyTuple_GET_ITEM(consts, body_at);
#if PY_VERSION_HEX < 0x030B0000
  if (str_const(next(LOAD_CONST)) == nullptr) return UnitValue::Code;  // the qualified name: the class's own
#endif
  if (next(MAKE_FUNCTION) != 0) return UnitValue::Code;
  PyObject* name = str_const(next(LOAD_CONST));
  if (name == nullptr) return UnitValue::Code;
  std::vector<PyObject*> bases;
  while (at < rest.size() && rest[at].first == LOAD_NAME) {
    int i = rest[at++].second;
    if (i >= PyTuple_GET_SIZE(co->co_names)) return UnitValue::Code;
    bases.push_back(PyTuple_GET_ITEM(co->co_names, i));
  }
#ifdef CALL_FUNCTION
  int call = next(CALL_FUNCTION);
#else
  int call = next(CALL);
#endif
  if (call != (int)bases.size() + 2) return UnitValue::Code;
  int store_at = next(STORE_NAME);
  if (store_at < 0 || store_at >= PyTuple_GET_SIZE(co->co_names)) return UnitValue::Code;
  int same = PyUnicode_Compare(PyTuple_GET_ITEM(co->co_names, store_at), name);
  if (same != 0) {
    PyErr_Clear();
    return UnitValue::Code;
  }
  bool returns_none = false;
#ifdef RETURN_CONST
  if (at + 1 == rest.size() && rest[at].first == RETURN_CONST && is_none(rest[at].second)) returns_none = true;
#endif
  if (at + 2 == rest.size() && rest[at].first == LOAD_CONST && is_none(rest[at].second) &&
      rest[at + 1].first == RETURN_VALUE)
    returns_none = true;
  if (!returns_none) return UnitValue::Code;
  PyObject* names = PyTuple_New((Py_ssize_t)bases.size());
  if (names == nullptr) {
    PyErr_Clear();
    return UnitValue::Code;
  }
  for (size_t i = 0; i < bases.size(); ++i) PyTuple_SET_ITEM(names, (Py_ssize_t)i, Py_NewRef(bases[i]));
  *value = Py_BuildValue("(OON)", body, name, names);
  if (*value == nullptr) {
    PyErr_Clear();
    return UnitValue::Code;
  }
  return UnitValue::Class;
}

// The (opcode, arg) pairs of `co` without the no-ops; false (nothing set)
// when it has an EXTENDED_ARG (never in a unit this small) or its bytecode
// cannot be read.
bool read_ops(PyCodeObject* co, std::vector<std::pair<int, int>>& ops) {
#if PY_VERSION_HEX >= 0x030B0000
  py::Ref bytes = py::Ref::steal(PyCode_GetCode(co));  // without the interpreter's specializations
  if (!bytes) {
    PyErr_Clear();
    return false;
  }
#else
  py::Ref bytes = py::Ref::borrow(co->co_code);
#endif
  const auto* raw = reinterpret_cast<const unsigned char*>(PyBytes_AS_STRING(bytes.get()));
  Py_ssize_t n = PyBytes_GET_SIZE(bytes.get());
  for (Py_ssize_t i = 0; i + 1 < n; i += 2) {
    int op = raw[i];
    if (op == EXTENDED_ARG) return false;
    if (!skipped(op)) ops.emplace_back(op, raw[i + 1]);
  }
  return true;
}

}  // namespace

namespace {

// Ops that assign, unpack or call (a call's callee is checked apart).
bool stack_or_call(int op, bool* calls) {
#ifdef COPY
  if (op == COPY || op == SWAP) return true;  // a = b = value; a, b = x, y
#endif
#ifdef DUP_TOP
  if (op == DUP_TOP || op == ROT_TWO || op == ROT_THREE) return true;
#endif
#ifdef PUSH_NULL
  if (op == PUSH_NULL) return true;
#endif
#ifdef PRECALL
  if (op == PRECALL) return true;
#endif
#ifdef CALL_FUNCTION
  if (op == CALL_FUNCTION) {
#else
  if (op == CALL) {
#endif
    *calls = true;
    return true;
  }
  return op == UNPACK_SEQUENCE;
}

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
// A comprehension's own code (3.11: its own function, called once on the
// iterator of a constant) that only reads its loop variables and constants,
// calls builtins `cheap_callable` accepts and applies operators to what those
// give (builtin values: no Python-level method runs): `{i: '\\' + chr(i) for i
// in b'()[]'}` (re's `_special_chars_map`).
bool cheap_comprehension(PyCodeObject* co, bool (*cheap_callable)(PyObject*, void*), void* context) {
  std::vector<std::pair<int, int>> ops;
  if (!read_ops(co, ops)) return false;
  bool calls = false;
  for (auto [op, arg] : ops) {
    switch (op) {
      case LOAD_FAST:
      case STORE_FAST:
      case LOAD_CONST:
      case FOR_ITER:
      case JUMP_BACKWARD:
      case BUILD_TUPLE:
      case BUILD_LIST:
      case BUILD_SET:
      case BUILD_MAP:
      case LIST_APPEND:
      case SET_ADD:
      case MAP_ADD:
      case BINARY_OP:
      case RETURN_VALUE:
        continue;
      case LOAD_GLOBAL:  // arg >> 1: the name; its low bit pushes NULL first
        if ((arg >> 1) >= PyTuple_GET_SIZE(co->co_names) ||
            !cheap_callable(PyTuple_GET_ITEM(co->co_names, arg >> 1), context))
          return false;
        continue;
      default:
        if (stack_or_call(op, &calls)) continue;
        return false;
    }
  }
  return true;
}
#endif

}  // namespace

long runs_like_a_constant(PyObject* code, bool (*cheap_callable)(PyObject* name, void* context), void* context) {
  if (!PyCode_Check(code)) return -1;
  auto* co = reinterpret_cast<PyCodeObject*>(code);
  std::vector<std::pair<int, int>> ops;
  if (!read_ops(co, ops)) return -1;
  bool calls = false;
  long items = 0;
  PyObject* consts = co->co_consts;
  for (size_t i = 0; i < ops.size(); ++i) {
    auto [op, arg] = ops[i];
    if (builds_constant_display(op) || op == LOAD_NAME || stack_or_call(op, &calls)) continue;
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    // A comprehension over a constant: LOAD_CONST <code>, MAKE_FUNCTION 0,
    // LOAD_CONST <iterable>, GET_ITER, (PRECALL 0,) CALL 0.
    if (op == MAKE_FUNCTION && arg == 0 && i > 0 && ops[i - 1].first == LOAD_CONST) {
      PyObject* fn = PyTuple_GET_ITEM(consts, ops[i - 1].second);
      if (PyCode_Check(fn) && cheap_comprehension(reinterpret_cast<PyCodeObject*>(fn), cheap_callable, context))
        continue;
    }
    if (op == GET_ITER && i > 0 && ops[i - 1].first == LOAD_CONST) {
      PyObject* it = PyTuple_GET_ITEM(consts, ops[i - 1].second);
      Py_ssize_t n = PyTuple_Check(it) || PyBytes_Check(it) || PyUnicode_Check(it) || PyFrozenSet_Check(it)
                         ? PyObject_Length(it)
                         : -1;
      if (n >= 0 && n <= 256) {
        items += n;
        continue;
      }
      PyErr_Clear();
    }
#endif
    return -1;
  }
  if (calls)
    for (auto [op, arg] : ops)
      if (op == LOAD_NAME && (arg >= PyTuple_GET_SIZE(co->co_names) ||
                              !cheap_callable(PyTuple_GET_ITEM(co->co_names, arg), context)))
        return -1;
  return items;
}

UnitValue classify_unit_code(PyObject* code, PyObject** value) {
  *value = nullptr;
  if (!PyCode_Check(code)) return UnitValue::Code;
  auto* co = reinterpret_cast<PyCodeObject*>(code);
  std::vector<std::pair<int, int>> ops;  // (opcode, arg) without the no-ops
  if (!read_ops(co, ops)) return UnitValue::Code;
  PyObject* consts = co->co_consts;
  auto is_none = [&](int index) {
    return index < PyTuple_GET_SIZE(consts) && PyTuple_GET_ITEM(consts, index) == Py_None;
  };
  if (UnitValue f = plain_function(co, ops, is_none, value); f == UnitValue::Function) return f;
  if (!ops.empty() && (ops[0].first == LOAD_BUILD_CLASS || (ops.size() > 1 && ops[1].first == LOAD_BUILD_CLASS)))
    return plain_class(co, ops, is_none, value);
  for (auto [op, arg] : ops)
    if (!builds_constant_display(op)) return UnitValue::Code;
  // LOAD_CONST k; STORE_NAME; then `return None` (RETURN_CONST None, or
  // LOAD_CONST None; RETURN_VALUE).
  bool returns_none = false;
#ifdef RETURN_CONST
  if (ops.size() == 3 && ops[2].first == RETURN_CONST && is_none(ops[2].second)) returns_none = true;
#endif
  if (ops.size() == 4 && ops[2].first == LOAD_CONST && is_none(ops[2].second) && ops[3].first == RETURN_VALUE)
    returns_none = true;
  if (returns_none && ops[0].first == LOAD_CONST && ops[1].first == STORE_NAME &&
      ops[0].second < PyTuple_GET_SIZE(consts)) {
    *value = PyTuple_GET_ITEM(consts, ops[0].second);
    return UnitValue::Constant;
  }
  return UnitValue::Display;
}

}  // namespace lazyexec::compile
