#include "image/image_object.h"

#include <marshal.h>
#include <structmember.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "image/reader.h"
#include "importer/file.h"
#include "importer/finder.h"
#include "importer/loader.h"
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
  // Unit code read since its pages were last released (see note_unit_read).
  uintptr_t read_lo, read_hi, last_window;
  int windows;
  // `image build --trace`'s second run (LAZYEXEC_TRACE_UNITS set): every
  // unit code export as (record index << 32 | table entry), in order.
  std::vector<uint64_t>* unit_uses;
  PyObject* recompiled;  // list: code compiled again for damaged units (alive with the image)
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
    const char* trace_units = std::getenv("LAZYEXEC_TRACE_UNITS");
    if (trace_units != nullptr && *trace_units != '\0' && self->unit_uses == nullptr)
      self->unit_uses = new std::vector<uint64_t>();
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
  delete self->unit_uses;
  Py_CLEAR(self->recompiled);
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
  return py::check(Py_BuildValue("(NNOOOKKKOO)", name.release(), fs_str(m.origin).release(),
                                 m.is_package() ? Py_True : Py_False, locations_list(m.locations).get(),
                                 m.is_plan() ? Py_True : Py_False, (unsigned long long)m.mtime_ns,
                                 (unsigned long long)m.size, (unsigned long long)m.source_hash,
                                 m.has_code() ? Py_True : Py_False, m.is_extension() ? Py_True : Py_False));
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

// find(name) -> None | (name, origin, is_package, locations, is_plan, mtime_ns, size, source_hash, has_code,
//                       is_extension)
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

// ---- a unit's code, read from the mapping (format 4) ----------------------
//
// A deferred unit's marshalled code object stays in the image: the plan's
// unit holds this small object instead of a bytes copy, and the runtime
// unmarshals from its buffer when the unit first runs (runtime/materialize.cpp
// reads unit code from any read-only buffer). A loaded plan holds no unit
// bytes and maps no unit code: a unit that never runs costs this object
// only. The buffer is the mapping itself, so the object keeps the Image
// (and the mapping) alive. Its hash is checked at the first export (the
// unit's first run): damaged code is never run. It is compiled again from
// the module's source instead, with a warning, when that gives exactly the
// code the image was built with (its hash); else the unit's run raises
// ImageError and the unit stays pending (checking every unit when its plan
// loads, while the module could still load from its source, would map
// every unit's code: most of them never run).
struct UnitCodeObject {
  PyObject_HEAD
  PyObject* image;  // the Image: keeps the mapping
  const char* data;
  uint64_t hash;
  uint32_t size;
  uint32_t module, unit;  // record index, table entry
  bool checked;
};

PyTypeObject UnitCodeType = {PyVarObject_HEAD_INIT(nullptr, 0)};

// The code of a damaged unit compiled again from its module's source
// (lazyexec.image._unit_from_source): the bytes, or nullptr with ImageError set.
PyObject* recompile_unit(UnitCodeObject* self) {
  auto* image = reinterpret_cast<ImageObject*>(self->image);
  std::string problem;
  auto m = image->view->at(self->module, &problem);
  if (!m) {
    PyErr_Format(ImageError, "%U: %s", image->path, problem.c_str());
    return nullptr;
  }
  std::string what = "unit code " + std::to_string(self->unit) + " of " + std::string(m->name);
  Ref found;
  {
    Ref helper = Ref::steal(PyImport_ImportModule("lazyexec.image"));
    Ref fn = helper ? Ref::steal(PyObject_GetAttrString(helper.get(), "_unit_from_source")) : Ref();
    Ref origin = Ref::steal(PyUnicode_DecodeFSDefaultAndSize(m->origin.data(), (Py_ssize_t)m->origin.size()));
    Ref name = Ref::steal(PyUnicode_DecodeUTF8(m->name.data(), (Py_ssize_t)m->name.size(), "strict"));
    if (fn && origin && name)
      found = Ref::steal(PyObject_CallFunction(fn.get(), "OOOkK", name.get(), origin.get(),
                                               m->is_package() ? Py_True : Py_False, (unsigned long)self->unit,
                                               (unsigned long long)self->hash));
    if (!found) PyErr_Clear();
  }
  if (!found || !PyBytes_Check(found.get())) {
    PyErr_Format(ImageError, "%U: %s is damaged (hash mismatch) and its source does not give the same code again: "
                 "rebuild the image", image->path, what.c_str());
    return nullptr;
  }
  if (image->recompiled == nullptr && (image->recompiled = PyList_New(0)) == nullptr) return nullptr;
  if (PyList_Append(image->recompiled, found.get()) < 0) return nullptr;
  Ref text = Ref::steal(PyUnicode_FromFormat("lazyexec: %U: %s is damaged (hash mismatch); compiled again from its "
                                             "source", image->path, what.c_str()));
  if (!text || PyErr_WarnEx(PyExc_RuntimeWarning, PyUnicode_AsUTF8(text.get()), 1) < 0) return nullptr;
  return found.release();
}

int unit_code_getbuffer(PyObject* self_obj, Py_buffer* view, int flags) {
  auto* self = reinterpret_cast<UnitCodeObject*>(self_obj);
  auto* image = reinterpret_cast<ImageObject*>(self->image);
  if (!self->checked) {
    if (blob_hash(std::string_view(self->data, self->size)) != self->hash) {
      Ref bytes = Ref::steal(recompile_unit(self));
      if (!bytes) {
        view->obj = nullptr;
        return -1;
      }
      self->data = PyBytes_AS_STRING(bytes.get());  // kept alive by image->recompiled
      self->size = (uint32_t)PyBytes_GET_SIZE(bytes.get());
    }
    self->checked = true;
  }
  if (image->unit_uses != nullptr) image->unit_uses->push_back((uint64_t)self->module << 32 | self->unit);
  return PyBuffer_FillInfo(view, self_obj, const_cast<char*>(self->data), self->size, 1, flags);
}

// Unit code read (checked and unmarshalled at first use) is released
// back to the page cache once the reads since the last release have
// touched kUnitWindows windows of 64 KiB (what one fault maps around it):
// the process holds about that much unit code mapped at most, whatever it
// runs. One madvise per kUnitWindows windows read, not one per unit (each
// costs microseconds, and the next read in the same window faults again).
// Two windows, not four: test_bisect's image ends with 128 KB resident
// instead of 256 KB for 92 madvise calls instead of 81 (one window would
// be a call per unit read).
constexpr uintptr_t kUnitWindow = 64 * 1024;
constexpr int kUnitWindows = 2;

void note_unit_read(ImageObject* image, uintptr_t lo, uintptr_t hi) {
  if (hi <= lo) return;
  uintptr_t window = lo / kUnitWindow;
  if (image->windows == 0) {
    image->read_lo = lo;
    image->read_hi = hi;
  } else {
    image->read_lo = std::min(image->read_lo, lo);
    image->read_hi = std::max(image->read_hi, hi);
  }
  if (image->windows == 0 || window != image->last_window) ++image->windows;
  image->windows += (int)((hi - 1) / kUnitWindow - window);  // a read spanning windows
  image->last_window = (hi - 1) / kUnitWindow;
  if (image->windows < kUnitWindows) return;
  static const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  std::string_view all = image->mapping->bytes();
  uintptr_t floor = ((uintptr_t)image->view->metadata_end() + page - 1) & ~(page - 1);
  uintptr_t ceiling = ((uintptr_t)all.data() + all.size() + page - 1) & ~(page - 1);
  uintptr_t start = std::max(floor, image->read_lo & ~(kUnitWindow - 1));
  uintptr_t end = std::min(ceiling, (image->read_hi + kUnitWindow - 1) & ~(kUnitWindow - 1));
  if (end > start) ::madvise((void*)start, end - start, MADV_DONTNEED);
  image->windows = 0;
}

void unit_code_release(PyObject* self_obj, Py_buffer* view) {
  auto* self = reinterpret_cast<UnitCodeObject*>(self_obj);
  auto* image = reinterpret_cast<ImageObject*>(self->image);
  std::string_view all = image->mapping->bytes();
  uintptr_t lo = (uintptr_t)view->buf, hi = lo + (uintptr_t)view->len;
  if (lo >= (uintptr_t)all.data() && hi <= (uintptr_t)all.data() + all.size())  // not recompiled code
    note_unit_read(image, lo, hi);
}

PyBufferProcs unit_code_as_buffer = {unit_code_getbuffer, unit_code_release};

Py_ssize_t unit_code_length(PyObject* self_obj) { return reinterpret_cast<UnitCodeObject*>(self_obj)->size; }

PySequenceMethods unit_code_as_sequence = {unit_code_length};

void unit_code_dealloc(PyObject* self_obj) {
  Py_CLEAR(reinterpret_cast<UnitCodeObject*>(self_obj)->image);
  Py_TYPE(self_obj)->tp_free(self_obj);
}

