#include "importer/finder.h"

#include <marshal.h>
#include <structmember.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "importer/file.h"
#include "importer/policy.h"
#include "py/handle.h"

namespace lazyexec::importer {
namespace {

using py::Ref;

thread_local bool busy_flag = false;

// One name for the type in both extensions (Python code and is_finder()
// recognise either).
constexpr const char* kFinderName = "lazyexec._lazyexec.Finder";

struct FinderObject {
  PyObject_HEAD
  Policy* policy;
  PyObject* path_find_spec;  // importlib's PathFinder.find_spec
  PyObject* source_loader;   // SourceFileLoader: the only loader lazyexec replaces
  PyObject* make_loader;     // make_loader(fullname, path) -> lazyexec's loader
  PyObject* config;          // lazyexec.config.Config, for the Python layer
  PyObject* watchers;        // {fullname: callback(spec) -> spec}: runtime patch points
  // Top-level names PathFinder did not find when this finder asked: asking
  // again would search sys.path twice (this finder, then PathFinder after
  // it) at every `try: import nt` of the program; cleared by
  // importlib.invalidate_caches() and by a new sys.path or one of another
  // length.
  PyObject* missed;
  PyObject* missed_path;     // the sys.path list those misses were searched in
  Py_ssize_t missed_path_len;
  // Mode "marked": whether a source opts in, remembered per program beside
  // its usage profile and stamped with the file's mtime and size, so that
  // a source is read and scanned once, not at every start (one stat
  // instead). `marks_path` is None when the profile is off.
  PyObject* marks_path;
  PyObject* marks;  // {path: (mtime_ns, size, opts_in)}, read at first need
  bool marks_dirty;
};

void fill(analyze::NameSet& set, PyObject* iterable) {
  // One allocation for the table (the never-lazy set has a few hundred names).
  if (Py_ssize_t n = PyObject_LengthHint(iterable, 0); n > 0) set.reserve((size_t)n);
  if (PyErr_Occurred()) throw py::PyError{};
  Ref it = Ref::steal(PyObject_GetIter(iterable));
  if (!it) throw py::PyError{};
  while (Ref item = Ref::steal(PyIter_Next(it.get()))) {
    if (!PyUnicode_Check(item.get())) {
      PyErr_SetString(PyExc_TypeError, "Finder: module patterns must be str");
      throw py::PyError{};
    }
    set.add(py::utf8(item.get()));
  }
  if (PyErr_Occurred()) throw py::PyError{};
}

// `opted`: (site-packages directory, module names) pairs from the installed
// index (lazyexec/importer/__init__.py, docs/package-opt-in.md).
void fill_opted(Policy& policy, PyObject* opted) {
  Ref it = Ref::steal(PyObject_GetIter(opted));
  if (!it) throw py::PyError{};
  while (Ref item = Ref::steal(PyIter_Next(it.get()))) {
    PyObject *dir, *names;
    if (!PyTuple_Check(item.get()) || !PyArg_ParseTuple(item.get(), "UO", &dir, &names)) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "Finder: opted must hold (directory, names) tuples");
      throw py::PyError{};
    }
    std::unordered_set<std::string> set;
    Ref names_it = Ref::steal(PyObject_GetIter(names));
    if (!names_it) throw py::PyError{};
    while (Ref name = Ref::steal(PyIter_Next(names_it.get()))) {
      if (!PyUnicode_Check(name.get())) {
        PyErr_SetString(PyExc_TypeError, "Finder: module names must be str");
        throw py::PyError{};
      }
      set.insert(py::utf8(name.get()));
    }
    if (PyErr_Occurred()) throw py::PyError{};
    policy.opted.emplace_back(py::utf8(dir), std::move(set));
  }
  if (PyErr_Occurred()) throw py::PyError{};
}

