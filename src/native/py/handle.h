// RAII handles over PyObject*. Ownership is named, never a flag:
//   Ref::steal(p)  takes over a new reference,
//   Ref::borrow(p) adds a reference to a borrowed pointer.
// Assignment releases the old object last, because a decref can run Python code.
#pragma once

#include <Python.h>

#include <string>
#include <string_view>
#include <utility>

namespace lazyexec::py {

class Ref {
 public:
  Ref() = default;
  static Ref steal(PyObject* p) { return Ref(p); }
  static Ref borrow(PyObject* p) {
    Py_XINCREF(p);
    return Ref(p);
  }
  Ref(const Ref& other) : p_(other.p_) { Py_XINCREF(p_); }
  Ref(Ref&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
  Ref& operator=(Ref other) noexcept {
    std::swap(p_, other.p_);  // old object dies with `other`, after the swap
    return *this;
  }
  ~Ref() { Py_XDECREF(p_); }

  PyObject* get() const { return p_; }
  PyObject* release() { return std::exchange(p_, nullptr); }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  explicit Ref(PyObject* p) : p_(p) {}
  PyObject* p_ = nullptr;
};

// Thrown when a C API call failed with a Python exception already set.
struct PyError {};

// Checks a new reference: a NULL without an exception becomes SystemError.
inline Ref check(PyObject* p) {
  if (p == nullptr) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "lazyexec: NULL result without an exception");
    throw PyError{};
  }
  return Ref::steal(p);
}

inline Ref str(std::string_view s) { return check(PyUnicode_FromStringAndSize(s.data(), (Py_ssize_t)s.size())); }

// UTF-8 view of a str object; empty for anything else.
inline std::string utf8(PyObject* o) {
  if (o == nullptr || !PyUnicode_Check(o)) return {};
  Py_ssize_t n = 0;
  const char* s = PyUnicode_AsUTF8AndSize(o, &n);
  if (s == nullptr) throw PyError{};
  return std::string(s, (size_t)n);
}

}  // namespace lazyexec::py