PyObject* unit_code_repr(PyObject* self_obj) {
  auto* self = reinterpret_cast<UnitCodeObject*>(self_obj);
  return PyUnicode_FromFormat("<lazyexec image unit code: %u bytes>", (unsigned)self->size);
}

// The plan's unit code fields that are table indexes (ints) replaced by
// UnitCode objects over the mapping (bounds checked now, hashes at first
// use). `codes`: the unmarshalled plan's code fields, one per unit.
void link_unit_code(PyObject* self_obj, const Module& m, const PlanParts& parts, PyObject* codes) {
  PyObject* path = reinterpret_cast<ImageObject*>(self_obj)->path;
  const View* view = view_of(self_obj);
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(codes); ++i) {
    // A plain function's code field is ("function", index) (artifact format
    // 10), a plain class's ("class", index, bases) (format 11).
    PyObject* field = PyList_GET_ITEM(codes, i);
    bool function = PyTuple_Check(field) && PyTuple_GET_SIZE(field) == 2 &&
                    PyUnicode_Check(PyTuple_GET_ITEM(field, 0)) &&
                    PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(field, 0), "function") == 0 &&
                    PyLong_CheckExact(PyTuple_GET_ITEM(field, 1));
    bool plain_class = PyTuple_Check(field) && PyTuple_GET_SIZE(field) == 3 &&
                       PyUnicode_Check(PyTuple_GET_ITEM(field, 0)) &&
                       PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(field, 0), "class") == 0 &&
                       PyLong_CheckExact(PyTuple_GET_ITEM(field, 1));
    PyObject* index = function || plain_class ? PyTuple_GET_ITEM(field, 1) : field;
    if (!PyLong_CheckExact(index)) continue;
    long k = PyLong_AsLong(index);
    if (k < 0 || k > UINT32_MAX) {
      PyErr_Clear();
      fail(path, "payload of " + std::string(m.name) + ": bad unit code index");
    }
    std::string problem;
    auto code = view->unit_code(m, parts, (uint32_t)k, &problem);
    if (!code) fail(path, problem);
    auto* obj = PyObject_New(UnitCodeObject, &UnitCodeType);
    if (obj == nullptr) throw py::PyError{};
    obj->image = Py_NewRef(self_obj);
    obj->data = code->bytes.data();
    obj->size = (uint32_t)code->bytes.size();  // a u32 field of the table
    obj->hash = code->hash;
    obj->module = m.index;
    obj->unit = (uint32_t)k;
    obj->checked = false;
    Ref blob = Ref::steal(reinterpret_cast<PyObject*>(obj));
    if (function || plain_class) {
      // ("function", index) -> ("function", code), ("class", index, bases)
      // -> ("class", code, bases): the tuple marshal made, filled in place
      // when nothing else holds it (no new tuple, no new kind string).
      if (Py_REFCNT(field) == 1) {
        PyObject* old = PyTuple_GET_ITEM(field, 1);
        PyTuple_SET_ITEM(field, 1, blob.release());
        Py_DECREF(old);
        continue;
      }
      Ref copy = py::check(PyTuple_GetSlice(field, 0, PyTuple_GET_SIZE(field)));
      PyObject* old = PyTuple_GET_ITEM(copy.get(), 1);
      PyTuple_SET_ITEM(copy.get(), 1, blob.release());
      Py_DECREF(old);
      blob = std::move(copy);
    }
    if (PyList_SetItem(codes, i, blob.release()) < 0) throw py::PyError{};
  }
}

// ---- a plan's units (format 6) ---------------------------------------------
//
// The unit table copied out of the mapping (while the payload's pages are
// mapped) with the code fields: what install() reads in place of a units
// list of tuples (no tuple, list or str per unit unmarshalled).
struct UnitsObject {
  PyObject_HEAD
  PyObject* codes;
  std::vector<UnitTable::Unit>* units;
  std::vector<char>* text;
  std::vector<int>* links;
};

PyTypeObject UnitsType = {PyVarObject_HEAD_INIT(nullptr, 0)};

void units_dealloc(PyObject* self_obj) {
  auto* self = reinterpret_cast<UnitsObject*>(self_obj);
  Py_CLEAR(self->codes);
  delete self->units;
  delete self->text;
  delete self->links;
  Py_TYPE(self_obj)->tp_free(self_obj);
}

Py_ssize_t units_length(PyObject* self_obj) { return (Py_ssize_t)reinterpret_cast<UnitsObject*>(self_obj)->units->size(); }

PySequenceMethods units_as_sequence = {units_length};

Ref make_units(PyObject* codes, const PlanParts& parts) {
  auto* obj = PyObject_New(UnitsObject, &UnitsType);
  if (obj == nullptr) throw py::PyError{};
  obj->codes = Py_NewRef(codes);
  obj->units = nullptr;
  obj->text = nullptr;
  obj->links = nullptr;
  Ref out = Ref::steal(reinterpret_cast<PyObject*>(obj));
  obj->units = new std::vector<UnitTable::Unit>(parts.unit_count);
  for (uint32_t i = 0; i < parts.unit_count; ++i) {
    UnitEntry e = parts.unit(i);
    (*obj->units)[i] = UnitTable::Unit{e.where_at, e.binds_at, e.nbinds, e.links_at, e.ndeps, e.ncalls};
  }
  obj->text = new std::vector<char>(parts.text.begin(), parts.text.end());
  obj->links = new std::vector<int>(parts.links.size() / 4);
  for (size_t k = 0; k < obj->links->size(); ++k) (*obj->links)[k] = (int)parts.link((uint32_t)k);
  return out;
}

// The units list of the plan format (docs/artifact-format.md): units[i] is
// (code, binds, deps, where, calls), for the Python layer (Image.load, the
// plan runner of a module whose class lazyexec swapped).
Ref units_list(PyObject* units_obj) {
  auto* self = reinterpret_cast<UnitsObject*>(units_obj);
  const auto& text = *self->text;
  const auto& links = *self->links;
  Ref out = py::check(PyList_New((Py_ssize_t)self->units->size()));
  auto str_at = [&](uint32_t at) {
    const char* s = text.data() + at;
    return py::check(PyUnicode_DecodeUTF8(s, (Py_ssize_t)std::strlen(s), "surrogatepass"));
  };
  auto ints = [&](uint32_t at, uint32_t n) {
    Ref l = py::check(PyList_New(n));
    for (uint32_t k = 0; k < n; ++k) PyList_SET_ITEM(l.get(), k, py::check(PyLong_FromLong(links[at + k])).release());
    return l;
  };
  for (size_t i = 0; i < self->units->size(); ++i) {
    const auto& u = (*self->units)[i];
    Ref binds = py::check(PyTuple_New(u.nbinds));
    uint32_t at = u.binds_at;
    for (uint32_t k = 0; k < u.nbinds; ++k) {
      PyObject* name = str_at(at).release();
      PyUnicode_InternInPlace(&name);  // as marshal gives a plan's names
      at += (uint32_t)std::strlen(text.data() + at) + 1;
      PyTuple_SET_ITEM(binds.get(), k, name);
    }
    Ref unit = py::check(Py_BuildValue("(ONNNN)", PyList_GET_ITEM(self->codes, i), binds.release(),
                                       ints(u.links_at, u.ndeps).release(), str_at(u.where_at).release(),
                                       ints(u.links_at + u.ndeps, u.ncalls).release()));
    PyList_SET_ITEM(out.get(), (Py_ssize_t)i, unit.release());
  }
  return out;
}

// The payload of `m` (want_code: its eager code object instead, which is
// the payload of an eager module), hash-checked then unmarshalled: a code
// object, or the plan (units, steps), its units an ImageUnits object (the
// unit table, format 6, and the code fields, unit code linked to the
// mapping; units_list() gives the plan format's list). Damage raises ImageError.
Ref load_payload(PyObject* self_obj, const Module& m, bool want_code = false) {
  PyObject* path = reinterpret_cast<ImageObject*>(self_obj)->path;
  std::string problem;
  const View* view = view_of(self_obj);
  auto bytes = want_code ? view->code(m, &problem) : view->payload(m, &problem);
  if (!bytes) fail(path, problem);
  bool plan = m.is_plan() && !want_code;
  std::string_view marshalled = *bytes;
  std::optional<PlanParts> parts;
  if (plan) {
    parts = View::split_plan(m, *bytes, &problem);
    if (!parts) fail(path, problem);
    marshalled = parts->marshalled;
  }
  PyObject* obj = PyMarshal_ReadObjectFromString(marshalled.data(), (Py_ssize_t)marshalled.size());
  if (obj == nullptr) {
    if (!PyErr_ExceptionMatches(PyExc_EOFError) && !PyErr_ExceptionMatches(PyExc_ValueError) &&
        !PyErr_ExceptionMatches(PyExc_TypeError))
      throw py::PyError{};
    PyErr_Clear();
    fail(path, (plan ? "payload of " : "code of ") + std::string(m.name) + ": bad marshal data");
  }
  Ref out = Ref::steal(obj);
  bool ok = plan ? PyTuple_Check(obj) && PyTuple_GET_SIZE(obj) == 2 && PyList_Check(PyTuple_GET_ITEM(obj, 0)) &&
                       PyList_Check(PyTuple_GET_ITEM(obj, 1)) &&
                       PyList_GET_SIZE(PyTuple_GET_ITEM(obj, 0)) == (Py_ssize_t)parts->unit_count
                 : PyCode_Check(obj);
  if (!ok) {
    release_pages(reinterpret_cast<ImageObject*>(self_obj), *bytes);
    fail(path, (plan ? "payload of " : "code of ") + std::string(m.name) + " has the wrong shape");
  }
  if (plan) {
    // The unit code table and the unit table are in the payload: read
    // before its pages go (after, it would fault them back in, and they
    // would stay).
    PyObject* codes = PyTuple_GET_ITEM(obj, 0);
    link_unit_code(self_obj, m, *parts, codes);
    Ref units = make_units(codes, *parts);
    out = py::check(PyTuple_Pack(2, units.get(), PyTuple_GET_ITEM(obj, 1)));
  }
  release_pages(reinterpret_cast<ImageObject*>(self_obj), *bytes);
  return out;
}