int finder_init(PyObject* self_obj, PyObject* args, PyObject* kwargs) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  static const char* kwlist[] = {"all_mode", "never", "include", "exclude", "eager", "make_loader", "config", "opted",
                                 "marks", nullptr};
  int all_mode;
  PyObject *never, *include, *exclude, *eager, *make_loader, *config, *opted = nullptr, *marks = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "pOOOOOO|OO", const_cast<char**>(kwlist), &all_mode, &never, &include,
                                   &exclude, &eager, &make_loader, &config, &opted, &marks))
    return -1;
  if (marks != Py_None && !PyUnicode_Check(marks)) {
    PyErr_SetString(PyExc_TypeError, "Finder: marks must be a path (str) or None");
    return -1;
  }
  try {
    // importlib's own classes, without importing importlib (it is frozen and
    // always loaded).
    PyObject* external = PyDict_GetItemString(PyImport_GetModuleDict(), "_frozen_importlib_external");
    if (external == nullptr) {
      PyErr_SetString(PyExc_ImportError, "lazyexec: _frozen_importlib_external is not loaded");
      return -1;
    }
    Ref path_finder = py::check(PyObject_GetAttrString(external, "PathFinder"));
    Ref find_spec = py::check(PyObject_GetAttrString(path_finder.get(), "find_spec"));
    Ref source_loader = py::check(PyObject_GetAttrString(external, "SourceFileLoader"));
    auto* policy = new Policy();
    try {
      policy->all_mode = all_mode != 0;
      fill(policy->never, never);
      fill(policy->include, include);
      fill(policy->exclude, exclude);
      Ref it = Ref::steal(PyObject_GetIter(eager));
      if (!it) throw py::PyError{};
      while (Ref item = Ref::steal(PyIter_Next(it.get()))) policy->eager.insert(py::utf8(item.get()));
      if (PyErr_Occurred()) throw py::PyError{};
      if (opted != nullptr && opted != Py_None) fill_opted(*policy, opted);
    } catch (...) {
      delete policy;
      throw;
    }
    delete self->policy;
    self->policy = policy;
    Py_XSETREF(self->path_find_spec, find_spec.release());
    Py_XSETREF(self->source_loader, source_loader.release());
    Py_XSETREF(self->make_loader, Py_NewRef(make_loader));
    Py_XSETREF(self->config, Py_NewRef(config));
    Py_XSETREF(self->marks_path, marks == Py_None ? nullptr : Py_NewRef(marks));
    Py_CLEAR(self->marks);
    self->marks_dirty = false;
    return 0;
  } catch (const py::PyError&) {
    return -1;
  }
}

void finder_dealloc(PyObject* self_obj) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  PyObject_GC_UnTrack(self_obj);
  delete self->policy;
  Py_CLEAR(self->path_find_spec);
  Py_CLEAR(self->source_loader);
  Py_CLEAR(self->make_loader);
  Py_CLEAR(self->config);
  Py_CLEAR(self->watchers);
  Py_CLEAR(self->missed);
  Py_CLEAR(self->missed_path);
  Py_CLEAR(self->marks_path);
  Py_CLEAR(self->marks);
  Py_TYPE(self_obj)->tp_free(self_obj);
}

int finder_traverse(PyObject* self_obj, visitproc visit, void* arg) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  Py_VISIT(self->path_find_spec);
  Py_VISIT(self->source_loader);
  Py_VISIT(self->make_loader);
  Py_VISIT(self->config);
  Py_VISIT(self->watchers);
  Py_VISIT(self->missed);
  Py_VISIT(self->missed_path);
  Py_VISIT(self->marks);
  return 0;
}

int finder_clear(PyObject* self_obj) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  Py_CLEAR(self->make_loader);
  Py_CLEAR(self->config);
  Py_CLEAR(self->watchers);
  Py_CLEAR(self->missed);
  Py_CLEAR(self->missed_path);
  Py_CLEAR(self->marks);
  return 0;
}

// ------------------------------------------------ marker verdicts (mode "marked")

constexpr long kMarksVersion = 1;

long long mtime_ns(const struct stat& st) { return (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec; }

void warn_quietly(const char* format, const char* path) {
  // A warning turned into an error must not fail the import that met it.
  if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1, format, path) < 0) PyErr_Clear();
}

void note_learned(FinderObject* self);

