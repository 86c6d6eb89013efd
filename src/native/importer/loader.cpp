#define PY_SSIZE_T_CLEAN
#include "importer/loader.h"

#include <cstdlib>
#include <ctime>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "image/image_object.h"
#include "importer/cold_start.h"
#include "importer/finder.h"
#include "py/handle.h"
#include "runtime/module_hooks.h"
#include "runtime/module_state.h"

namespace lazyexec::importer {
namespace {

using py::Ref;

// Kept for the process, as the extension module is (plain pointers: nothing
// may be destroyed after the interpreter is gone).
WarmSettings settings;
PyObject* warm_key = nullptr;        // settings.key and settings.cache_dir as objects, made once
PyObject* warm_cache_dir = nullptr;
bool ready = false;
PyObject* extension = nullptr;      // lazyexec._lazyexec, whose functions the plan runner calls
PyObject* loader_class = nullptr;   // the C++ LazySourceLoader, made at the first claim
PyObject* source_exec = nullptr;    // SourceFileLoader.exec_module (the eager path)
PyObject* loaded = nullptr;         // runtime.loaded
PyObject* nothing_to_defer = nullptr;  // profile.nothing_to_defer
PyObject* python_make_loader = nullptr;  // lazyexec.importer.boot_make_loader, for the cold path

PyObject* modules_dict() { return PyImport_GetModuleDict(); }

// A function of the extension module, called with positional arguments.
// A function of the extension module, called with positional arguments (each
// looked up once: the plan runner calls several per module).
template <typename... Args>
Ref call(std::string_view name, Args... args) {
  static std::unordered_map<std::string_view, PyObject*> functions;  // kept for the process
  PyObject*& fn = functions[name];
  if (fn == nullptr) fn = py::check(PyObject_GetAttrString(extension, std::string(name).c_str())).release();
  PyObject* argv[] = {args...};
  return py::check(PyObject_Vectorcall(fn, argv, sizeof...(Args), nullptr));
}

// The Python layer's loader for this module (it adopts the boot state): the
// cold path (no artifact yet: remembered for the background build), a
// damaged artifact (warned about), a module object of another class.
// The Python layer's loader factory (lazyexec.importer.boot_make_loader).
PyObject* python_factory() {
  if (python_make_loader == nullptr) {
    Ref importer = py::check(PyImport_ImportModule("lazyexec.importer"));
    python_make_loader = py::check(PyObject_GetAttrString(importer.get(), "boot_make_loader")).release();
  }
  return python_make_loader;
}

Ref python_loader(PyObject* self) {
  Ref name = py::check(PyObject_GetAttrString(self, "name"));
  Ref path = py::check(PyObject_GetAttrString(self, "path"));
  return py::check(PyObject_CallFunctionObjArgs(python_factory(), name.get(), path.get(), nullptr));
}

PyObject* exec_through_python(PyObject* self, PyObject* module) {
  try {
    Ref loader = python_loader(self);
    return PyObject_CallMethod(loader.get(), "exec_module", "O", module);
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// The current artifact's plan (units, steps) for the source at `path`, or
// null (no exception) when the Python layer must decide: no artifact yet
// (`*missing` set), a damaged one (it warns), the source gone.
Ref read_payload(PyObject* path, PyObject* key, PyObject* cache_dir, bool* missing = nullptr) {
  static PyObject* magic = nullptr;  // importlib's MAGIC_NUMBER, kept for the process
  if (magic == nullptr) {
    PyObject* external = PyDict_GetItemString(modules_dict(), "_frozen_importlib_external");
    if (external == nullptr) return Ref();
    magic = py::check(PyObject_GetAttrString(external, "MAGIC_NUMBER")).release();
  }
  Ref format = py::check(PyLong_FromLong(kArtifactFormat));
  PyObject* off = PySys_GetObject("dont_write_bytecode");
  Ref found = call("load_plan", path, key, magic, format.get(), cache_dir,
                   off != nullptr && PyObject_IsTrue(off) == 1 ? Py_True : Py_False);
  if (found.get() == Py_None) return Ref();
  PyObject* payload = PyTuple_GET_ITEM(found.get(), 2);
  PyObject* problems = PyTuple_GET_ITEM(found.get(), 3);
  if (missing != nullptr) *missing = payload == Py_None && PyList_GET_SIZE(problems) == 0;
  if (payload == Py_None || PyList_GET_SIZE(problems) > 0) return Ref();
  return Ref::borrow(payload);
}

// Runs a plan read by read_payload in `module`; 1 when done, -1 with an
// exception set.
int run_payload(PyObject* self, PyObject* module, PyObject* payload, long threshold, bool settle_now) {
  try {
    PyObject* units = PyTuple_GET_ITEM(payload, 0);
    PyObject* steps = PyTuple_GET_ITEM(payload, 1);
    PyObject* g = PyModule_GetDict(module);
    if (!PyList_Check(units) || PyList_GET_SIZE(units) == 0) {
      // Nothing to defer: the normal .pyc path, remembered by the profile.
      if (PyObject* name = PyDict_GetItemString(g, "__name__"); name && PyList_Append(nothing_to_defer, name) < 0)
        throw py::PyError{};
      if (source_exec == nullptr) {
        PyObject* external = PyDict_GetItemString(modules_dict(), "_frozen_importlib_external");
        Ref source_loader = py::check(PyObject_GetAttrString(external, "SourceFileLoader"));
        source_exec = py::check(PyObject_GetAttrString(source_loader.get(), "exec_module")).release();
      }
      Ref r = py::check(PyObject_CallFunctionObjArgs(source_exec, self, module, nullptr));
      return 1;
    }
    Ref threshold_obj = py::check(PyLong_FromLong(threshold));
    Ref plan_args =
        py::check(PyTuple_Pack(5, module, units, steps, threshold_obj.get(), settle_now ? Py_True : Py_False));
    Ref r = py::check(run_plan(nullptr, plan_args.get()));
    return 1;
  } catch (const py::PyError&) {
    return -1;
  }
}

// The warm path of exec_module: the module's current artifact read and its
// plan run. 1 when done, 0 when the Python layer must decide, -1 with an
// exception set.
int exec_warm(PyObject* self, PyObject* module, PyObject* key, PyObject* cache_dir, long threshold, bool settle_now) {
  if (!PyModule_CheckExact(module)) return 0;
  try {
    Ref path = py::check(PyObject_GetAttrString(self, "path"));
    Ref payload = read_payload(path.get(), key, cache_dir);
    if (!payload) return 0;
    return run_payload(self, module, payload.get(), threshold, settle_now);
  } catch (const py::PyError&) {
    return -1;
  }
}

// Plans read when the finder claimed a module, by module name: (path, plan).
// exec_module takes its entry (a spec found and never loaded leaves one, for
// that name only, until it is found again).
PyObject* found_plans = nullptr;

// LazySourceLoader.exec_module(self, module) of the loader activated in C++.
PyObject* warm_exec_module(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "exec_module(self, module)");
    return nullptr;
  }
  PyObject *self = args[0], *module = args[1];
  try {
    Ref name = py::check(PyObject_GetAttrString(self, "name"));
    Ref path = py::check(PyObject_GetAttrString(self, "path"));
    Ref entry = Ref::borrow(PyDict_GetItemWithError(found_plans, name.get()));
    if (!entry && PyErr_Occurred()) throw py::PyError{};
    if (entry && PyDict_DelItem(found_plans, name.get()) < 0) throw py::PyError{};
    Ref payload;
    if (entry && PyObject_RichCompareBool(PyTuple_GET_ITEM(entry.get(), 0), path.get(), Py_EQ) == 1)
      payload = Ref::borrow(PyTuple_GET_ITEM(entry.get(), 1));
    else
      payload = read_payload(path.get(), warm_key, warm_cache_dir);
    if (!payload || !PyModule_CheckExact(module)) return exec_through_python(self, module);
    if (run_payload(self, module, payload.get(), settings.settle_threshold, settings.settle_now) < 0) return nullptr;
  } catch (const py::PyError&) {
    return nullptr;
  }
  Py_RETURN_NONE;
}
PyMethodDef warm_exec_module_def = {"exec_module", (PyCFunction)(void (*)(void))warm_exec_module, METH_FASTCALL,
                                    "Load the module from its artifact: its plan's eager part runs now."};

// Equal to the SourceFileLoader an eager import would have used for the same
// module and file (module specs compare as eagerly).
PyObject* loader_eq(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "__eq__(self, other)");
    return nullptr;
  }
  PyObject *self = args[0], *other = args[1];
  PyObject* external = PyDict_GetItemString(modules_dict(), "_frozen_importlib_external");
  try {
    Ref source_loader = py::check(PyObject_GetAttrString(external, "SourceFileLoader"));
    int is_loader = PyObject_IsInstance(other, source_loader.get());
    if (is_loader < 0) throw py::PyError{};
    bool comparable = false;
    if (is_loader) {
      if ((PyObject*)Py_TYPE(other) == source_loader.get()) {
        comparable = true;
      } else {
        Ref name = py::check(PyObject_GetAttrString((PyObject*)Py_TYPE(other), "__name__"));
        comparable = PyUnicode_CompareWithASCIIString(name.get(), "LazySourceLoader") == 0;
      }
    }
    if (!comparable) Py_RETURN_NOTIMPLEMENTED;
    Ref mine = py::check(PyObject_GetAttrString(self, "__dict__"));
    Ref theirs = py::check(PyObject_GetAttrString(other, "__dict__"));
    return PyObject_RichCompare(mine.get(), theirs.get(), Py_EQ);
  } catch (const py::PyError&) {
    return nullptr;
  }
}
PyMethodDef loader_eq_def = {"__eq__", (PyCFunction)(void (*)(void))loader_eq, METH_FASTCALL, nullptr};