// A loaded plan with the plan format's units list (the Python layer's).
Ref plan_with_list(const Ref& plan) {
  Ref units = units_list(PyTuple_GET_ITEM(plan.get(), 0));
  return py::check(PyTuple_Pack(2, units.get(), PyTuple_GET_ITEM(plan.get(), 1)));
}

// load(name) -> code | (units, steps); KeyError when absent.
PyObject* image_load(PyObject* self_obj, PyObject* name) {
  if (!PyUnicode_Check(name)) {
    PyErr_SetString(PyExc_TypeError, "Image.load(name: str)");
    return nullptr;
  }
  try {
    auto m = find_module(self_obj, name);
    if (!m || m->is_extension()) {  // an extension module: nothing to load from the image
      PyErr_SetObject(PyExc_KeyError, name);
      return nullptr;
    }
    Ref plan = load_payload(self_obj, *m);
    return (m->is_plan() ? plan_with_list(plan) : plan).release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// load_code(name) -> the module's eager code object; KeyError when absent
// from the image (a plan module built without it too).
PyObject* image_load_code(PyObject* self_obj, PyObject* name) {
  if (!PyUnicode_Check(name)) {
    PyErr_SetString(PyExc_TypeError, "Image.load_code(name: str)");
    return nullptr;
  }
  try {
    auto m = find_module(self_obj, name);
    if (!m || !m->has_code()) {
      PyErr_SetObject(PyExc_KeyError, name);
      return nullptr;
    }
    return load_payload(self_obj, *m, true).release();
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
    const View* v = view_of(self_obj);
    if (m->is_extension()) Py_RETURN_NONE;  // nothing of it in the image beyond its record
    if (!v->payload(*m, &problem)) return py::str(problem).release();
    if (m->is_plan() && m->has_code() && !v->code(*m, &problem)) return py::str(problem).release();
    if (m->is_plan()) {  // every unit's code, as its first run would check it
      auto parts = View::split_plan(*m, *v->payload(*m, &problem), &problem);
      if (!parts) return py::str(problem).release();
      for (uint32_t k = 0; k < parts->units; ++k) {
        auto code = v->unit_code(*m, *parts, k, &problem);
        if (!code) return py::str(problem).release();
        if (!code->intact())
          return py::str("unit code " + std::to_string(k) + " of " + std::string(m->name) +
                         " is damaged (hash mismatch)")
              .release();
      }
    }
    Py_RETURN_NONE;
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// unit_uses() -> [(module name, table entry)] in the order units first ran
// (LAZYEXEC_TRACE_UNITS set when the image was opened), else None.
PyObject* image_unit_uses(PyObject* self_obj, PyObject*) {
  auto* self = reinterpret_cast<ImageObject*>(self_obj);
  if (self->unit_uses == nullptr) Py_RETURN_NONE;
  try {
    const View* v = view_of(self_obj);
    Ref out = py::check(PyList_New(0));
    Ref seen = py::check(PySet_New(nullptr));
    for (uint64_t use : *self->unit_uses) {
      Ref key = py::check(PyLong_FromUnsignedLongLong(use));
      int had = PySet_Contains(seen.get(), key.get());
      if (had < 0 || PySet_Add(seen.get(), key.get()) < 0) throw py::PyError{};
      if (had) continue;
      std::string problem;
      auto m = v->at((uint32_t)(use >> 32), &problem);
      if (!m) continue;
      Ref name = py::check(PyUnicode_DecodeUTF8(m->name.data(), (Py_ssize_t)m->name.size(), "strict"));
      Ref item = py::check(Py_BuildValue("(Ok)", name.get(), (unsigned long)(use & 0xFFFFFFFFu)));
      if (PyList_Append(out.get(), item.get()) < 0) throw py::PyError{};
    }
    return out.release();
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
     "find(name) -> None | (name, origin, is_package, locations, is_plan, mtime_ns, size, source_hash, has_code, "
     "is_extension)."},
    {"load", image_load, METH_O, "load(name) -> code object (eager module) | (units, steps) (lazy plan)."},
    {"load_code", image_load_code, METH_O, "load_code(name) -> the module's eager code object (KeyError: none)."},
    {"records", image_records, METH_NOARGS, "records() -> every module's find() tuple, in record order."},
    {"check_payload", image_check_payload, METH_O, "check_payload(name) -> None | the payload's problem."},
    {"unit_uses", image_unit_uses, METH_NOARGS,
     "unit_uses() -> [(module, unit code entry)] in first-run order (LAZYEXEC_TRACE_UNITS), else None."},
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

// ---- the finder and the loader -------------------------------------------
//
// The finder answers with the spec PathFinder would give (built here, from a
// template of importlib's own ModuleSpec, with `cached` computed in C++), and
// the loader's find/exec work runs here too: a served module costs no Python
// frame of lazyexec's. The loader class stays a Python subclass of
// SourceFileLoader (get_source, get_data, resources, equality with the eager
// loader); `create_module`, `get_code` and `exec_module` are this file's
// methods installed on it.

struct FinderObject {
  PyObject_HEAD
  PyObject* image;            // Image
  PyObject* loader_class;     // the per-activation ImageLoader class
  PyObject* on_stale;         // on_stale(fullname, origin, why): warns
  PyObject* whole;            // modules the usage profile loads eagerly (set), or None
  PyObject* config;           // the configuration plans run under
  PyObject* make_runner;      // make_runner(config) -> (run_plan, Plan, settle): once, at the first plan
  PyObject* runner;           // its result, or nullptr
  PyObject* settle;           // (settle_threshold, settle_now) given at activation, or nullptr: make_runner's
  PyObject* spec_class;       // importlib's ModuleSpec
  PyObject* spec_template;    // the __dict__ ModuleSpec.__init__ leaves (dict)
  PyObject* frames_removed;   // importlib._bootstrap._call_with_frames_removed
  PyObject* exec;             // builtins.exec
  PyObject* source_get_code;  // SourceFileLoader.get_code: a damaged payload loads from the source
  PyObject* source_exec_module;
  PyObject* extension_loader;  // importlib's ExtensionFileLoader: an extension module's loader
  PyObject* cache_tag;        // sys.implementation.cache_tag (str), or None
  PyObject* builtin_names;    // frozenset(sys.builtin_module_names)
  PyObject* is_frozen;        // _imp.is_frozen
  PyObject* sys_dict;         // sys.__dict__: sys.pycache_prefix read per served module without a new key str
  PyObject* watchers;         // lazyexec's Finder's {fullname: callback(spec) -> spec} (shared dict), or nullptr
  Check check;
};

PyTypeObject FinderType = {PyVarObject_HEAD_INIT(nullptr, 0)};

// Every object the finder holds, for dealloc and the garbage collector.
template <typename F>
void each_slot(FinderObject* f, F&& fn) {
  for (PyObject** slot : {&f->image, &f->loader_class, &f->on_stale, &f->whole, &f->config, &f->make_runner,
                          &f->runner, &f->settle, &f->spec_class, &f->spec_template, &f->frames_removed, &f->exec,
                          &f->source_get_code, &f->source_exec_module, &f->extension_loader, &f->cache_tag, &f->builtin_names,
                          &f->is_frozen, &f->sys_dict, &f->watchers})
    fn(slot);
}

Ref attr(PyObject* o, const char* name) { return py::check(PyObject_GetAttrString(o, name)); }

// The attribute and key names the per-module path uses, interned once: a
// *String call makes and interns a new str each time (about 1 k
// instructions), these are looked up by identity. Immortal for the process
// (one interpreter: the extension is single-phase).
enum Name { kName, kLoader, kOrigin, kLocations, kSetFileattr, kCached, kPath, kFinder, kDunderName, kDunderDict,
            kDunderPath, kDunderFile, kDunderCached, kDunderLoader, kDunderPackage, kPycachePrefix, kNameCount };
PyObject* name_of(Name n) {
  static PyObject* names[kNameCount] = {};
  static const char* text[kNameCount] = {"name", "loader", "origin", "submodule_search_locations", "_set_fileattr",
                                         "_cached", "path", "_finder", "__name__", "__dict__", "__path__",
                                         "__file__", "__cached__", "__loader__", "__package__", "pycache_prefix"};
  if (names[n] == nullptr) {
    names[n] = PyUnicode_InternFromString(text[n]);
    if (names[n] == nullptr) throw py::PyError{};
  }
  return names[n];
}

int install_loader_methods(PyObject* loader_class, PyObject* finder);

int finder_init(PyObject* self_obj, PyObject* args, PyObject* kwargs) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  static const char* kwlist[] = {"image", "loader_class", "check", "on_stale", "whole", "make_runner", "config",
                                 "settle", "watchers", nullptr};
  PyObject *image, *loader_class, *on_stale, *whole = Py_None, *make_runner = Py_None, *config = Py_None;
  PyObject *settle = Py_None, *watchers = Py_None;
  const char* check;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!sO|OOOOO", const_cast<char**>(kwlist), &ImageType, &image,
                                   &PyType_Type, &loader_class, &check, &on_stale, &whole, &make_runner, &config,
                                   &settle, &watchers))
    return -1;
  if (watchers != Py_None && !PyDict_Check(watchers)) {
    PyErr_SetString(PyExc_TypeError, "ImageFinder: watchers must be a dict (lazyexec's Finder.watchers) or None");
    return -1;
  }
  if (settle != Py_None && !(PyTuple_Check(settle) && PyTuple_GET_SIZE(settle) == 2 &&
                             PyLong_Check(PyTuple_GET_ITEM(settle, 0)) && PyBool_Check(PyTuple_GET_ITEM(settle, 1)))) {
    PyErr_SetString(PyExc_TypeError, "ImageFinder: settle must be (threshold: int, settle_now: bool) or None");
    return -1;
  }
  std::string c = check;
  if (c == "none") self->check = Check::None;
  else if (c == "mtime") self->check = Check::Mtime;
  else if (c == "hash") self->check = Check::Hash;
  else {
    PyErr_Format(PyExc_ValueError, "ImageFinder: check must be 'none', 'mtime' or 'hash', not %R",
                 PyTuple_GET_ITEM(args, 2));
    return -1;
  }
  if (whole != Py_None && !PyAnySet_Check(whole)) {
    PyErr_SetString(PyExc_TypeError, "ImageFinder: whole must be a set or None");
    return -1;
  }
  try {
    PyObject* modules = PyImport_GetModuleDict();
    PyObject* bootstrap = PyDict_GetItemString(modules, "_frozen_importlib");
    PyObject* external = PyDict_GetItemString(modules, "_frozen_importlib_external");
    if (bootstrap == nullptr || external == nullptr) {
      PyErr_SetString(PyExc_ImportError, "lazyexec: importlib's bootstrap modules are not loaded");
      throw py::PyError{};
    }
    Ref spec_class = attr(bootstrap, "ModuleSpec");
    // The attributes ModuleSpec.__init__ sets on this interpreter (they differ
    // between versions): each served spec starts from a copy.
    Ref sample = py::check(PyObject_CallFunction(spec_class.get(), "ss", "lazyexec.image.sample", ""));
    Ref sample_dict = py::check(PyObject_GenericGetDict(sample.get(), nullptr));
    Ref template_dict = py::check(PyDict_Copy(sample_dict.get()));
    Ref source_loader = attr(external, "SourceFileLoader");
    Ref implementation = Ref::borrow(PySys_GetObject("implementation"));
    Ref tag = implementation ? Ref::steal(PyObject_GetAttrString(implementation.get(), "cache_tag")) : Ref{};
    if (!tag) {
      PyErr_Clear();
      tag = Ref::borrow(Py_None);
    }
    Ref builtins = Ref::borrow(PyEval_GetBuiltins());
    PyObject* exec = builtins ? PyDict_GetItemString(builtins.get(), "exec") : nullptr;
    if (exec == nullptr) {
      PyErr_SetString(PyExc_ImportError, "lazyexec: builtins.exec is missing");
      throw py::PyError{};
    }
    PyObject* imp = PyDict_GetItemString(modules, "_imp");
    PyObject* sys_module = PyDict_GetItemString(modules, "sys");
    PyObject* sys_dict = sys_module != nullptr && PyModule_Check(sys_module) ? PyModule_GetDict(sys_module) : nullptr;
    PyObject* names = PySys_GetObject("builtin_module_names");
    if (imp == nullptr || names == nullptr || sys_dict == nullptr) {
      PyErr_SetString(PyExc_ImportError, "lazyexec: _imp, sys or sys.builtin_module_names is missing");
      throw py::PyError{};
    }
    Py_XSETREF(self->builtin_names, py::check(PyFrozenSet_New(names)).release());
    Py_XSETREF(self->is_frozen, attr(imp, "is_frozen").release());
    Py_XSETREF(self->sys_dict, Py_NewRef(sys_dict));
    Py_XSETREF(self->spec_class, spec_class.release());
    Py_XSETREF(self->spec_template, template_dict.release());
    Py_XSETREF(self->frames_removed, attr(bootstrap, "_call_with_frames_removed").release());
    Py_XSETREF(self->exec, Py_NewRef(exec));
    Py_XSETREF(self->source_get_code, attr(source_loader.get(), "get_code").release());
    Py_XSETREF(self->source_exec_module, attr(source_loader.get(), "exec_module").release());
    Py_XSETREF(self->extension_loader, attr(external, "ExtensionFileLoader").release());
    if (!PyType_Check(self->extension_loader)) {
      PyErr_SetString(PyExc_ImportError, "lazyexec: importlib's ExtensionFileLoader is not a class");
      throw py::PyError{};
    }
    Py_XSETREF(self->cache_tag, PyUnicode_Check(tag.get()) ? tag.release() : Py_NewRef(Py_None));
    Py_XSETREF(self->image, Py_NewRef(image));
    Py_XSETREF(self->loader_class, Py_NewRef(loader_class));
    Py_XSETREF(self->on_stale, Py_NewRef(on_stale));
    Py_XSETREF(self->whole, Py_NewRef(whole));
    Py_XSETREF(self->make_runner, Py_NewRef(make_runner));
    Py_XSETREF(self->config, Py_NewRef(config));
    Py_CLEAR(self->runner);
    Py_XSETREF(self->settle, settle == Py_None ? nullptr : Py_NewRef(settle));
    Py_XSETREF(self->watchers, watchers == Py_None ? nullptr : Py_NewRef(watchers));
    if (install_loader_methods(loader_class, self_obj) < 0) throw py::PyError{};
    return 0;
  } catch (const py::PyError&) {
    return -1;
  }
}

void finder_dealloc(PyObject* self_obj) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  PyObject_GC_UnTrack(self_obj);
  each_slot(self, [](PyObject** slot) { Py_CLEAR(*slot); });
  Py_TYPE(self_obj)->tp_free(self_obj);
}

int finder_traverse(PyObject* self_obj, visitproc visit, void* arg) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  int rc = 0;
  each_slot(self, [&](PyObject** slot) {
    if (rc == 0 && *slot != nullptr) rc = visit(*slot, arg);
  });
  return rc;
}