void write_marks(FinderObject* self) {
  std::string path = py::utf8(self->marks_path);
  Ref payload = py::check(Py_BuildValue("{sisO}", "version", (int)kMarksVersion, "marks", self->marks));
  Ref bytes = py::check(PyMarshal_WriteObjectToString(payload.get(), Py_MARSHAL_VERSION));
  std::string profiles = dirname(path);
  ::mkdir(dirname(profiles).c_str(), 0777);  // the cache directory, then its profiles/
  ::mkdir(profiles.c_str(), 0777);
  std::string tmp = path + ".tmp." + std::to_string((long)::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return;  // an unwritable cache costs this speed-up only
  size_t n = (size_t)PyBytes_GET_SIZE(bytes.get());
  bool ok = std::fwrite(PyBytes_AS_STRING(bytes.get()), 1, n, f) == n;
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) std::remove(tmp.c_str());
}

PyObject* marks_at_exit(PyObject* self_obj, PyObject*) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  if (!self->marks_dirty || self->marks == nullptr || self->marks_path == nullptr) Py_RETURN_NONE;
  self->marks_dirty = false;
  try {
    write_marks(self);
  } catch (const py::PyError&) {
    PyErr_Clear();
  }
  Py_RETURN_NONE;
}

// The verdicts as written by an earlier run; an empty dict when there are
// none, and after a warning when the file is damaged (rewritten at exit).
// nullptr (no exception) only when not even a dict can be had.
PyObject* marks_of(FinderObject* self) {
  if (self->marks != nullptr) return self->marks;
  std::string path = py::utf8(self->marks_path);
  auto data = read_file(path.c_str());
  if (data) {
    Ref loaded = Ref::steal(PyMarshal_ReadObjectFromString(data->data(), (Py_ssize_t)data->size()));
    PyObject* version = loaded && PyDict_Check(loaded.get()) ? PyDict_GetItemString(loaded.get(), "version") : nullptr;
    PyObject* marks = loaded && PyDict_Check(loaded.get()) ? PyDict_GetItemString(loaded.get(), "marks") : nullptr;
    if (version != nullptr && PyLong_CheckExact(version) && PyLong_AsLong(version) == kMarksVersion && marks != nullptr &&
        PyDict_CheckExact(marks)) {
      self->marks = Py_NewRef(marks);
      return self->marks;
    }
    PyErr_Clear();
    warn_quietly("lazyexec: ignoring damaged marker cache %s; it is rewritten at exit", path.c_str());
  }
  self->marks = PyDict_New();
  if (self->marks == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  if (data) note_learned(self);  // damaged: rewritten even if nothing new is learned
  return self->marks;
}

// The first verdict learned this run registers the writer (atexit is
// imported then, not at every start).
void note_learned(FinderObject* self) {
  if (self->marks_dirty) return;
  self->marks_dirty = true;
  bool was_busy = set_busy(true);
  Ref atexit = Ref::steal(PyImport_ImportModule("atexit"));
  Ref fn = Ref::steal(PyObject_GetAttrString((PyObject*)self, "write_marks"));
  Ref r = atexit && fn ? Ref::steal(PyObject_CallMethod(atexit.get(), "register", "O", fn.get())) : Ref();
  set_busy(was_busy);
  if (!r) PyErr_Clear();  // not written: learned again next time
}

// Whether the source at `path` opts in (`__lazy_module__ = True`): the
// remembered verdict when the file's stamp is the same, else a read and a
// scan, remembered.
bool source_opts_in(FinderObject* self, const char* path) {
  PyObject* marks = nullptr;
  Ref key;
  struct stat st;
  if (self->marks_path != nullptr && ::stat(path, &st) == 0 && (marks = marks_of(self)) != nullptr) {
    key = Ref::steal(PyUnicode_DecodeFSDefault(path));
    PyObject* entry = key ? PyDict_GetItemWithError(marks, key.get()) : nullptr;
    if (entry != nullptr && PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) == 3 &&
        PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 0)) == mtime_ns(st) &&
        PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 1)) == (long long)st.st_size && !PyErr_Occurred())
      return PyTuple_GET_ITEM(entry, 2) == Py_True;
    PyErr_Clear();
  }
  struct stat read_st;
  auto source = read_file_scratch(path, &read_st);
  bool verdict = source && opts_in(*source);
  if (source && key && read_st.st_size >= 0) {
    Ref entry = Ref::steal(Py_BuildValue("(LLO)", mtime_ns(read_st), (long long)read_st.st_size,
                                         verdict ? Py_True : Py_False));
    if (entry && PyDict_SetItem(marks, key.get(), entry.get()) == 0)
      note_learned(self);
    else
      PyErr_Clear();
  }
  return verdict;
}

