#include "image/image_object.h"

#include <marshal.h>
#include <structmember.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>

#include "image/reader.h"
#include "importer/file.h"
#include "py/handle.h"

namespace lazyexec::image {
namespace {

using py::Ref;

PyObject* ImageError = nullptr;  // lazyexec._lazyexec.ImageError (a ValueError)

struct ImageObject {
  PyObject_HEAD
  Mapping* mapping;
  View* view;
  PyObject* path;
};

[[noreturn]] void fail(PyObject* path, const std::string& problem) {
  PyErr_Format(ImageError, "%U: %s", path, problem.c_str());
  throw py::PyError{};
}

int image_init(PyObject* self_obj, PyObject* args, PyObject* kwargs) {
  auto* self = reinterpret_cast<ImageObject*>(self_obj);
  static const char* kwlist[] = {"path", "pymagic", "runtime_key", nullptr};
  PyObject* path;
  Py_buffer pymagic{}, key{};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "U|y*y*", const_cast<char**>(kwlist), &path, &pymagic, &key))
    return -1;
  Expected want{std::string_view((const char*)pymagic.buf, pymagic.buf ? (size_t)pymagic.len : 0),
                std::string_view((const char*)key.buf, key.buf ? (size_t)key.len : 0)};
  int rc = -1;
  try {
    std::string problem;
    std::string p = py::utf8(path);
    auto mapping = Mapping::map(p.c_str(), &problem);
    if (!mapping) fail(path, problem);
    auto* owned = new Mapping(std::move(*mapping));
    auto view = View::open(owned->bytes(), want, &problem);
    if (!view) {
      delete owned;
      fail(path, problem);
    }
    delete self->view;
    delete self->mapping;
    self->mapping = owned;
    self->view = new View(*view);
    Py_XSETREF(self->path, Py_NewRef(path));
    rc = 0;
  } catch (const py::PyError&) {
  }
  if (pymagic.buf) PyBuffer_Release(&pymagic);
  if (key.buf) PyBuffer_Release(&key);
  return rc;
}

void image_dealloc(PyObject* self_obj) {
  auto* self = reinterpret_cast<ImageObject*>(self_obj);
  delete self->view;
  delete self->mapping;
  Py_CLEAR(self->path);
  Py_TYPE(self_obj)->tp_free(self_obj);
}

const View* view_of(PyObject* self_obj) {
  auto* self = reinterpret_cast<ImageObject*>(self_obj);
  if (self->view == nullptr) {
    PyErr_SetString(PyExc_ValueError, "Image: not initialised");
    throw py::PyError{};
  }
  return self->view;
}

Ref locations_list(std::string_view locations) {
  Ref l = py::check(PyList_New(0));
  size_t start = 0;
  while (start < locations.size()) {
    size_t end = locations.find('\0', start);
    if (end == std::string_view::npos) end = locations.size();
    Ref s = Ref::steal(PyUnicode_DecodeFSDefaultAndSize(locations.data() + start, (Py_ssize_t)(end - start)));
    if (!s || PyList_Append(l.get(), s.get()) < 0) throw py::PyError{};
    start = end + 1;
  }
  return l;
}

Ref fs_str(std::string_view s) { return py::check(PyUnicode_DecodeFSDefaultAndSize(s.data(), (Py_ssize_t)s.size())); }

Ref describe(const Module& m) {
  Ref name = py::check(PyUnicode_DecodeUTF8(m.name.data(), (Py_ssize_t)m.name.size(), "strict"));
  return py::check(Py_BuildValue("(NNOOOKKK)", name.release(), fs_str(m.origin).release(),
                                 m.is_package() ? Py_True : Py_False, locations_list(m.locations).get(),
                                 m.is_plan() ? Py_True : Py_False, (unsigned long long)m.mtime_ns,
                                 (unsigned long long)m.size, (unsigned long long)m.source_hash));
}

std::optional<Module> find_module(PyObject* self_obj, PyObject* name) {
  Py_ssize_t n;
  const char* s = PyUnicode_AsUTF8AndSize(name, &n);
  if (s == nullptr) throw py::PyError{};
  std::string problem;
  auto m = view_of(self_obj)->find(std::string_view(s, (size_t)n), &problem);
  if (!m && !problem.empty()) fail(reinterpret_cast<ImageObject*>(self_obj)->path, problem);
  return m;
}

