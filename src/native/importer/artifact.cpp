#include "importer/artifact.h"

#include <marshal.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "image/blob_hash.h"
#include "importer/file.h"

namespace lazyexec::importer {
namespace {

uint64_t le(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | (unsigned char)p[i];
  return v;
}

// sys.<name> (borrowed, or null) through an interned name: PySys_GetObject
// makes a new str per call, and these lookups run for every claimed module.
// Still read each time: a program may rebind them (sys.pycache_prefix,
// sys.dont_write_bytecode, sys.implementation.cache_tag).
PyObject* sys_attr(const char* name, PyObject*& interned) {
  static PyInterpreterState* interpreter = nullptr;
  static PyObject* sys_dict = nullptr;  // borrowed: sys lives as long as its interpreter
  if (interned == nullptr && (interned = PyUnicode_InternFromString(name)) == nullptr) throw py::PyError{};
  if (PyInterpreterState* now = PyInterpreterState_Get(); now != interpreter || sys_dict == nullptr) {
    PyObject* sys = PyImport_AddModule("sys");  // borrowed
    if (sys == nullptr || !PyModule_Check(sys)) {
      PyErr_Clear();
      return PySys_GetObject(name);
    }
    sys_dict = PyModule_GetDict(sys);
    interpreter = now;
  }
  PyObject* value = PyDict_GetItemWithError(sys_dict, interned);
  if (value == nullptr && PyErr_Occurred()) throw py::PyError{};
  return value;
}

bool known_step(PyObject* kind) {
  static const char* kinds[] = {"run", "force", "annotations", "bind_loaded", "force_late", "watch", "own_views", "guard_imports"};
  for (const char* k : kinds)
    if (PyUnicode_Check(kind) && PyUnicode_CompareWithASCIIString(kind, k) == 0) return true;
  return false;
}

}  // namespace

Verdict check_header(std::string_view data, const Expected& want, const char** problem) {
  const char* h = data.data();
  if (data.size() < kHeaderSize || std::memcmp(h, "LZEX", 4) != 0) {
    *problem = data.size() < kHeaderSize ? "truncated header" : "bad magic";
    return Verdict::Corrupt;
  }
  // Another lazyexec, interpreter or knowledge base, or a changed source:
  // stale, rebuilt quietly.
  if (le(h + 4, 2) != want.format || std::string_view(h + 8, 4) != want.pymagic ||
      std::string_view(h + 28, 16) != want.key || le(h + 12, 8) != want.mtime_ns || le(h + 20, 8) != want.size)
    return Verdict::Stale;
  return Verdict::Plan;
}

// ".opt-N" under -O/-OO, else "": how importlib tags a .pyc (and
// store.opt_part() an artifact) for sys.flags.optimize. Read once per
// sys.flags object (the level is fixed at start-up; a replaced sys.flags is
// read again): the lookups run for every claimed module.
static std::string optimization_tag() {
  static PyObject* seen_flags = nullptr;  // held: its address cannot be reused by another object
  static std::string tag;
  static PyObject* flags_name = nullptr;
  PyObject* flags = sys_attr("flags", flags_name);
  if (flags == nullptr) return "";
  if (flags == seen_flags) return tag;
  py::Ref level = py::check(PyObject_GetAttrString(flags, "optimize"));
  long n = PyLong_AsLong(level.get());
  if (n == -1 && PyErr_Occurred()) throw py::PyError{};
  tag = n > 0 ? ".opt-" + std::to_string(n) : "";
  Py_XSETREF(seen_flags, Py_NewRef(flags));
  return tag;
}

std::string cache_from_source(PyObject* source, PyObject* tag) {
  static PyObject* prefix_name = nullptr;
  PyObject* prefix = sys_attr("pycache_prefix", prefix_name);
  if ((prefix != nullptr && prefix != Py_None) || !PyUnicode_Check(tag)) {
    // The prefix's rules (making the path absolute) differ between
    // versions: importlib's own function decides.
    PyObject* external = PyDict_GetItemString(PyImport_GetModuleDict(), "_frozen_importlib_external");
    if (external == nullptr) {
      PyErr_SetString(PyExc_ImportError, "lazyexec: importlib is not initialised");
      throw py::PyError{};
    }
    return py::utf8(py::check(PyObject_CallMethod(external, "cache_from_source", "O", source)).get());
  }
  // importlib._bootstrap_external.cache_from_source() without a prefix, as
  // 3.10-3.13 write it: head/__pycache__/BASE.TAG[.opt-N].pyc, the quirks
  // kept (a name without a dot keeps no dot before the tag; empty parts
  // are dropped from the join and each part loses its trailing slashes).
  std::string path = py::utf8(source);
  size_t slash = path.rfind('/');
  std::string head = slash == std::string::npos ? "" : path.substr(0, slash);
  std::string tail = slash == std::string::npos ? path : path.substr(slash + 1);
  size_t dot = tail.rfind('.');
  std::string base = dot == std::string::npos ? "" : tail.substr(0, dot);
  std::string rest = dot == std::string::npos ? tail : tail.substr(dot + 1);
  std::string name = (base.empty() ? rest : base) + (dot == std::string::npos ? "" : ".") + py::utf8(tag);
  name += optimization_tag() + ".pyc";
  if (head.empty()) return "__pycache__/" + name;
  while (!head.empty() && head.back() == '/') head.pop_back();  // "/" joins as ""
  return head + "/__pycache__/" + name;
}

namespace {

// sys.implementation.cache_tag (new reference).
py::Ref cache_tag() {
  static PyObject* implementation_name = nullptr;
  static PyObject* cache_tag_name = nullptr;
  PyObject* impl = sys_attr("implementation", implementation_name);
  if (impl == nullptr) {
    PyErr_SetString(PyExc_ImportError, "lazyexec: sys.implementation is missing");
    throw py::PyError{};
  }
  if (cache_tag_name == nullptr && (cache_tag_name = PyUnicode_InternFromString("cache_tag")) == nullptr)
    throw py::PyError{};
  return py::check(PyObject_GetAttr(impl, cache_tag_name));
}

// NAME.TAG[.opt-N].pyc -> NAME.TAG[.opt-N].KEY8.lzx, beside the .pyc.
std::string near_artifact(PyObject* source, PyObject* tag, std::string_view key) {
  std::string near = cache_from_source(source, tag);
  near.resize(near.size() - 4);
  near.append(".").append(key.substr(0, 8)).append(".lzx");
  return near;
}

// store.fallback_path: CACHE/HASH.TAG[.opt-N].KEY8.lzx, the -O level as
// importlib tags a .pyc, HASH of the source's absolute normalised path.
std::string cache_artifact(PyObject* source, PyObject* tag, std::string_view key, const std::string& cache_dir) {
  std::string path = py::utf8(source);
  if (path.empty() || path[0] != '/') {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof cwd) == nullptr) {
      PyErr_SetFromErrno(PyExc_OSError);
      throw py::PyError{};
    }
    path = join(cwd, path);
  }
  std::string name = fingerprint(normpath(path));
  name.append(".").append(py::utf8(tag)).append(optimization_tag()).append(".").append(key.substr(0, 8)).append(".lzx");
  return join(cache_dir, name);
}

}  // namespace