// Policy, then (mode "marked") the marker, read from the source.
// For a module policy selects: mode "all", an opted-in distribution, or the
// marker in its source.
bool opted(FinderObject* self, std::string_view name, const char* path) {
  if (self->policy->all_mode || self->policy->opted_in(name, path)) return true;
  return source_opts_in(self, path);
}

bool claims(FinderObject* self, std::string_view name, const char* path) {
  return self->policy != nullptr && self->policy->selects(name) && opted(self, name, path);
}

bool ends_with_py(PyObject* origin, std::string* out) {
  if (origin == nullptr || !PyUnicode_Check(origin)) return false;
  *out = py::utf8(origin);
  return out->size() > 3 && out->compare(out->size() - 3, 3, ".py") == 0;
}

// A watched module's spec goes through its callback (which may wrap the
// loader); every other import costs one dict lookup.
PyObject* watched(FinderObject* self, PyObject* fullname, Ref spec) {
  if (self->watchers == nullptr || spec.get() == Py_None || PyDict_GET_SIZE(self->watchers) == 0) return spec.release();
  PyObject* callback = PyDict_GetItemWithError(self->watchers, fullname);
  if (callback == nullptr) return PyErr_Occurred() ? nullptr : spec.release();
  Py_INCREF(callback);
  PyObject* out = PyObject_CallOneArg(callback, spec.get());
  Py_DECREF(callback);
  return out;
}

// The top-level misses searched in `sys_path` as it is now (emptied when it
// is another list or has another length).
PyObject* misses_in(FinderObject* self, PyObject* sys_path) {
  if (self->missed == nullptr) self->missed = py::check(PySet_New(nullptr)).release();
  if (sys_path != self->missed_path || PyList_GET_SIZE(sys_path) != self->missed_path_len) {
    if (PySet_Clear(self->missed) < 0) throw py::PyError{};
    Py_XSETREF(self->missed_path, Py_NewRef(sys_path));
    self->missed_path_len = PyList_GET_SIZE(sys_path);
  }
  return self->missed;
}

// Whether sys.platform or sys.version_info is not what this interpreter
// has: a test that patches one (`mock.patch("sys.platform", "win32")`, then
// importlib.reload) imports for another platform or version, and artifacts
// decide `if sys.platform == ...` / `if sys.version_info >= ...` at compile
// time for the real ones (Analyzer::decide). A module found meanwhile loads
// as PathFinder's, eagerly, and is not analysed under the patched value.
// Two dictionary lookups and pointer compares; equal replacements (a copy of
// the same string or tuple) are remembered as the real ones.
bool sys_patched() {
  static PyObject* platform_seen = nullptr;      // strong: an object known equal to the real one
  static PyObject* version_seen = nullptr;
  PyObject* platform = PySys_GetObject("platform");  // borrowed
  PyObject* version = PySys_GetObject("version_info");
  if (platform == platform_seen && version == version_seen) return false;
  if (platform != platform_seen) {
    if (platform == nullptr || !PyUnicode_Check(platform) ||
        PyUnicode_CompareWithASCIIString(platform, Py_GetPlatform()) != 0)
      return true;
    Py_XSETREF(platform_seen, Py_NewRef(platform));
  }
  if (version != version_seen) {
    static const char* levels[] = {"alpha", "beta", "candidate", "final"};
    int level = (PY_RELEASE_LEVEL >= 0xA && PY_RELEASE_LEVEL <= 0xC) ? PY_RELEASE_LEVEL - 0xA : 3;
    Ref real = Ref::steal(Py_BuildValue("(iiisi)", PY_MAJOR_VERSION, PY_MINOR_VERSION, PY_MICRO_VERSION,
                                        levels[level], PY_RELEASE_SERIAL));
    if (!real) throw py::PyError{};
    int same = version == nullptr ? 0 : PyObject_RichCompareBool(version, real.get(), Py_EQ);
    if (same < 0) throw py::PyError{};
    if (!same) return true;
    Py_XSETREF(version_seen, Py_NewRef(version));
  }
  return false;
}