PyObject* method(PyMethodDef* def) {
  Ref fn = py::check(PyCFunction_New(def, nullptr));
  return py::check(PyInstanceMethod_New(fn.get())).release();
}

void make_loader_class() {
  PyObject* external = PyDict_GetItemString(modules_dict(), "_frozen_importlib_external");
  if (external == nullptr) {
    PyErr_SetString(PyExc_ImportError, "lazyexec: importlib is not initialised");
    throw py::PyError{};
  }
  Ref source_loader = py::check(PyObject_GetAttrString(external, "SourceFileLoader"));
  Ref hash = py::check(PyObject_GetAttrString(source_loader.get(), "__hash__"));
  source_exec = py::check(PyObject_GetAttrString(source_loader.get(), "exec_module")).release();
  Ref exec_module = Ref::steal(method(&warm_exec_module_def));
  Ref eq = Ref::steal(method(&loader_eq_def));
  Ref ns = py::check(Py_BuildValue("{sOsOsOssssss}", "exec_module", exec_module.get(), "__eq__", eq.get(), "__hash__",
                                   hash.get(), "__module__", "lazyexec.importer.importlib_bootstrap", "__qualname__",
                                   "LazySourceLoader", "__doc__",
                                   "lazyexec's loader (activated in C++): a SourceFileLoader whose exec_module runs "
                                   "the module's plan."));
  loader_class = py::check(PyObject_CallFunction((PyObject*)&PyType_Type, "s(O)O", "LazySourceLoader",
                                                 source_loader.get(), ns.get()))
                     .release();
}