int finder_clear(PyObject* self_obj) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  Py_CLEAR(self->loader_class);  // the loader class refers back to the finder
  Py_CLEAR(self->on_stale);
  Py_CLEAR(self->make_runner);
  Py_CLEAR(self->runner);
  Py_CLEAR(self->config);
  Py_CLEAR(self->watchers);
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
  return blob_hash(*data) != m.source_hash ? "source changed (hash)" : nullptr;
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

// The spec's `cached` as importlib's cache_from_source computes it for a
// source path (dir/__pycache__/stem.TAG[.opt-N].pyc), or None to leave it
// to importlib (sys.pycache_prefix set, no cache tag, not a .py file).
Ref cached_path(FinderObject* self, std::string_view origin) {
  PyObject* prefix = PyDict_GetItemWithError(self->sys_dict, name_of(kPycachePrefix));  // borrowed, as PySys_GetObject
  if (prefix == nullptr && PyErr_Occurred()) throw py::PyError{};
  size_t slash = origin.rfind('/');
  std::string_view tail = origin.substr(slash == std::string_view::npos ? 0 : slash + 1);
  if ((prefix != nullptr && prefix != Py_None) || self->cache_tag == Py_None || slash == std::string_view::npos ||
      tail.size() < 3 || tail.substr(tail.size() - 3) != ".py")
    return Ref::borrow(Py_None);
  Py_ssize_t tag_len;
  const char* tag = PyUnicode_AsUTF8AndSize(self->cache_tag, &tag_len);
  if (tag == nullptr) throw py::PyError{};
  std::string out(origin.substr(0, slash));
  out += "/__pycache__/";
  out += tail.substr(0, tail.size() - 2);  // "stem."
  out.append(tag, (size_t)tag_len);
  int optimize = view_of(self->image)->optimize();  // activation refused an image of another -O level
  if (optimize > 0) out += ".opt-" + std::to_string(optimize);
  out += ".pyc";
  return fs_str(out);
}