bool watching(FinderObject* self, PyObject* fullname) {
  if (self->watchers == nullptr || PyDict_GET_SIZE(self->watchers) == 0) return false;
  if (PyDict_GetItemWithError(self->watchers, fullname) != nullptr) return true;
  if (PyErr_Occurred()) throw py::PyError{};
  return false;
}

PyObject* finder_find_spec(PyObject* self_obj, PyObject* args, PyObject* kwargs) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  static const char* kwlist[] = {"fullname", "path", "target", nullptr};
  PyObject *fullname, *path = Py_None, *target = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "U|OO", const_cast<char**>(kwlist), &fullname, &path, &target))
    return nullptr;
  if (busy_flag || self->path_find_spec == nullptr) Py_RETURN_NONE;
  try {
    // A module policy leaves alone and nobody watches: PathFinder, next on
    // sys.meta_path, finds it anyway. Asking it here too would search twice
    // whenever the module does not exist (sitecustomize at every start).
    std::string name = py::utf8(fullname);
    bool selected = self->policy != nullptr && self->policy->selects(name) && !sys_patched();
    if (!selected && !watching(self, fullname)) Py_RETURN_NONE;
    PyObject* sys_path = path == Py_None ? PySys_GetObject("path") : nullptr;  // borrowed
    bool top_level = sys_path != nullptr && PyList_Check(sys_path);
    if (top_level) {
      int missed = PySet_Contains(misses_in(self, sys_path), fullname);
      if (missed < 0) throw py::PyError{};
      if (missed) Py_RETURN_NONE;  // PathFinder looks (a module made since loads eagerly)
    }
    Ref spec = py::check(PyObject_CallFunctionObjArgs(self->path_find_spec, fullname, path, target, nullptr));
    if (spec.get() == Py_None) {
      if (top_level && PySet_Add(misses_in(self, sys_path), fullname) < 0) throw py::PyError{};
      return spec.release();
    }
    Ref loader = py::check(PyObject_GetAttrString(spec.get(), "loader"));
    if ((PyObject*)Py_TYPE(loader.get()) != self->source_loader) return watched(self, fullname, std::move(spec));
    Ref origin = py::check(PyObject_GetAttrString(spec.get(), "origin"));
    std::string origin_path;
    if (!selected || !ends_with_py(origin.get(), &origin_path) || !opted(self, name, origin_path.c_str()))
      return watched(self, fullname, std::move(spec));
    Ref lazy = py::check(PyObject_CallFunctionObjArgs(self->make_loader, fullname, origin.get(), nullptr));
    if (lazy.get() == Py_None) return watched(self, fullname, std::move(spec));  // no lazy loader to be had
    if (PyObject_SetAttrString(spec.get(), "loader", lazy.get()) < 0) throw py::PyError{};
    return watched(self, fullname, std::move(spec));
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* finder_claims(PyObject* self_obj, PyObject* args) {
  const char *name, *path;
  if (!PyArg_ParseTuple(args, "ss", &name, &path)) return nullptr;
  return PyBool_FromLong(claims(reinterpret_cast<FinderObject*>(self_obj), name, path));
}

PyObject* finder_watch(PyObject* self_obj, PyObject* args) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  PyObject *name, *callback = nullptr;
  if (!PyArg_ParseTuple(args, "U|O", &name, &callback)) return nullptr;
  if (self->watchers == nullptr && !(self->watchers = PyDict_New())) return nullptr;
  if (callback == nullptr || callback == Py_None) {
    if (PyDict_DelItem(self->watchers, name) < 0) PyErr_Clear();
  } else if (PyDict_SetItem(self->watchers, name, callback) < 0) {
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* finder_misses(PyObject* self_obj, PyObject*) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  return self->missed == nullptr ? PyList_New(0) : PySequence_List(self->missed);
}

PyObject* finder_invalidate_caches(PyObject* self_obj, PyObject*) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  if (self->missed != nullptr && PySet_Clear(self->missed) < 0) return nullptr;
  Py_RETURN_NONE;
}