// bind_loaded: deferred imports of modules already in sys.modules when their
// importer finishes loading are bound now (see importer/importlib_bootstrap.py).
void bind_loaded(PyObject* g, PyObject* specs) {
  PyObject* modules = modules_dict();
  Ref fast = py::check(PySequence_Fast(specs, "bind_loaded specs must be a sequence"));
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast.get()); ++i) {
    PyObject* spec = PySequence_Fast_GET_ITEM(fast.get(), i);
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 5) continue;
    PyObject *uid = PyTuple_GET_ITEM(spec, 0), *name = PyTuple_GET_ITEM(spec, 1), *mode = PyTuple_GET_ITEM(spec, 2),
             *names = PyTuple_GET_ITEM(spec, 3), *attr = PyTuple_GET_ITEM(spec, 4);
    Ref names_fast = py::check(PySequence_Fast(names, "modules must be a sequence"));
    Py_ssize_t n = PySequence_Fast_GET_SIZE(names_fast.get());
    if (n == 0) continue;
    bool all_there = true;
    for (Py_ssize_t k = 0; k < n && all_there; ++k) {
      PyObject* m = PyDict_GetItemWithError(modules, PySequence_Fast_GET_ITEM(names_fast.get(), k));
      if (m == nullptr) {
        if (PyErr_Occurred()) throw py::PyError{};
        all_there = false;
      } else if (m == Py_None) {
        all_there = false;  // blocked: stays deferred
      }
    }
    if (!all_there) continue;
    PyObject* first = PyDict_GetItemWithError(modules, PySequence_Fast_GET_ITEM(names_fast.get(), 0));
    Ref value;
    if (PyUnicode_CompareWithASCIIString(mode, "root") == 0) {
      std::string root = py::utf8(PySequence_Fast_GET_ITEM(names_fast.get(), 0));
      root = root.substr(0, root.find('.'));
      PyObject* v = PyDict_GetItemWithError(modules, py::str(root).get());
      if (v == nullptr || v == Py_None) {
        if (PyErr_Occurred()) throw py::PyError{};
        continue;
      }
      value = Ref::borrow(v);
    } else if (PyUnicode_CompareWithASCIIString(mode, "module") == 0) {
      value = Ref::borrow(first);
    } else if (PyModule_Check(first)) {
      // Never runs a pending unit of a lazy source module.
      PyObject* v = PyDict_GetItemWithError(PyModule_GetDict(first), attr);
      if (v == nullptr) {
        if (PyErr_Occurred()) throw py::PyError{};
        continue;
      }
      value = Ref::borrow(v);
    } else {
      // A stand-in object (a mock): eagerly its attribute is read at import.
      value = Ref::steal(PyObject_GetAttr(first, attr));
      if (!value) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) throw py::PyError{};
        PyErr_Clear();  // stays deferred: the error comes at first use
        continue;
      }
    }
    runtime::ModuleState* st = runtime::state_of(g);
    if (st == nullptr) {
      PyErr_SetString(PyExc_ValueError, "lazyexec: not the namespace of a lazily loaded module");
      throw py::PyError{};
    }
    int id = (int)PyLong_AsLong(uid);
    if (id == -1 && PyErr_Occurred()) throw py::PyError{};
    if (runtime::resolve_binding(*st, id, name, value.get()) < 0) throw py::PyError{};
  }
}