// A new ModuleSpec for a served module, as PathFinder's spec_from_file_location
// builds it (origin, has_location, submodule_search_locations), without
// running ModuleSpec's Python __init__: the template's attributes, lists
// fresh, then this module's.
Ref make_spec(FinderObject* self, PyObject* fullname, PyObject* loader, PyObject* origin, const Module& m) {
  auto* type = reinterpret_cast<PyTypeObject*>(self->spec_class);
  Ref empty = py::check(PyTuple_New(0));
  Ref spec = py::check(type->tp_new(type, empty.get(), nullptr));
  Ref d = py::check(PyObject_GenericGetDict(spec.get(), nullptr));
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  while (PyDict_Next(self->spec_template, &pos, &key, &value)) {
    Ref v = PyList_Check(value) ? py::check(PyList_New(0)) : Ref::borrow(value);
    if (PyDict_SetItem(d.get(), key, v.get()) < 0) throw py::PyError{};
  }
  auto set = [&](Name name, PyObject* v) {
    if (PyDict_SetItem(d.get(), name_of(name), v) < 0) throw py::PyError{};
  };
  set(kName, fullname);
  set(kLoader, loader);
  set(kOrigin, origin);
  if (m.is_package()) set(kLocations, locations_list(m.locations).get());
  if (PyDict_GetItemWithError(self->spec_template, name_of(kSetFileattr)) != nullptr) {
    set(kSetFileattr, Py_True);
    if (PyDict_GetItemWithError(self->spec_template, name_of(kCached)) != nullptr)
      set(kCached, cached_path(self, m.origin).get());
  } else if (PyObject_SetAttrString(spec.get(), "has_location", Py_True) < 0) {
    throw py::PyError{};
  }
  return spec;
}

// find_spec(fullname, path=None, target=None), called for every import the
// process makes (the finder is first): vectorcall, the arguments read without
// a tuple or a format string.
PyObject* finder_find_spec(PyObject* self_obj, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  PyObject* given[3] = {nullptr, Py_None, Py_None};  // fullname, path, target
  if (nargs > 3) {
    PyErr_Format(PyExc_TypeError, "find_spec() takes at most 3 arguments (%zd given)", nargs);
    return nullptr;
  }
  for (Py_ssize_t i = 0; i < nargs; ++i) given[i] = args[i];
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, k);
    int slot = -1;
    static const char* names[3] = {"fullname", "path", "target"};
    for (int j = 0; j < 3 && slot < 0; ++j)
      if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0) slot = j;
    if (slot < 0) {
      PyErr_Format(PyExc_TypeError, "find_spec() got an unexpected keyword argument '%U'", key);
      return nullptr;
    }
    if (slot < nargs) {
      PyErr_Format(PyExc_TypeError, "find_spec() got multiple values for argument '%U'", key);
      return nullptr;
    }
    given[slot] = args[nargs + k];
  }
  PyObject *fullname = given[0], *path = given[1];
  if (fullname == nullptr) {
    PyErr_SetString(PyExc_TypeError, "find_spec() missing required argument 'fullname' (pos 1)");
    return nullptr;
  }
  if (!PyUnicode_Check(fullname)) {
    PyErr_Format(PyExc_TypeError, "find_spec() argument 'fullname' must be str, not %.50s", Py_TYPE(fullname)->tp_name);
    return nullptr;
  }
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
    // The finder sits ahead of importlib's BuiltinImporter and FrozenImporter
    // (it saves asking both, in Python, for every served module): a name they
    // serve stays theirs, whatever the image holds (-X frozen_modules=off
    // included: is_frozen says what FrozenImporter would find).
    int builtin = PySet_Contains(self->builtin_names, fullname);
    if (builtin < 0) throw py::PyError{};
    if (builtin) Py_RETURN_NONE;
    Ref frozen = py::check(PyObject_CallOneArg(self->is_frozen, fullname));
    if (PyObject_IsTrue(frozen.get())) Py_RETURN_NONE;
    Ref origin = fs_str(m->origin);
    if (self->check != Check::None) {
      std::string o(m->origin);
      if (const char* why = staleness(self->check, *m, o)) {
        Ref r = py::check(PyObject_CallFunction(self->on_stale, "OOs", fullname, origin.get(), why));
        Py_RETURN_NONE;  // the normal machinery loads the current source
      }
    }
    // FileLoader.__init__'s two attributes, set without running it. An
    // extension module gets importlib's own ExtensionFileLoader (its
    // __init__ sets the same two): the spec is the one PathFinder would give,
    // without the search of sys.path (a stat per directory) that finds it.
    auto* loader_type = reinterpret_cast<PyTypeObject*>(m->is_extension() ? self->extension_loader
                                                                           : self->loader_class);
    Ref empty = py::check(PyTuple_New(0));
    Ref loader = py::check(loader_type->tp_new(loader_type, empty.get(), nullptr));
    if (PyObject_SetAttr(loader.get(), name_of(kName), fullname) < 0 ||
        PyObject_SetAttr(loader.get(), name_of(kPath), origin.get()) < 0)
      throw py::PyError{};
    Ref spec = make_spec(self, fullname, loader.get(), origin.get(), *m);
    // A module lazyexec watches (re's compiler, logging) gets its patch
    // point whichever finder serves it.
    if (self->watchers != nullptr && PyDict_GET_SIZE(self->watchers) > 0) {
      if (PyObject* callback = PyDict_GetItemWithError(self->watchers, fullname)) {
        Ref keep = Ref::borrow(callback);
        return PyObject_CallOneArg(callback, spec.get());
      }
      if (PyErr_Occurred()) throw py::PyError{};
    }
    return spec.release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* finder_invalidate_caches(PyObject*, PyObject*) { Py_RETURN_NONE; }

PyMethodDef finder_methods[] = {
    {"find_spec", (PyCFunction)(void (*)(void))finder_find_spec, METH_FASTCALL | METH_KEYWORDS,
     "find_spec(fullname, path=None, target=None): the module's spec from the image, or None."},
    {"invalidate_caches", finder_invalidate_caches, METH_NOARGS, "Nothing to invalidate: the image is fixed."},
    {nullptr, nullptr, 0, nullptr},
};

// ---- the loader's methods (installed on the ImageLoader class) -----------

// The finder of a loader: its class's `_finder` (set by install_loader_methods).
FinderObject* finder_of(PyObject* loader) {
  Ref f = py::check(PyObject_GetAttr((PyObject*)Py_TYPE(loader), name_of(kFinder)));
  if (!PyObject_TypeCheck(f.get(), &FinderType)) {
    PyErr_SetString(PyExc_TypeError, "ImageLoader: _finder is not an ImageFinder");
    throw py::PyError{};
  }
  return reinterpret_cast<FinderObject*>(f.get());  // the class keeps it alive
}

// A damaged payload: one RuntimeWarning, then the module loads from its source.
void warn_damaged() {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  Ref message = Ref::steal(value ? PyObject_Str(value) : nullptr);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  if (!message) {
    PyErr_Clear();
    message = py::str("damaged image");
  }
  Ref text = py::check(PyUnicode_FromFormat("lazyexec: %U; importing it from its source", message.get()));
  if (PyErr_WarnEx(PyExc_RuntimeWarning, PyUnicode_AsUTF8(text.get()), 1) < 0) throw py::PyError{};
}

// The eager code of the loader's module from the image, or (absent, or
// damaged: warned) from its source through SourceFileLoader.get_code.
Ref module_code(FinderObject* f, PyObject* loader, PyObject* name, const std::optional<Module>& m) {
  if (m && m->has_code()) {
    try {
      return load_payload(f->image, *m, true);
    } catch (const py::PyError&) {
      if (!PyErr_ExceptionMatches(ImageError)) throw;
      warn_damaged();
    }
  }
  return py::check(PyObject_CallFunctionObjArgs(f->source_get_code, loader, name, nullptr));
}

// Whether `name` is the module this loader was made for: a loader asked for
// another name (a module renamed before exec_module) answers as the eager
// SourceFileLoader does, which refuses it ("loader for X cannot handle Y").
bool own_name(PyObject* loader, PyObject* name) {
  Ref own = py::check(PyObject_GetAttr(loader, name_of(kName)));
  int same = PyObject_RichCompareBool(own.get(), name, Py_EQ);
  if (same < 0) throw py::PyError{};
  return same == 1;
}