bool bytecode_writing_off() {
  static PyObject* name = nullptr;
  PyObject* off = sys_attr("dont_write_bytecode", name);
  return off != nullptr && PyObject_IsTrue(off) == 1;
}

std::string artifact_location(int i, PyObject* source, std::string_view key, const std::string& cache_dir,
                              bool bytecode_off) {
  py::Ref tag = cache_tag();
  return (i == 0) != bytecode_off ? near_artifact(source, tag.get(), key) : cache_artifact(source, tag.get(), key, cache_dir);
}

std::vector<std::string> artifact_locations(PyObject* source, std::string_view key, const std::string& cache_dir,
                                            bool bytecode_off) {
  py::Ref tag = cache_tag();
  std::string near = near_artifact(source, tag.get(), key), fallback = cache_artifact(source, tag.get(), key, cache_dir);
  if (bytecode_off) return {fallback, near};
  return {near, fallback};
}

Decoded decode(std::string_view data, const Expected& want) {
  const char* problem = nullptr;
  Verdict header = check_header(data, want, &problem);
  if (header != Verdict::Plan) return {header, {}, problem};
  const char* h = data.data();
  // marshal trusts its input: a flipped bit in a code object's bytes
  // unmarshals and then runs garbage (a crash, a wrong name). The check
  // refuses such an artifact first, as the image checks its payloads.
  if (image::blob_hash(data.substr(kHeaderSize)) != le(h + kCheckAt, 8))
    return {Verdict::Corrupt, {}, "checksum mismatch"};
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