// Packages whose pending `from .x import x` bind their own submodule's name:
// the runtime swaps their class (runtime::watch_binders).
void watch_binders(PyObject* module, PyObject* g, PyObject* specs) {
  PyObject* path = PyDict_GetItemWithError(g, py::str("__path__").get());
  if (path == nullptr) {
    if (PyErr_Occurred()) throw py::PyError{};
    return;
  }
  PyObject* name = PyDict_GetItemString(g, "__name__");
  if (name == nullptr || !PyUnicode_Check(name)) return;
  std::string prefix = py::utf8(name) + ".";
  Ref names = py::check(PySet_New(nullptr));
  Ref fast = py::check(PySequence_Fast(specs, "specs must be a sequence"));
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast.get()); ++i) {
    PyObject* spec = PySequence_Fast_GET_ITEM(fast.get(), i);
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 5) continue;
    PyObject* mode = PyTuple_GET_ITEM(spec, 2);
    if (!PyUnicode_Check(mode) || PyUnicode_CompareWithASCIIString(mode, "from") != 0) continue;
    Ref mods = py::check(PySequence_Tuple(PyTuple_GET_ITEM(spec, 3)));
    if (PyTuple_GET_SIZE(mods.get()) == 0) continue;
    if (py::utf8(PyTuple_GET_ITEM(mods.get(), 0)) == prefix + py::utf8(PyTuple_GET_ITEM(spec, 1)) &&
        PySet_Add(names.get(), PyTuple_GET_ITEM(spec, 1)) < 0)
      throw py::PyError{};
  }
  if (PySet_GET_SIZE(names.get()) == 0) return;
  if (runtime::watch_binders(module, names.get()) < 0) throw py::PyError{};
}

bool step_is(PyObject* kind, const char* name) {
  return PyUnicode_Check(kind) && PyUnicode_CompareWithASCIIString(kind, name) == 0;
}

// ------------------------------------------------------------ usage profile

double now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