// find(name) -> None | (name, origin, is_package, locations, is_plan, mtime_ns, size, source_hash)
PyObject* image_find(PyObject* self_obj, PyObject* name) {
  if (!PyUnicode_Check(name)) {
    PyErr_SetString(PyExc_TypeError, "Image.find(name: str)");
    return nullptr;
  }
  try {
    auto m = find_module(self_obj, name);
    if (!m) Py_RETURN_NONE;
    return describe(*m).release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// A payload is read once (unmarshalling copies what it keeps): afterwards
// its pages, and the neighbours the kernel mapped with them, go back to the
// page cache, so an image's pages do not accumulate in the process's RSS (a
// .pyc's bytes object is freed after unmarshalling too). A fault maps up to a
// whole page-cache folio (2 MiB on Linux 6 with large folios): the window is
// that size, and the builder starts the payloads on a 2 MiB boundary so that
// lookups (header, index, records, strings) never map payload pages. Private
// read-only file mapping: a later access faults a page in again.
void release_pages(const ImageObject* self, std::string_view bytes) {
  static const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  constexpr uintptr_t kWindow = 2 * 1024 * 1024;
  std::string_view all = self->mapping->bytes();
  uintptr_t lo = ((uintptr_t)self->view->metadata_end() + page - 1) & ~(page - 1);
  uintptr_t hi = ((uintptr_t)all.data() + all.size() + page - 1) & ~(page - 1);
  uintptr_t start = std::max(lo, (uintptr_t)bytes.data() & ~(kWindow - 1));
  uintptr_t end = std::min(hi, ((uintptr_t)bytes.data() + bytes.size() + kWindow - 1) & ~(kWindow - 1));
  if (end > start) ::madvise((void*)start, end - start, MADV_DONTNEED);
}

// The payload of `m`, hash-checked then unmarshalled: a code object (eager
// module) or the plan (units, steps). Damage raises ImageError.
Ref load_payload(PyObject* self_obj, const Module& m) {
  PyObject* path = reinterpret_cast<ImageObject*>(self_obj)->path;
  std::string problem;
  auto bytes = view_of(self_obj)->payload(m, &problem);
  if (!bytes) fail(path, problem);
  PyObject* obj = PyMarshal_ReadObjectFromString(bytes->data(), (Py_ssize_t)bytes->size());
  if (obj == nullptr) {
    if (!PyErr_ExceptionMatches(PyExc_EOFError) && !PyErr_ExceptionMatches(PyExc_ValueError) &&
        !PyErr_ExceptionMatches(PyExc_TypeError))
      throw py::PyError{};
    PyErr_Clear();
    fail(path, "payload of " + std::string(m.name) + ": bad marshal data");
  }
  release_pages(reinterpret_cast<ImageObject*>(self_obj), *bytes);
  Ref out = Ref::steal(obj);
  bool ok = m.is_plan() ? PyTuple_Check(obj) && PyTuple_GET_SIZE(obj) == 2 && PyList_Check(PyTuple_GET_ITEM(obj, 0)) &&
                              PyList_Check(PyTuple_GET_ITEM(obj, 1))
                        : PyCode_Check(obj);
  if (!ok) fail(path, "payload of " + std::string(m.name) + " has the wrong shape");
  return out;
}

// load(name) -> code | (units, steps); KeyError when absent.
PyObject* image_load(PyObject* self_obj, PyObject* name) {
  if (!PyUnicode_Check(name)) {
    PyErr_SetString(PyExc_TypeError, "Image.load(name: str)");
    return nullptr;
  }
  try {
    auto m = find_module(self_obj, name);
    if (!m) {
      PyErr_SetObject(PyExc_KeyError, name);
      return nullptr;
    }
    return load_payload(self_obj, *m).release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// records() -> [describe(module)] in record order; ImageError on a damaged record.
PyObject* image_records(PyObject* self_obj, PyObject*) {
  try {
    const View* v = view_of(self_obj);
    Ref l = py::check(PyList_New(0));
    for (uint32_t i = 0; i < v->count(); ++i) {
      std::string problem;
      auto m = v->at(i, &problem);
      if (!m) fail(reinterpret_cast<ImageObject*>(self_obj)->path, problem);
      if (PyList_Append(l.get(), describe(*m).get()) < 0) throw py::PyError{};
    }
    return l.release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// check_payload(name) -> None, or the problem of its payload (hash, bounds) as str.
PyObject* image_check_payload(PyObject* self_obj, PyObject* name) {
  try {
    auto m = find_module(self_obj, name);
    if (!m) {
      PyErr_SetObject(PyExc_KeyError, name);
      return nullptr;
    }
    std::string problem;
    if (view_of(self_obj)->payload(*m, &problem)) Py_RETURN_NONE;
    return py::str(problem).release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* image_get_entry(PyObject* self_obj, void*) {
  try {
    std::string_view e = view_of(self_obj)->entry();
    if (e.empty()) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(e.data(), (Py_ssize_t)e.size(), "strict");
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* image_get_check(PyObject* self_obj, void*) {
  try {
    static const char* names[] = {"none", "mtime", "hash"};
    return PyUnicode_FromString(names[(int)view_of(self_obj)->check()]);
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* image_get_optimize(PyObject* self_obj, void*) {
  try {
    return PyLong_FromLong(view_of(self_obj)->optimize());
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* image_get_count(PyObject* self_obj, void*) {
  try {
    return PyLong_FromUnsignedLong(view_of(self_obj)->count());
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* image_get_flags(PyObject* self_obj, void*) {
  try {
    return PyLong_FromUnsignedLong(view_of(self_obj)->flags());
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyMethodDef image_methods[] = {
    {"find", image_find, METH_O,
     "find(name) -> None | (name, origin, is_package, locations, is_plan, mtime_ns, size, source_hash)."},
    {"load", image_load, METH_O, "load(name) -> code object (eager module) | (units, steps) (lazy plan)."},
    {"records", image_records, METH_NOARGS, "records() -> every module's find() tuple, in record order."},
    {"check_payload", image_check_payload, METH_O, "check_payload(name) -> None | the payload's problem."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef image_getset[] = {
    {"entry", image_get_entry, nullptr, "the entry point 'module:function', or None", nullptr},
    {"check", image_get_check, nullptr, "the staleness check the image was built with", nullptr},
    {"count", image_get_count, nullptr, "number of modules", nullptr},
    {"optimize", image_get_optimize, nullptr, "the optimization level (-O) its code was compiled at", nullptr},
    {"flags", image_get_flags, nullptr, "header flags", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMemberDef image_members[] = {
    {"path", T_OBJECT, offsetof(ImageObject, path), READONLY, "the image file"},
    {nullptr, 0, 0, 0, nullptr},
};

PyTypeObject ImageType = {PyVarObject_HEAD_INIT(nullptr, 0)};

// ---- the finder --------------------------------------------------------

struct FinderObject {
  PyObject_HEAD
  PyObject* image;        // Image
  PyObject* loader_class;  // loader_class(fullname, origin) -> loader
  PyObject* on_stale;     // on_stale(fullname, origin, why): warns
  PyObject* module_spec;  // importlib's ModuleSpec
  Check check;
};

int finder_init(PyObject* self_obj, PyObject* args, PyObject* kwargs) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  static const char* kwlist[] = {"image", "loader_class", "check", "on_stale", nullptr};
  PyObject *image, *loader_class, *on_stale;
  const char* check;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OsO", const_cast<char**>(kwlist), &ImageType, &image,
                                   &loader_class, &check, &on_stale))
    return -1;
  std::string c = check;
  if (c == "none") self->check = Check::None;
  else if (c == "mtime") self->check = Check::Mtime;
  else if (c == "hash") self->check = Check::Hash;
  else {
    PyErr_Format(PyExc_ValueError, "ImageFinder: check must be 'none', 'mtime' or 'hash', not %R",
                 PyTuple_GET_ITEM(args, 2));
    return -1;
  }
  PyObject* bootstrap = PyDict_GetItemString(PyImport_GetModuleDict(), "_frozen_importlib");
  if (bootstrap == nullptr) {
    PyErr_SetString(PyExc_ImportError, "lazyexec: _frozen_importlib is not loaded");
    return -1;
  }
  PyObject* spec_class = PyObject_GetAttrString(bootstrap, "ModuleSpec");
  if (spec_class == nullptr) return -1;
  Py_XSETREF(self->module_spec, spec_class);
  Py_XSETREF(self->image, Py_NewRef(image));
  Py_XSETREF(self->loader_class, Py_NewRef(loader_class));
  Py_XSETREF(self->on_stale, Py_NewRef(on_stale));
  return 0;
}

void finder_dealloc(PyObject* self_obj) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  PyObject_GC_UnTrack(self_obj);
  Py_CLEAR(self->image);
  Py_CLEAR(self->loader_class);
  Py_CLEAR(self->on_stale);
  Py_CLEAR(self->module_spec);
  Py_TYPE(self_obj)->tp_free(self_obj);
}

int finder_traverse(PyObject* self_obj, visitproc visit, void* arg) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  Py_VISIT(self->image);
  Py_VISIT(self->loader_class);
  Py_VISIT(self->on_stale);
  Py_VISIT(self->module_spec);
  return 0;
}

int finder_clear(PyObject* self_obj) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  Py_CLEAR(self->loader_class);
  Py_CLEAR(self->on_stale);
  return 0;
}

// Why the source of `m` no longer matches the image, or nullptr (fresh).
const char* staleness(Check check, const Module& m, const std::string& origin) {
  if (check == Check::None) return nullptr;
  if (check == Check::Mtime) {
    struct stat st;
    if (::stat(origin.c_str(), &st) != 0) return "source is gone";
    uint64_t mtime = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
    return (mtime != m.mtime_ns || (uint64_t)st.st_size != m.size) ? "source changed (mtime or size)" : nullptr;
  }
  auto data = importer::read_file(origin.c_str());
  if (!data) return "source is gone";
  return hash64(*data) != m.source_hash ? "source changed (hash)" : nullptr;
}

// A submodule is served only where its parent package looks for it: the
// directory holding it (its file's, or its package directory's parent) is in
// the parent's __path__ (`path`). A parent that did not come from the image
// (setuptools' distutils shim in front of the stdlib's) keeps its own
// submodules. String comparisons only: no file-system call.
bool within(const Module& m, PyObject* path) {
  std::string_view dir = m.origin.substr(0, m.origin.rfind('/') == std::string_view::npos ? 0 : m.origin.rfind('/'));
  if (m.is_package()) dir = dir.substr(0, dir.rfind('/') == std::string_view::npos ? 0 : dir.rfind('/'));
  Ref it = Ref::steal(PyObject_GetIter(path));
  if (!it) {
    PyErr_Clear();
    return false;
  }
  while (Ref item = Ref::steal(PyIter_Next(it.get()))) {
    if (!PyUnicode_Check(item.get())) continue;
    Ref encoded = Ref::steal(PyUnicode_EncodeFSDefault(item.get()));
    if (!encoded) {
      PyErr_Clear();
      continue;
    }
    std::string_view entry(PyBytes_AS_STRING(encoded.get()), (size_t)PyBytes_GET_SIZE(encoded.get()));
    while (entry.size() > 1 && entry.back() == '/') entry.remove_suffix(1);
    if (entry == dir) return true;
  }
  if (PyErr_Occurred()) throw py::PyError{};
  return false;
}

PyObject* finder_find_spec(PyObject* self_obj, PyObject* args, PyObject* kwargs) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  static const char* kwlist[] = {"fullname", "path", "target", nullptr};
  PyObject *fullname, *path = Py_None, *target = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "U|OO", const_cast<char**>(kwlist), &fullname, &path, &target))
    return nullptr;
  if (self->image == nullptr || self->loader_class == nullptr) Py_RETURN_NONE;
  try {
    Py_ssize_t n;
    const char* s = PyUnicode_AsUTF8AndSize(fullname, &n);
    if (s == nullptr) throw py::PyError{};
    std::string problem;
    auto m = view_of(self->image)->find(std::string_view(s, (size_t)n), &problem);
    if (!m) {
      if (!problem.empty()) {  // a damaged record: warned, then the normal machinery
        Ref r = py::check(PyObject_CallFunction(self->on_stale, "OOs", fullname, Py_None, problem.c_str()));
      }
      Py_RETURN_NONE;
    }
    if (path != Py_None && !within(*m, path)) Py_RETURN_NONE;
    Ref origin = fs_str(m->origin);
    if (self->check != Check::None) {
      std::string o(m->origin);
      if (const char* why = staleness(self->check, *m, o)) {
        Ref r = py::check(PyObject_CallFunction(self->on_stale, "OOs", fullname, origin.get(), why));
        Py_RETURN_NONE;  // the normal machinery loads the current source
      }
    }
    Ref loader = py::check(PyObject_CallFunctionObjArgs(self->loader_class, fullname, origin.get(), nullptr));
    Ref kw = py::check(Py_BuildValue("{s:O,s:O}", "origin", origin.get(), "is_package",
                                     m->is_package() ? Py_True : Py_False));
    Ref pos = py::check(PyTuple_Pack(2, fullname, loader.get()));
    Ref spec = py::check(PyObject_Call(self->module_spec, pos.get(), kw.get()));
    if (PyObject_SetAttrString(spec.get(), "has_location", Py_True) < 0) throw py::PyError{};
    if (m->is_package() &&
        PyObject_SetAttrString(spec.get(), "submodule_search_locations", locations_list(m->locations).get()) < 0)
      throw py::PyError{};
    return spec.release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* finder_invalidate_caches(PyObject*, PyObject*) { Py_RETURN_NONE; }

PyMethodDef finder_methods[] = {
    {"find_spec", (PyCFunction)(void (*)(void))finder_find_spec, METH_VARARGS | METH_KEYWORDS,
     "find_spec(fullname, path=None, target=None): the module's spec from the image, or None."},
    {"invalidate_caches", finder_invalidate_caches, METH_NOARGS, "Nothing to invalidate: the image is fixed."},
    {nullptr, nullptr, 0, nullptr},
};

PyMemberDef finder_members[] = {
    {"image", T_OBJECT, offsetof(FinderObject, image), READONLY, "the Image served"},
    {nullptr, 0, 0, 0, nullptr},
};

PyTypeObject FinderType = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyObject* image_hash(PyObject*, PyObject* data) {
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return nullptr;
  uint64_t h = hash64(std::string_view((const char*)view.buf, (size_t)view.len));
  PyBuffer_Release(&view);
  return PyLong_FromUnsignedLongLong(h);
}

PyMethodDef functions[] = {
    {"image_hash", image_hash, METH_O, "image_hash(data: bytes) -> the image format's 64-bit hash (docs/image-format.md)."},
    {nullptr, nullptr, 0, nullptr},
};

int add_type(PyObject* module, PyTypeObject* type, const char* name) {
  if (PyType_Ready(type) < 0) return -1;
  Py_INCREF(type);
  if (PyModule_AddObject(module, name, (PyObject*)type) < 0) {
    Py_DECREF(type);
    return -1;
  }
  return 0;
}

}  // namespace

int add_image_types(PyObject* module) {
  ImageType.tp_name = "lazyexec._lazyexec.Image";
  ImageType.tp_basicsize = sizeof(ImageObject);
  ImageType.tp_flags = Py_TPFLAGS_DEFAULT;
  ImageType.tp_doc = "Image(path, pymagic=b'', runtime_key=b''): a memory-mapped application image, validated.";
  ImageType.tp_new = PyType_GenericNew;
  ImageType.tp_init = image_init;
  ImageType.tp_dealloc = image_dealloc;
  ImageType.tp_methods = image_methods;
  ImageType.tp_getset = image_getset;
  ImageType.tp_members = image_members;
  FinderType.tp_name = "lazyexec._lazyexec.ImageFinder";
  FinderType.tp_basicsize = sizeof(FinderObject);
  FinderType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
  FinderType.tp_doc = "ImageFinder(image, loader_class, check, on_stale): serves the image's modules (sys.meta_path).";
  FinderType.tp_new = PyType_GenericNew;
  FinderType.tp_init = finder_init;
  FinderType.tp_dealloc = finder_dealloc;
  FinderType.tp_traverse = finder_traverse;
  FinderType.tp_clear = finder_clear;
  FinderType.tp_methods = finder_methods;
  FinderType.tp_members = finder_members;
  if (add_type(module, &ImageType, "Image") < 0 || add_type(module, &FinderType, "ImageFinder") < 0) return -1;
  if (ImageError == nullptr) {
    ImageError = PyErr_NewExceptionWithDoc("lazyexec._lazyexec.ImageError",
                                           "A damaged, truncated or foreign application image.", PyExc_ValueError,
                                           nullptr);
    if (ImageError == nullptr) return -1;
  }
  Py_INCREF(ImageError);
  if (PyModule_AddObject(module, "ImageError", ImageError) < 0) {
    Py_DECREF(ImageError);
    return -1;
  }
  return PyModule_AddFunctions(module, functions);
}

}  // namespace lazyexec::image