// get_code(fullname): the code object importlib's exec_module (and runpy) run.
PyObject* loader_get_code(PyObject* self, PyObject* fullname) {
  try {
    FinderObject* f = finder_of(self);
    if (!PyUnicode_Check(fullname)) {
      PyErr_SetString(PyExc_TypeError, "get_code(fullname: str)");
      return nullptr;
    }
    if (!own_name(self, fullname))
      return PyObject_CallFunctionObjArgs(f->source_get_code, self, fullname, nullptr);
    return module_code(f, self, fullname, find_module(f->image, fullname)).release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// create_module(spec): importlib's default module (the module type called
// with the name), with the attributes _init_module_attrs would set from a
// served spec already there, in its order (__loader__, __package__ in the
// slots the new module has for them; then __path__, __file__, __cached__):
// it keeps them instead of computing each (spec.parent and spec.cached are
// Python properties) or looking each up first, which raises and clears an
// AttributeError per missing name. Read from the spec's __dict__ as
// make_spec left it (no property runs); anything else, or a spec whose
// cached is not computed yet: None, importlib's own default.
PyObject* loader_create_module(PyObject*, PyObject* spec) {
  try {
    Ref d = Ref::steal(PyObject_GenericGetDict(spec, nullptr));
    if (!d || !PyDict_Check(d.get())) {
      PyErr_Clear();
      Py_RETURN_NONE;
    }
    auto get = [&](Name key) {  // borrowed
      PyObject* v = PyDict_GetItemWithError(d.get(), name_of(key));
      if (v == nullptr && PyErr_Occurred()) throw py::PyError{};
      return v;
    };
    PyObject* name = get(kName);
    PyObject* loader = get(kLoader);
    PyObject* origin = get(kOrigin);
    PyObject* locations = get(kLocations);
    PyObject* fileattr = get(kSetFileattr);
    PyObject* cached = get(kCached);
    if (name == nullptr || !PyUnicode_CheckExact(name) || loader == nullptr || loader == Py_None ||
        origin == nullptr || !PyUnicode_Check(origin) || locations == nullptr || fileattr != Py_True ||
        cached == nullptr || !PyUnicode_Check(cached))
      Py_RETURN_NONE;
    Ref keep[] = {Ref::borrow(name),      Ref::borrow(loader), Ref::borrow(origin),
                  Ref::borrow(locations), Ref::borrow(cached)};
    // spec.parent: the package itself for a package, else the name up to its last dot.
    Ref package;
    if (locations != Py_None) {
      package = Ref::borrow(name);
    } else {
      Py_ssize_t dot = PyUnicode_FindChar(name, '.', 0, PyUnicode_GET_LENGTH(name), -1);
      if (dot == -2) throw py::PyError{};
      package = py::check(PyUnicode_Substring(name, 0, dot < 0 ? 0 : dot));
    }
    Ref module = py::check(PyModule_NewObject(name));
    auto set = [&](Name key, PyObject* value) {
      if (PyObject_SetAttr(module.get(), name_of(key), value) < 0) throw py::PyError{};
    };
    set(kDunderLoader, loader);
    set(kDunderPackage, package.get());
    if (locations != Py_None) set(kDunderPath, locations);
    set(kDunderFile, origin);
    set(kDunderCached, cached);
    return module.release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// exec_module(module): a plan module through the plan runner, unless the
// usage profile says this program uses it whole (then its eager code, when
// the image holds it); an eager module's code run as importlib runs a .pyc's
// (through _call_with_frames_removed, so tracebacks drop the import frames).
PyObject* loader_exec_module(PyObject* self, PyObject* module) {
  try {
    FinderObject* f = finder_of(self);
    Ref name = py::check(PyObject_GetAttr(module, name_of(kDunderName)));
    if (!PyUnicode_Check(name.get())) {
      PyErr_SetString(PyExc_TypeError, "exec_module: the module's __name__ is not a str");
      return nullptr;
    }
    auto m = own_name(self, name.get()) ? find_module(f->image, name.get()) : std::nullopt;
    if (!m) return PyObject_CallFunctionObjArgs(f->source_exec_module, self, module, nullptr);
    bool eager = !m->is_plan();
    if (!eager && m->has_code() && f->whole != Py_None) {
      int used_whole = PySet_Contains(f->whole, name.get());
      if (used_whole < 0) throw py::PyError{};
      eager = used_whole == 1;
    }
    Ref code;
    if (!eager) {
      Ref plan;
      try {
        plan = load_payload(f->image, *m);
      } catch (const py::PyError&) {
        if (!PyErr_ExceptionMatches(ImageError)) throw;
        warn_damaged();
        std::optional<Module> none;
        code = module_code(f, self, name.get(), none);  // the source
      }
      if (plan && f->settle != nullptr && PyModule_CheckExact(module)) {
        // Activated with the settle policy (the C++ boot): no Python of
        // lazyexec's at all, as below.
        Ref settle = Ref::borrow(f->settle);
        Ref args = py::check(PyTuple_Pack(5, module, PyTuple_GET_ITEM(plan.get(), 0), PyTuple_GET_ITEM(plan.get(), 1),
                                          PyTuple_GET_ITEM(settle.get(), 0), PyTuple_GET_ITEM(settle.get(), 1)));
        Ref r = py::check(importer::run_plan(nullptr, args.get()));
        Py_RETURN_NONE;
      }
      if (plan) {
        if (f->runner == nullptr) {
          Ref runner = py::check(PyObject_CallFunctionObjArgs(f->make_runner, f->config, nullptr));
          if (!PyTuple_Check(runner.get()) || PyTuple_GET_SIZE(runner.get()) != 3) {
            PyErr_SetString(PyExc_TypeError, "ImageFinder: make_runner must return (run_plan, Plan, settle)");
            throw py::PyError{};
          }
          // Another thread may have set it while make_runner ran (it imports): keep the first.
          if (f->runner == nullptr) f->runner = runner.release();
        }
        Ref runner = Ref::borrow(f->runner);  // alive across the calls below, whatever clears the finder
        PyObject* run_plan = PyTuple_GET_ITEM(runner.get(), 0);
        PyObject* plan_class = PyTuple_GET_ITEM(runner.get(), 1);
        PyObject* settle = PyTuple_GET_ITEM(runner.get(), 2);
        if (PyModule_CheckExact(module) && PyTuple_Check(settle) && PyTuple_GET_SIZE(settle) == 2) {
          // A fresh module (create_module's): the C++ plan runner directly,
          // as the warm loader calls it (importer/loader.cpp). The Python
          // layer's run_plan would first give a reloaded module whose class
          // lazyexec swapped its own class back: an exact module has none.
          Ref args = py::check(PyTuple_Pack(5, module, PyTuple_GET_ITEM(plan.get(), 0), PyTuple_GET_ITEM(plan.get(), 1),
                                            PyTuple_GET_ITEM(settle, 0), PyTuple_GET_ITEM(settle, 1)));
          Ref r = py::check(importer::run_plan(nullptr, args.get()));
          Py_RETURN_NONE;
        }
        plan = plan_with_list(plan);  // the Python layer's plan: a units list
        Ref p = py::check(PyObject_CallFunctionObjArgs(plan_class, PyTuple_GET_ITEM(plan.get(), 0),
                                                       PyTuple_GET_ITEM(plan.get(), 1), nullptr));
        Ref r = py::check(PyObject_CallFunctionObjArgs(run_plan, module, p.get(), f->config, settle, nullptr));
        Py_RETURN_NONE;
      }
    } else {
      code = module_code(f, self, name.get(), m);
    }
    Ref globals = py::check(PyObject_GetAttr(module, name_of(kDunderDict)));
    Ref r = py::check(PyObject_CallFunctionObjArgs(f->frames_removed, f->exec, code.get(), globals.get(), nullptr));
    Py_RETURN_NONE;
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyMethodDef loader_methods[] = {
    {"create_module", loader_create_module, METH_O,
     "create_module(spec) -> the default module, its __path__, __file__ and __cached__ set from the spec."},
    {"get_code", loader_get_code, METH_O, "get_code(fullname) -> the module's code object, from the image."},
    {"exec_module", loader_exec_module, METH_O,
     "exec_module(module): run the module from the image (its plan, or its eager code)."},
    {nullptr, nullptr, 0, nullptr},
};

int install_loader_methods(PyObject* loader_class, PyObject* finder) {
  auto* type = reinterpret_cast<PyTypeObject*>(loader_class);
  for (PyMethodDef* def = loader_methods; def->ml_name != nullptr; ++def) {
    Ref descr = Ref::steal(PyDescr_NewMethod(type, def));
    if (!descr || PyObject_SetAttrString(loader_class, def->ml_name, descr.get()) < 0) return -1;
  }
  return PyObject_SetAttrString(loader_class, "_finder", finder);
}

PyMemberDef finder_members[] = {
    {"image", T_OBJECT, offsetof(FinderObject, image), READONLY, "the Image served"},
    {nullptr, 0, 0, 0, nullptr},
};

// ---- activation from the C++ boot (LAZYEXEC_IMAGE) -------------------------
//
// lazyexec.image.activate() without any Python module of lazyexec's: the
// image mapped and validated, the ImageFinder placed as _position() places
// it, its loader class made here. Anything that needs a message (a damaged
// or foreign image, another -O level, a bad LAZYEXEC_IMAGE_CHECK) declines:
// the Python layer activates instead and says it.

constexpr const char* kLazyexecVersion = "0.1.0";  // lazyexec.__version__ (a test compares the runtime keys)

PyObject* booted_finder = nullptr;  // the finder boot_image installed (lazyexec.image adopts it)

// ImageLoader.__eq__ (lazyexec/image/importlib_bootstrap.py's): equal to
// the SourceFileLoader an eager import would use for the same module and file.
PyObject* boot_loader_eq(PyObject* self, PyObject* other) {
  try {
    PyObject* external = PyDict_GetItemString(PyImport_GetModuleDict(), "_frozen_importlib_external");
    if (external == nullptr) Py_RETURN_NOTIMPLEMENTED;
    Ref source_loader = attr(external, "SourceFileLoader");
    int is = PyObject_IsInstance(other, source_loader.get());
    if (is < 0) throw py::PyError{};
    if (!is) Py_RETURN_NOTIMPLEMENTED;
    Ref mine = attr(self, "__dict__");
    Ref theirs = attr(other, "__dict__");
    return PyObject_RichCompare(mine.get(), theirs.get(), Py_EQ);
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyMethodDef boot_loader_eq_def = {"__eq__", boot_loader_eq, METH_O, "Equal to the eager SourceFileLoader's."};

// on_stale(fullname, origin, why): lazyexec.image._on_stale's warning. `self`: the image path.
PyObject* boot_on_stale(PyObject* path, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "on_stale(fullname, origin, why)");
    return nullptr;
  }
  Ref where = Ref::steal(args[1] != Py_None ? PyUnicode_FromFormat(" (%S)", args[1]) : PyUnicode_FromString(""));
  if (!where) return nullptr;
  Ref text = Ref::steal(PyUnicode_FromFormat("lazyexec: image %S: %S%U: %S; importing it normally", path, args[0],
                                             where.get(), args[2]));
  if (!text) return nullptr;
  const char* utf8 = PyUnicode_AsUTF8(text.get());
  if (utf8 == nullptr || PyErr_WarnEx(PyExc_RuntimeWarning, utf8, 1) < 0) return nullptr;
  Py_RETURN_NONE;
}

PyMethodDef boot_on_stale_def = {"on_stale", (PyCFunction)(void (*)(void))boot_on_stale, METH_FASTCALL,
                                 "on_stale(fullname, origin, why): warns that a source changed."};

// make_runner(config): the Python plan runner, for the rare module that is
// not a plain module object (a reload of one whose class lazyexec swapped).
PyObject* boot_make_runner(PyObject*, PyObject* config) {
  Ref bootstrap = Ref::steal(PyImport_ImportModule("lazyexec.image.importlib_bootstrap"));
  if (!bootstrap) return nullptr;
  return PyObject_CallMethod(bootstrap.get(), "make_runner", "O", config);
}

PyMethodDef boot_make_runner_def = {"make_runner", boot_make_runner, METH_O,
                                    "make_runner(config) -> (run_plan, Plan, settle) of the Python layer."};

// lazyexec.image.runtime_key(): fingerprint("VERSION:PLAN_FORMAT:FORMAT:mtime_ns:size"), the
// last two of the extension file (store._build_identity()).
Ref runtime_key(PyObject* extension) {
  Ref file = py::check(PyModule_GetFilenameObject(extension));
  struct stat st;
  std::string f = py::utf8(file.get());
  std::string identity = "unknown";
  if (::stat(f.c_str(), &st) == 0)
    identity = std::to_string((long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec) + ":" +
               std::to_string((long long)st.st_size);
  std::string text = std::string(kLazyexecVersion) + ":" + std::to_string(importer::kArtifactFormat) + ":" +
                     std::to_string(kFormatVersion) + ":" + identity;
  std::string key = importer::fingerprint(text);
  return py::check(PyBytes_FromStringAndSize(key.data(), (Py_ssize_t)key.size()));
}

// Where lazyexec.image._position() puts the finder: ahead of PathFinder and
// of lazyexec's Finder, and of BuiltinImporter and FrozenImporter right before.
Py_ssize_t finder_position(PyObject* meta_path, PyObject* bootstrap, PyObject* external) {
  Ref path_finder = attr(external, "PathFinder");
  Ref builtin = attr(bootstrap, "BuiltinImporter");
  Ref frozen = attr(bootstrap, "FrozenImporter");
  Py_ssize_t n = PyList_GET_SIZE(meta_path), at = n;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* f = PyList_GET_ITEM(meta_path, i);
    // lazyexec's Finder, made by either extension (_lazyexec_boot's, the
    // .pth activation's, is another type of the same name).
    if (f == path_finder.get() || importer::is_finder(f)) {
      at = i;
      break;
    }
  }
  while (at > 0 && (PyList_GET_ITEM(meta_path, at - 1) == builtin.get() ||
                    PyList_GET_ITEM(meta_path, at - 1) == frozen.get()))
    --at;
  return at;
}

// LAZYEXEC_IMAGE_CHECK, else the image's own default; nullptr: not one of none, mtime, hash.
const char* check_setting(const View* view) {
  static const char* names[] = {"none", "mtime", "hash"};
  const char* env = std::getenv("LAZYEXEC_IMAGE_CHECK");
  if (env == nullptr || *env == '\0') return names[(int)view->check()];
  for (const char* name : names)
    if (std::string_view(env) == name) return name;
  return nullptr;
}

// See image_object.h: the image, or Py_None on anything the Python layer must say.
PyObject* boot_open_impl(PyObject* extension, PyObject* path) {
  PyObject* external = PyDict_GetItemString(PyImport_GetModuleDict(), "_frozen_importlib_external");
  if (external == nullptr) Py_RETURN_NONE;
  Ref magic = attr(external, "MAGIC_NUMBER");
  Ref key = runtime_key(extension);
  Ref image = Ref::steal(PyObject_CallFunctionObjArgs((PyObject*)&ImageType, path, magic.get(), key.get(), nullptr));
  if (!image) {
    if (!PyErr_ExceptionMatches(ImageError) && !PyErr_ExceptionMatches(PyExc_OSError) &&
        !PyErr_ExceptionMatches(PyExc_UnicodeError))
      throw py::PyError{};
    PyErr_Clear();
    Py_RETURN_NONE;  // the Python layer warns, naming the defect
  }
  const View* view = view_of(image.get());
  Ref flags = Ref::borrow(PySys_GetObject("flags"));
  Ref optimize = flags ? attr(flags.get(), "optimize") : Ref{};
  if (!optimize || PyLong_AsLong(optimize.get()) != view->optimize()) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  if (check_setting(view) == nullptr) Py_RETURN_NONE;
  return image.release();
}

// See image_object.h: the finder of an image boot_open_impl accepted, installed.
PyObject* boot_install_impl(PyObject* image, PyObject* whole, PyObject* settle, PyObject* watchers) {
  if (booted_finder != nullptr) return Py_NewRef(booted_finder);
  if (!PyObject_TypeCheck(image, &ImageType)) {
    PyErr_SetString(PyExc_TypeError, "boot_install_image: not an Image");
    throw py::PyError{};
  }
  PyObject* modules = PyImport_GetModuleDict();
  PyObject* bootstrap = PyDict_GetItemString(modules, "_frozen_importlib");
  PyObject* external = PyDict_GetItemString(modules, "_frozen_importlib_external");
  PyObject* meta_path = PySys_GetObject("meta_path");
  if (bootstrap == nullptr || external == nullptr || meta_path == nullptr || !PyList_Check(meta_path)) {
    PyErr_SetString(PyExc_ImportError, "lazyexec: importlib's bootstrap modules or sys.meta_path are missing");
    throw py::PyError{};
  }
  const char* check = check_setting(view_of(image));
  if (check == nullptr) check = "none";  // boot_open_impl declined it before
  Ref source_loader = attr(external, "SourceFileLoader");
  Ref source_hash = attr(source_loader.get(), "__hash__");
  Ref body = py::check(Py_BuildValue("{sOsOsOss}", "image", image, "config", Py_None, "__hash__",
                                     source_hash.get(), "__module__", "lazyexec.image.importlib_bootstrap"));
  Ref loader_class = py::check(PyObject_CallFunction((PyObject*)&PyType_Type, "s(O)O", "ImageLoader",
                                                     source_loader.get(), body.get()));
  Ref eq = py::check(PyDescr_NewMethod((PyTypeObject*)loader_class.get(), &boot_loader_eq_def));
  if (PyObject_SetAttrString(loader_class.get(), "__eq__", eq.get()) < 0) throw py::PyError{};
  Ref on_stale = py::check(PyCFunction_New(&boot_on_stale_def, reinterpret_cast<ImageObject*>(image)->path));
  Ref make_runner = py::check(PyCFunction_New(&boot_make_runner_def, nullptr));
  Ref args = py::check(Py_BuildValue("(OOsO)", image, loader_class.get(), check, on_stale.get()));
  Ref kwargs = py::check(Py_BuildValue("{sOsOsOsO}", "whole", whole, "make_runner", make_runner.get(), "settle",
                                       settle, "watchers", watchers));
  Ref finder = py::check(PyObject_Call((PyObject*)&FinderType, args.get(), kwargs.get()));
  if (PyList_Insert(meta_path, finder_position(meta_path, bootstrap, external), finder.get()) < 0)
    throw py::PyError{};
  booted_finder = Py_NewRef(finder.get());
  return finder.release();
}

// image_boot(path, whole=None, settle_threshold=10000, settle_now=False) -> the finder, or None (declined).
PyObject* image_boot(PyObject* module, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"path", "whole", "settle_threshold", "settle_now", nullptr};
  PyObject *path, *whole = Py_None;
  long threshold = 10000;
  int settle_now = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "U|Olp", const_cast<char**>(kwlist), &path, &whole, &threshold,
                                   &settle_now))
    return nullptr;
  return boot_image(module, path, whole, threshold, settle_now != 0);
}

// image_boot_open(path) -> the Image, or None (declined): boot_open_image,
// for the start-up extension (_lazyexec_boot), which reaches this one
// through Python calls.
PyObject* image_boot_open(PyObject* module, PyObject* path) {
  if (!PyUnicode_Check(path)) {
    PyErr_SetString(PyExc_TypeError, "image_boot_open(path: str)");
    return nullptr;
  }
  return boot_open_image(module, path);
}

// image_boot_install(image, whole=None, settle_threshold=10000, settle_now=False, watchers=None) -> the finder.
PyObject* image_boot_install(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"image", "whole", "settle_threshold", "settle_now", "watchers", nullptr};
  PyObject *image, *whole = Py_None, *watchers = Py_None;
  long threshold = 10000;
  int settle_now = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!|OlpO", const_cast<char**>(kwlist), &ImageType, &image, &whole,
                                   &threshold, &settle_now, &watchers))
    return nullptr;
  return boot_install_image(image, whole, threshold, settle_now != 0, watchers);
}