// At exit: whether this run learned anything for the usage profile
// (profile.save()'s comparison). Only then does the Python layer load and
// write it.
PyObject* profile_at_exit(PyObject*, PyObject*) {
  try {
    if (settings.profile_path == nullptr || settings.profile_path == Py_None) Py_RETURN_NONE;
    // Adopted by the Python layer (it saves at exit itself).
    if (PyObject* profile = PyDict_GetItemString(modules_dict(), "lazyexec.importer.profile")) {
      Ref path = Ref::steal(PyObject_GetAttrString(profile, "_path"));
      if (!path) PyErr_Clear();
      if (path && path.get() != Py_None) Py_RETURN_NONE;
    }
    double t = now();
    Ref keys = py::check(PySet_New(nullptr));  // modules with an unexpired entry after this run
    PyObject *name, *expiry;
    Py_ssize_t pos = 0;
    Ref before = py::check(PySet_New(nullptr));
    while (PyDict_Next(settings.known, &pos, &name, &expiry)) {
      if (PySet_Add(before.get(), name) < 0) throw py::PyError{};
      if (PyFloat_Check(expiry) && PyFloat_AS_DOUBLE(expiry) > t && PySet_Add(keys.get(), name) < 0)
        throw py::PyError{};
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(nothing_to_defer); ++i)
      if (PySet_Add(keys.get(), PyList_GET_ITEM(nothing_to_defer, i)) < 0) throw py::PyError{};
    // Top-level modules that were not there: next time the finder leaves
    // them to PathFinder at once instead of searching sys.path before it.
    if (PyObject* meta_path = PySys_GetObject("meta_path"); meta_path != nullptr && PyList_Check(meta_path))
      for (Py_ssize_t i = 0; i < PyList_GET_SIZE(meta_path); ++i)
        if (is_finder(PyList_GET_ITEM(meta_path, i))) {
          Ref misses = py::check(PyObject_CallMethod(PyList_GET_ITEM(meta_path, i), "misses", nullptr));
          for (Py_ssize_t j = 0; j < PyList_GET_SIZE(misses.get()); ++j)
            if (PySet_Add(keys.get(), PyList_GET_ITEM(misses.get(), j)) < 0) throw py::PyError{};
        }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(loaded); ++i) {
      PyObject* mod_name = PyList_GET_ITEM(loaded, i);
      PyObject* m = PyDict_GetItemWithError(modules_dict(), mod_name);
      if (m == nullptr || !PyModule_Check(m)) {
        if (PyErr_Occurred()) throw py::PyError{};
        continue;
      }
      runtime::ModuleState* st = runtime::state_of(PyModule_GetDict(m));
      if (st == nullptr) continue;
      if (runtime::used_nearly_whole(*st)) {
        if (PySet_Add(keys.get(), mod_name) < 0) throw py::PyError{};
      } else if (PySet_Discard(keys.get(), mod_name) < 0) {
        throw py::PyError{};
      }
    }
    int same = PyObject_RichCompareBool(keys.get(), before.get(), Py_EQ);
    if (same < 0) throw py::PyError{};
    if (same) Py_RETURN_NONE;  // nothing learned: no write
    Ref profile = py::check(PyImport_ImportModule("lazyexec.importer.profile"));
    return PyObject_CallMethod(profile.get(), "save_adopted", "OO", settings.profile_path, settings.known);
  } catch (const py::PyError&) {
    return nullptr;
  }
}
PyMethodDef profile_at_exit_def = {"profile_at_exit", profile_at_exit, METH_NOARGS,
                                   "lazyexec: the usage profile, written at exit when this run learned something."};

// exec_warm(loader, module, key, cache_dir, settle_threshold, settle_now) ->
// whether the module was loaded from its current artifact (the Python
// layer's loader tries this first: one warm path for every activation).
PyObject* py_exec_warm(PyObject*, PyObject* args) {
  PyObject *self, *module, *key, *cache_dir;
  long threshold;
  int settle_now;
  if (!PyArg_ParseTuple(args, "OOSUlp", &self, &module, &key, &cache_dir, &threshold, &settle_now)) return nullptr;
  int done = exec_warm(self, module, key, cache_dir, threshold, settle_now != 0);
  if (done < 0) return nullptr;
  return PyBool_FromLong(done);
}