PyMethodDef finder_methods[] = {
    {"find_spec", (PyCFunction)(void (*)(void))finder_find_spec, METH_VARARGS | METH_KEYWORDS,
     "find_spec(fullname, path=None, target=None): PathFinder's spec, with lazyexec's loader when policy claims it."},
    {"claims", finder_claims, METH_VARARGS, "claims(name, path) -> whether the module would load lazily."},
    {"watch", finder_watch, METH_VARARGS,
     "watch(fullname, callback=None): callback(spec) -> spec runs when the module is found (None: stop)."},
    {"misses", finder_misses, METH_NOARGS,
     "The top-level names PathFinder did not find when this finder asked (the usage profile keeps them, so that "
     "the next start does not search for them twice)."},
    {"write_marks", marks_at_exit, METH_NOARGS,
     "Writes the marker verdicts learned since they were read (registered with atexit when the first is learned)."},
    {"invalidate_caches", finder_invalidate_caches, METH_NOARGS,
     "Forgets the top-level names PathFinder did not find (PathFinder keeps its own caches)."},
    {nullptr, nullptr, 0, nullptr},
};

PyMemberDef finder_members[] = {
    {"config", T_OBJECT, offsetof(FinderObject, config), 0,
     "the configuration in force (set by the Python layer when activation ran in C++)"},
    {nullptr, 0, 0, 0, nullptr},
};

// The watchers dict itself (made on first ask), so that an image's finder,
// which serves modules ahead of this one, runs the same patch points.
PyObject* finder_get_watchers(PyObject* self_obj, void*) {
  auto* self = reinterpret_cast<FinderObject*>(self_obj);
  if (self->watchers == nullptr && !(self->watchers = PyDict_New())) return nullptr;
  return Py_NewRef(self->watchers);
}

PyGetSetDef finder_getset[] = {
    {"watchers", finder_get_watchers, nullptr,
     "{fullname: callback(spec) -> spec}: the patch points watch() set (shared with an image's finder)", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject FinderType = {PyVarObject_HEAD_INIT(nullptr, 0)};

}  // namespace

PyObject* finder_type() { return (PyObject*)&FinderType; }

bool set_busy(bool busy) { return std::exchange(busy_flag, busy); }

bool is_finder(PyObject* obj) {
  return Py_TYPE(obj) == &FinderType || std::strcmp(Py_TYPE(obj)->tp_name, kFinderName) == 0;
}

void finder_set_make_loader(PyObject* finder, PyObject* make_loader) {
  if (!is_finder(finder)) return;
  auto* self = reinterpret_cast<FinderObject*>(finder);
  Py_XSETREF(self->make_loader, Py_NewRef(make_loader));
}

int add_finder_type(PyObject* module) {
  FinderType.tp_name = kFinderName;
  FinderType.tp_basicsize = sizeof(FinderObject);
  FinderType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
  FinderType.tp_doc = "lazyexec's sys.meta_path finder (placed before PathFinder).";
  FinderType.tp_new = PyType_GenericNew;
  FinderType.tp_init = finder_init;
  FinderType.tp_dealloc = finder_dealloc;
  FinderType.tp_traverse = finder_traverse;
  FinderType.tp_clear = finder_clear;
  FinderType.tp_methods = finder_methods;
  FinderType.tp_members = finder_members;
  FinderType.tp_getset = finder_getset;
  if (PyType_Ready(&FinderType) < 0) return -1;
  Py_INCREF(&FinderType);
  if (PyModule_AddObject(module, "Finder", (PyObject*)&FinderType) < 0) {
    Py_DECREF(&FinderType);
    return -1;
  }
  return 0;
}

}  // namespace lazyexec::importer