// image_runtime_key() -> lazyexec.image.runtime_key()'s 16 bytes, computed
// here: the Python computation imports lazyexec.store (about 1.9 M
// instructions) on every start that activates an image through the
// Python layer (`run --image`).
PyObject* image_runtime_key(PyObject* module, PyObject*) {
  try {
    return runtime_key(module).release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// image_booted() -> the finder the C++ boot installed, or None.
PyObject* image_booted(PyObject*, PyObject*) { return Py_NewRef(booted_finder ? booted_finder : Py_None); }

PyObject* image_hash(PyObject*, PyObject* data) {
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return nullptr;
  uint64_t h = hash64(std::string_view((const char*)view.buf, (size_t)view.len));
  PyBuffer_Release(&view);
  return PyLong_FromUnsignedLongLong(h);
}

PyObject* image_blob_hash(PyObject*, PyObject* data) {
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return nullptr;
  uint64_t h = blob_hash(std::string_view((const char*)view.buf, (size_t)view.len));
  PyBuffer_Release(&view);
  return PyLong_FromUnsignedLongLong(h);
}

PyMethodDef functions[] = {
    {"image_hash", image_hash, METH_O, "image_hash(data: bytes) -> the image index's 64-bit hash of a name (docs/image-format.md)."},
    {"image_blob_hash", image_blob_hash, METH_O,
     "image_blob_hash(data: bytes) -> the image format's 64-bit check of payloads, eager code and sources."},
    {"image_boot", (PyCFunction)(void (*)(void))image_boot, METH_VARARGS | METH_KEYWORDS,
     "image_boot(path, whole=None, settle_threshold=10000, settle_now=False) -> the ImageFinder installed in C++, "
     "or None when the Python layer must activate the image (it says why)."},
    {"image_boot_open", image_boot_open, METH_O,
     "image_boot_open(path) -> the Image mapped and checked for this interpreter and runtime, or None: the Python "
     "layer must activate it (and say why). The first step of image_boot."},
    {"image_boot_install", (PyCFunction)(void (*)(void))image_boot_install, METH_VARARGS | METH_KEYWORDS,
     "image_boot_install(image, whole=None, settle_threshold=10000, settle_now=False, watchers=None) -> its "
     "ImageFinder, placed on sys.meta_path (after lazyexec's Finder is there), running the patch points of "
     "lazyexec's Finder.watchers. The second step of image_boot."},
    {"image_booted", image_booted, METH_NOARGS, "image_booted() -> the ImageFinder the C++ boot installed, or None."},
    {"image_runtime_key", image_runtime_key, METH_NOARGS,
     "image_runtime_key() -> the 16-byte key of this lazyexec build an image must carry (lazyexec.image.runtime_key)."},
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

PyObject* boot_open_image(PyObject* extension, PyObject* path) {
  try {
    return boot_open_impl(extension, path);
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* boot_install_image(PyObject* image, PyObject* whole, long settle_threshold, bool settle_now,
                             PyObject* watchers) {
  try {
    Ref whole_set;
    if (whole == nullptr || whole == Py_None) {
      whole_set = Ref::borrow(Py_None);
    } else {
      whole_set = py::check(PySet_New(whole));  // a set, a dict (the usage profile's known): its keys
      if (PySet_GET_SIZE(whole_set.get()) == 0) whole_set = Ref::borrow(Py_None);
    }
    Ref settle = py::check(Py_BuildValue("(lO)", settle_threshold, settle_now ? Py_True : Py_False));
    return boot_install_impl(image, whole_set.get(), settle.get(), watchers ? watchers : Py_None);
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* boot_image(PyObject* extension, PyObject* path, PyObject* whole, long settle_threshold, bool settle_now) {
  PyObject* image = boot_open_image(extension, path);
  if (image == nullptr || image == Py_None) return image;
  PyObject* finder = boot_install_image(image, whole, settle_threshold, settle_now, Py_None);
  Py_DECREF(image);
  return finder;
}

bool unit_table(PyObject* obj, UnitTable* out) {
  if (Py_TYPE(obj) != &UnitsType) return false;
  auto* self = reinterpret_cast<UnitsObject*>(obj);
  *out = UnitTable{self->codes, self->units, self->text, self->links};
  return true;
}

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
  FinderType.tp_doc =
      "ImageFinder(image, loader_class, check, on_stale, whole=None, make_runner=None, config=None): serves the "
      "image's modules (sys.meta_path); installs create_module, get_code and exec_module on loader_class.";
  FinderType.tp_new = PyType_GenericNew;
  FinderType.tp_init = finder_init;
  FinderType.tp_dealloc = finder_dealloc;
  FinderType.tp_traverse = finder_traverse;
  FinderType.tp_clear = finder_clear;
  FinderType.tp_methods = finder_methods;
  FinderType.tp_members = finder_members;
  UnitCodeType.tp_name = "lazyexec._lazyexec.ImageUnitCode";
  UnitCodeType.tp_basicsize = sizeof(UnitCodeObject);
  UnitCodeType.tp_flags = Py_TPFLAGS_DEFAULT;
  UnitCodeType.tp_doc = "A deferred unit's marshalled code, read from the image's mapping (a read-only buffer).";
  UnitCodeType.tp_dealloc = unit_code_dealloc;
  UnitCodeType.tp_repr = unit_code_repr;
  UnitCodeType.tp_as_buffer = &unit_code_as_buffer;
  UnitCodeType.tp_as_sequence = &unit_code_as_sequence;
  UnitsType.tp_name = "lazyexec._lazyexec.ImageUnits";
  UnitsType.tp_basicsize = sizeof(UnitsObject);
  UnitsType.tp_flags = Py_TPFLAGS_DEFAULT;
  UnitsType.tp_doc = "A plan's units read from an image's unit table (format 6): what the runtime installs.";
  UnitsType.tp_dealloc = units_dealloc;
  UnitsType.tp_as_sequence = &units_as_sequence;
  if (add_type(module, &ImageType, "Image") < 0 || add_type(module, &FinderType, "ImageFinder") < 0 ||
      add_type(module, &UnitCodeType, "ImageUnitCode") < 0 || add_type(module, &UnitsType, "ImageUnits") < 0)
    return -1;
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