PyObject* py_loaded_list(PyObject*, PyObject*) { return Py_NewRef(loaded); }
PyObject* py_nothing_to_defer_list(PyObject*, PyObject*) { return Py_NewRef(nothing_to_defer); }

PyMethodDef functions[] = {
    {"run_plan", run_plan, METH_VARARGS,
     "run_plan(module, units, steps, settle_threshold, settle_now): install a plan and run its eager part."},
    {"exec_warm", py_exec_warm, METH_VARARGS,
     "exec_warm(loader, module, key, cache_dir, settle_threshold, settle_now) -> whether the artifact served it."},
    {"loaded_modules", py_loaded_list, METH_NOARGS, "The modules whose plan ran in this process (a shared list)."},
    {"nothing_to_defer", py_nothing_to_defer_list, METH_NOARGS,
     "The modules lazyexec's loader found nothing to defer in (a shared list)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

PyObject* loaded_list() { return loaded; }
PyObject* nothing_to_defer_list() { return nothing_to_defer; }

int set_warm_settings(WarmSettings s) {
  Py_XDECREF(settings.profile_path);
  Py_XDECREF(settings.known);
  settings = std::move(s);
  Py_XSETREF(warm_key, PyBytes_FromStringAndSize(settings.key.data(), (Py_ssize_t)settings.key.size()));
  Py_XSETREF(warm_cache_dir, PyUnicode_FromStringAndSize(settings.cache_dir.data(), (Py_ssize_t)settings.cache_dir.size()));
  if (warm_key == nullptr || warm_cache_dir == nullptr) return -1;
  ready = true;
  return 0;
}

// The usage profile is checked at exit once a module was claimed or served
// from an image (a run that claims none learns nothing; importing atexit
// costs more than the rest of activation).
void watch_profile() {
  static bool watched = false;
  if (watched || settings.profile_path == nullptr || settings.profile_path == Py_None) return;
  watched = true;
  Ref atexit = py::check(PyImport_ImportModule("atexit"));
  Ref fn = py::check(PyCFunction_New(&profile_at_exit_def, nullptr));
  Ref r = py::check(PyObject_CallMethod(atexit.get(), "register", "O", fn.get()));
}

PyObject* make_warm_loader(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "make_loader(fullname, path)");
    return nullptr;
  }
  try {
    if (loader_class == nullptr) {
      make_loader_class();
      found_plans = py::check(PyDict_New()).release();
      watch_profile();
    }
    // The artifact is read now, before the module exists: a module without
    // one (or an inline build) gets the Python layer's loader, which loads
    // here, while nothing is half initialised (the Python layer imports
    // modules of its own, __future__ for one).
    bool missing = false;
    Ref payload = !ready || settings.inline_build
                      ? Ref()
                      : read_payload(args[1], warm_key, warm_cache_dir, &missing);
    if (!payload) {
      if (missing) {
        // No artifact yet: loaded eagerly, queued for the builder, in C++.
        PyObject* loader = cold_loader(args[0], args[1], settings.cache_dir);
        if (loader != nullptr || PyErr_Occurred()) return loader;
      }
      // `missing`: the Python loader does not look for the artifact again.
      return PyObject_CallFunctionObjArgs(python_factory(), args[0], args[1], missing ? Py_True : Py_False, nullptr);
    }
    Ref entry = py::check(PyTuple_Pack(2, args[1], payload.get()));
    if (PyDict_SetItem(found_plans, args[0], entry.get()) < 0) throw py::PyError{};
  } catch (const py::PyError&) {
    return nullptr;
  }
  return PyObject_Vectorcall(loader_class, args, (size_t)nargs, nullptr);
}

