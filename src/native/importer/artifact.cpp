#include "importer/artifact.h"

#include <marshal.h>

#include <cstring>

namespace lazyexec::importer {
namespace {

uint64_t le(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | (unsigned char)p[i];
  return v;
}

bool known_step(PyObject* kind) {
  static const char* kinds[] = {"run", "force", "annotations", "bind_loaded", "force_late", "watch", "own_views"};
  for (const char* k : kinds)
    if (PyUnicode_Check(kind) && PyUnicode_CompareWithASCIIString(kind, k) == 0) return true;
  return false;
}

}  // namespace

Decoded decode(std::string_view data, const Expected& want) {
  if (data.size() < kHeaderSize) return {Verdict::Corrupt, {}, "truncated header"};
  const char* h = data.data();
  if (std::memcmp(h, "LZEX", 4) != 0) return {Verdict::Corrupt, {}, "bad magic"};
  // Another lazyexec, interpreter or knowledge base, or a changed source:
  // stale, rebuilt quietly.
  if (le(h + 4, 2) != want.format || std::string_view(h + 8, 4) != want.pymagic ||
      std::string_view(h + 28, 16) != want.key || le(h + 12, 8) != want.mtime_ns || le(h + 20, 8) != want.size)
    return {Verdict::Stale, {}, nullptr};
  PyObject* payload = PyMarshal_ReadObjectFromString(h + kHeaderSize, (Py_ssize_t)(data.size() - kHeaderSize));
  if (payload == nullptr) {
    if (!PyErr_ExceptionMatches(PyExc_EOFError) && !PyErr_ExceptionMatches(PyExc_ValueError) &&
        !PyErr_ExceptionMatches(PyExc_TypeError))
      throw py::PyError{};
    PyErr_Clear();
    return {Verdict::Corrupt, {}, "bad payload"};
  }
  py::Ref plan = py::Ref::steal(payload);
  if (!PyTuple_Check(payload) || PyTuple_GET_SIZE(payload) != 2 || !PyList_Check(PyTuple_GET_ITEM(payload, 0)) ||
      !PyList_Check(PyTuple_GET_ITEM(payload, 1)))
    return {Verdict::Corrupt, {}, "bad payload structure"};
  PyObject* units = PyTuple_GET_ITEM(payload, 0);
  PyObject* steps = PyTuple_GET_ITEM(payload, 1);
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(steps); ++i) {
    PyObject* s = PyList_GET_ITEM(steps, i);
    if (!PyTuple_Check(s) || PyTuple_GET_SIZE(s) != 3 || !known_step(PyTuple_GET_ITEM(s, 0)))
      return {Verdict::Corrupt, {}, "bad step"};
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(units); ++i) {
    PyObject* u = PyList_GET_ITEM(units, i);
    if (!PyTuple_Check(u) || PyTuple_GET_SIZE(u) != 5) return {Verdict::Corrupt, {}, "bad unit"};
  }
  return {Verdict::Plan, std::move(plan), nullptr};
}

}  // namespace lazyexec::importer