PyObject* run_plan(PyObject*, PyObject* args) {
  PyObject *module, *units, *steps;
  long threshold = 10000;
  int settle_now = 0;
  if (!PyArg_ParseTuple(args, "OOO|lp", &module, &units, &steps, &threshold, &settle_now)) return nullptr;
  image::UnitTable table;  // an image's plan (format 6): its unit table
  if (!PyList_Check(units) && !image::unit_table(units, &table)) {
    PyErr_SetString(PyExc_TypeError, "run_plan: units must be a list (or an image's ImageUnits)");
    return nullptr;
  }
  if (!PyModule_Check(module)) {
    PyErr_SetString(PyExc_TypeError, "run_plan expects a module");
    return nullptr;
  }
  PyObject* g = PyModule_GetDict(module);
  try {
    if (PyDict_GetItemString(g, "__builtins__") == nullptr) {
      // As exec() of the module's code would: a module whose every
      // statement is deferred runs no eager part, and unit code (typing's
      // Protocol[_T] on 3.12) may read its __builtins__.
      Ref builtins = py::check(PyImport_ImportModule("builtins"));
      if (PyDict_SetItemString(g, "__builtins__", PyModule_GetDict(builtins.get())) < 0) throw py::PyError{};
    }
    PyObject* name = PyDict_GetItemString(g, "__name__");
    if (name == nullptr) {
      PyErr_SetString(PyExc_ValueError, "run_plan: the module has no __name__");
      throw py::PyError{};
    }
    PyObject* file = PyDict_GetItemString(g, "__file__");
    Ref filename = file && PyUnicode_Check(file) ? Ref::borrow(file) : py::str("");
    Ref threshold_obj = py::check(PyLong_FromLong(threshold));
    call("install", g, units, name, threshold_obj.get(), filename.get(), module);
    Ref hooks = py::check(runtime::make_hooks(module));
    PyObject* getattr_hook = PyTuple_GET_ITEM(hooks.get(), 0);
    PyObject* dir_hook = PyTuple_GET_ITEM(hooks.get(), 1);
    PyObject* own = PyTuple_GET_ITEM(hooks.get(), 2);
    if (PyDict_SetItemString(g, "__getattr__", getattr_hook) < 0 || PyDict_SetItemString(g, "__dir__", dir_hook) < 0)
      throw py::PyError{};
    Ref loaded_specs, late, readers;
    Ref fast = py::check(PySequence_Fast(steps, "plan steps must be a sequence"));
    // Rebinding through the module object (`setattr(sys.modules[__name__],
    // N, v)`, cryptography's utils.deprecated) first runs the pending units
    // that read N at definition time, already while the top level runs:
    // the units above the running statement, which eagerly had run
    // (runtime/module_hooks.cpp, "inputs").
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast.get()) && !readers; ++i) {
      PyObject* step = PySequence_Fast_GET_ITEM(fast.get(), i);
      if (PyTuple_Check(step) && PyTuple_GET_SIZE(step) == 3 && step_is(PyTuple_GET_ITEM(step, 0), "watch"))
        readers = Ref::borrow(PyTuple_GET_ITEM(step, 1));
    }
    runtime::ModuleState* running = runtime::state_of(g);
    if (running != nullptr) running->top_level_running = true;
    if (readers && runtime::watch_inputs(module, readers.get()) < 0) throw py::PyError{};
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast.get()); ++i) {
      PyObject* step = PySequence_Fast_GET_ITEM(fast.get(), i);
      if (!PyTuple_Check(step) || PyTuple_GET_SIZE(step) != 3) {
        PyErr_SetString(PyExc_ValueError, "lazyexec: a plan step is (kind, payload, end)");
        throw py::PyError{};
      }
      PyObject *kind = PyTuple_GET_ITEM(step, 0), *payload = PyTuple_GET_ITEM(step, 1), *end = PyTuple_GET_ITEM(step, 2);
      if (step_is(kind, "force_late")) {
        late = Ref::borrow(payload);
      } else if (step_is(kind, "own_views")) {
        call("set_own_views", g, payload);
      } else if (step_is(kind, "guard_imports")) {
        call("set_imports", g, payload);  // the usage profile's cost model reads them
      } else if (step_is(kind, "watch")) {
        // installed before the loop
      } else if (step_is(kind, "bind_loaded")) {
        loaded_specs = Ref::borrow(payload);
        call("set_imports", g, payload);
        if (runtime::watch_deferred_imports(module, payload) < 0) throw py::PyError{};
        watch_binders(module, g, payload);
      } else if (step_is(kind, "run")) {
        if (!PyCode_Check(payload)) {
          PyErr_SetString(PyExc_TypeError, "lazyexec: a plan's run step holds a code object");
          throw py::PyError{};
        }
        call("set_frontier", g, end, payload);
        Ref mark = call("last_key", g);
        Ref r = py::check(PyEval_EvalCode(payload, g, g));
        // Eagerly the units from `end` on bind after this part ran: what it
        // bound as a side effect (importlib's `pkg.sub`) gives way.
        call("supersede", g, mark.get(), end);
      } else if (step_is(kind, "force")) {
        // A force step runs right before the eager statements of the next
        // run step: the top level has reached them, so what that step sees
        // is defined now too (bs4.builder: `__all__ = [...]`, then
        // `register(_htmlparser)` forces `from . import _htmlparser`, whose
        // `from bs4.builder import ...` reads classes defined above it).
        // The frontier of the run step before would hide them.
        PyObject* next_end = nullptr;
        for (Py_ssize_t j = i + 1; j < PySequence_Fast_GET_SIZE(fast.get()) && next_end == nullptr; ++j) {
          PyObject* later = PySequence_Fast_GET_ITEM(fast.get(), j);
          if (PyTuple_Check(later) && PyTuple_GET_SIZE(later) == 3 && step_is(PyTuple_GET_ITEM(later, 0), "run"))
            next_end = PyTuple_GET_ITEM(later, 2);
        }
        Ref all_defined = py::check(PyLong_FromLong(-1));
        call("set_frontier", g, next_end != nullptr ? next_end : all_defined.get());
        call("force", g, payload);
      } else if (PyDict_GetItemString(g, "__annotations__") == nullptr) {  // "annotations"
        Ref annotations = py::check(PyDict_New());
        if (PyDict_SetItemString(g, "__annotations__", annotations.get()) < 0) throw py::PyError{};
      }
    }
    Ref minus_one = py::check(PyLong_FromLong(-1));
    call("set_frontier", g, minus_one.get());
    if (late && PyObject_IsTrue(late.get()) == 1)
      call("force", g, late.get());  // read by LOAD_NAME in class bodies of functions: bound as eagerly
    // The module's own PEP 562 hooks (eager dunder units) take the chain.
    for (auto [key, hook, slot] : {std::tuple{"__getattr__", getattr_hook, "getattr"},
                                   std::tuple{"__dir__", dir_hook, "dir"}}) {
      PyObject* current = PyDict_GetItemString(g, key);  // the base dict's: no trap
      if (current != hook) {
        if (PyDict_SetItemString(own, slot, current ? current : Py_None) < 0 ||
            PyDict_SetItemString(g, key, hook) < 0)
          throw py::PyError{};
      }
    }
    if (loaded_specs && PyObject_IsTrue(loaded_specs.get()) == 1) bind_loaded(g, loaded_specs.get());
    // Rebinding from outside first runs the pending units that read the
    // name (runtime/module_hooks.cpp, "inputs"); again if the top level
    // replaced the module's class (which ended the watch).
    runtime::ModuleState* st = runtime::state_of(g);
    if (st != nullptr) {
      st->top_level_running = false;
      st->shadowed.clear();
    }
    if (readers && runtime::watch_inputs(module, readers.get()) < 0) throw py::PyError{};
    if (st != nullptr && st->pending.empty() && runtime::on_settled(module, false) < 0)
      throw py::PyError{};  // nothing left to defer: the hooks go
    if (PyList_Append(loaded, name) < 0) throw py::PyError{};
    watch_profile();  // an image's finder serves modules without the warm loader
    PyObject* at_import = PyDict_GetItemString(g, "__at_import__");
    if (at_import != nullptr && PyCallable_Check(at_import)) {
      Ref keep = Ref::borrow(at_import);
      Ref r = py::check(PyObject_CallNoArgs(at_import));
    }
    if (settle_now) {
      Ref reason = py::str("requested: LAZYEXEC_SETTLE=now");
      call("settle", g, reason.get());
    }
  } catch (const py::PyError&) {
    return nullptr;
  }
  Py_RETURN_NONE;
}

int add_loader_functions(PyObject* module) {
  Py_XSETREF(extension, Py_NewRef(module));  // kept for the process
  if (loaded == nullptr) {
    loaded = PyList_New(0);
    nothing_to_defer = PyList_New(0);
    if (loaded == nullptr || nothing_to_defer == nullptr) return -1;
  }
  return PyModule_AddFunctions(module, functions);
}

}  // namespace lazyexec::importer
