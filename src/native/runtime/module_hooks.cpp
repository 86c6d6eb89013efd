#include "runtime/module_hooks.h"

#include <string>
#include <string_view>
#include <vector>

#include "importer/finder.h"
#include "py/handle.h"
#include "runtime/module_state.h"

namespace lazyexec::runtime {

bool complete_on_settle = true;

namespace {

using py::Ref;

// Shared with runtime/module_class.py (module_class_state()): plain pointers
// kept for the process, as the extension module is.
PyObject* deferred = nullptr;    // [(namespace, bound name, (modules it imports, ...))]
PyObject* watched = nullptr;     // {package name: module, or None until imported}
PyObject* subclasses = nullptr;  // {(class, kind): subclass}
PyObject* swapped = nullptr;     // {subclass: (class, kind)}
PyObject* submodule_getattr_method = nullptr;  // binds as a method of a module subclass
PyObject* package_watcher = nullptr;           // the PackageWatcher instance on sys.meta_path
PyObject* inputs_body = nullptr;  // {"__setattr__": ..., "__delattr__": ...} of the "inputs" class
PyObject* binders = nullptr;      // {id(namespace): set of names}: packages of the "binders" class
PyObject* binders_body = nullptr;  // {"__setattr__": ...} of the "binders" class
bool getmodule_hooked = false;
PyObject* reduce_method = nullptr;  // __reduce_ex__ of every module subclass of ours (module_reduce_ex)
PyObject* copy_method = nullptr;    // __copy__ of every module subclass of ours (module_copy)

PyObject* modules_dict() { return PyImport_GetModuleDict(); }

// module.__dict__ without going through its class (a settled module's class
// completes the namespace when asked for __dict__).
PyObject* namespace_of(PyObject* module) { return PyModule_Check(module) ? PyModule_GetDict(module) : nullptr; }

Ref import_attr(const char* module, const char* attr) {
  Ref m = py::check(PyImport_ImportModule(module));
  return py::check(PyObject_GetAttrString(m.get(), attr));
}

// The name is still pending and visible (as _lazyexec.pending() lists it).
bool is_pending(PyObject* g, PyObject* name) {
  ModuleState* st = PyDict_Check(g) ? state_of(g) : nullptr;
  if (!st || !PyUnicode_Check(name)) return false;
  auto it = st->pending.find(py::utf8(name));
  return it != st->pending.end() && it->second < visible_limit(*st);
}

// ---------------------------------------------------------------- class swaps

bool swapped_kind(PyObject* cls, const char* kind) {
  while (PyObject* entry = PyDict_GetItemWithError(swapped, cls)) {
    if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(entry, 1), kind) == 0) return true;
    cls = PyTuple_GET_ITEM(entry, 0);
  }
  if (PyErr_Occurred()) throw py::PyError{};
  return false;
}

PyObject* original_class(PyObject* cls) {
  while (PyObject* entry = PyDict_GetItemWithError(swapped, cls)) cls = PyTuple_GET_ITEM(entry, 0);
  if (PyErr_Occurred()) throw py::PyError{};
  return cls;
}

// ------------------------------------------------------------ __module__
//
// A class made with type() (or a class statement) keeps `__module__` in its
// namespace, and attribute lookup on an instance finds class attributes: a
// module of a swapped class answered `m.__module__` with "builtins", where
// eagerly it raises AttributeError (ModuleType's own `__module__` is computed
// by its type, not an entry of its namespace). Sphinx's autodoc takes
// `getattr(module, "__module__", None) or modname` for a module's real name
// and lost its source file (pyparsing's docs). The subclass's `__module__` is
// a str equal to its base's (so `type(m).__module__` and the class's repr are
// unchanged) that, read through a module, answers what the classes above it
// would: the next `__module__` entry up the MRO, or AttributeError.

PyObject* module_name_type = nullptr;

PyObject* module_name_get(PyObject* self, PyObject* obj, PyObject*) {
  if (obj == nullptr || obj == Py_None) return Py_NewRef(self);
  static PyObject* key = PyUnicode_InternFromString("__module__");  // kept for the process
  if (!key) return nullptr;
  PyObject* mro = Py_TYPE(obj)->tp_mro;
  for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro); ++i) {
    Ref ns = Ref::steal(PyObject_GetAttrString(PyTuple_GET_ITEM(mro, i), "__dict__"));
    if (!ns) return nullptr;
    PyObject* v = PyObject_GetItem(ns.get(), key);
    if (!v) {
      if (!PyErr_ExceptionMatches(PyExc_KeyError)) return nullptr;
      PyErr_Clear();
      continue;
    }
    Ref value = Ref::steal(v);
    if (Py_TYPE(v) == (PyTypeObject*)module_name_type) continue;  // another swapped class's
    if (descrgetfunc get = Py_TYPE(v)->tp_descr_get) return get(v, obj, (PyObject*)Py_TYPE(obj));
    return value.release();
  }
  PyErr_SetString(PyExc_AttributeError, "__module__");
  return nullptr;
}

// The str to put in a subclass's namespace for `value` (the base's __module__).
Ref module_name(PyObject* value) {
  if (!PyUnicode_Check(value)) return Ref::borrow(value);
  if (module_name_type == nullptr) {
    static PyType_Slot slots[] = {{Py_tp_descr_get, (void*)module_name_get}, {0, nullptr}};
    static PyType_Spec spec = {"lazyexec.ModuleName", 0, 0, Py_TPFLAGS_DEFAULT, slots};
    Ref bases = py::check(PyTuple_Pack(1, (PyObject*)&PyUnicode_Type));
    module_name_type = py::check(PyType_FromSpecWithBases(&spec, bases.get())).release();  // kept for the process
  }
  return py::check(PyObject_CallOneArg(module_name_type, value));
}

// A pickler's reducer keyed on the exact type misses a module whose class
// is one of ours: cloudpickle pickles a module by reference through
// `dispatch_table[types.ModuleType]`, so a function whose globals hold
// functools, collections or attr._compat while they have pending units read
// at definition time (the "inputs" class) failed lazily with "cannot pickle
// 'module' object". Eagerly the module is complete and of its own class: the
// module's pending units run (as a whole-namespace view runs them), which
// gives it its own class back, and the reduction hands the module itself
// to the pickler again, now of that class, in a one-item list
// (`operator.getitem([module], 0)`): the pickler's own handling of it
// decides, as eagerly (cloudpickle's reference; plain pickle's and
// deepcopy's TypeError). Where the class stays ours (a package's miss hook
// for its submodules, a unit that fails) over ModuleType itself, a stand-in
// module (its name, a copy of its namespace) is handed over instead; over
// another class, that class reduces it.
// `copy.copy(module)` would take that reduction for a copy: the module
// itself, where eagerly it raises. __copy__ completes it alike and copies it
// as its own class does (a TypeError for ModuleType, as eagerly).
PyObject* module_reduce_ex(PyObject*, PyObject* const* args, Py_ssize_t nargs);
PyObject* module_copy(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 1) {
    PyErr_SetString(PyExc_TypeError, "__copy__(module)");
    return nullptr;
  }
  PyObject* call[2] = {args[0], nullptr};
  return module_reduce_ex(nullptr, call, -1);
}
PyMethodDef module_copy_def = {"__copy__", (PyCFunction)(void (*)(void))module_copy, METH_FASTCALL,
                               "Completes the module, then copies it as its own class does."};

// nargs -1: __copy__'s call (args[1] null).
PyObject* module_reduce_ex(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 && nargs != -1) {
    PyErr_SetString(PyExc_TypeError, "__reduce_ex__(module, protocol)");
    return nullptr;
  }
  bool copying = nargs == -1;
  PyObject* module = args[0];
  try {
    PyObject* g = namespace_of(module);
    ModuleState* st = g ? state_of(g) : nullptr;
    if (st != nullptr && !st->top_level_running) {
      const int limit = visible_limit(*st);
      for (size_t i = 0; i < st->units.size() && (int)i < limit; ++i) {
        const auto& u = st->units[i];
        if (u.state != UnitRecord::Pending || !u.code || imports_initializing(u)) continue;
        if (materialize(*st, (int)i) < 0) {
          if (!PyErr_ExceptionMatches(PyExc_Exception)) return nullptr;
          PyErr_Clear();  // stays pending: its error comes where its name is used
        }
      }
    }
    PyObject* cls = (PyObject*)Py_TYPE(module);
    PyObject* entry = PyDict_GetItemWithError(swapped, cls);
    if (entry == nullptr) {
      if (PyErr_Occurred()) throw py::PyError{};
      if (copying) {
        Ref copy = import_attr("copy", "copy");
        return PyObject_CallOneArg(copy.get(), module);
      }
      Ref getitem = import_attr("operator", "getitem");
      return Py_BuildValue("(O([O]i))", getitem.get(), module, 0);
    }
    while (entry != nullptr) {  // the module's own class, under ours
      cls = PyTuple_GET_ITEM(entry, 0);
      entry = PyDict_GetItemWithError(swapped, cls);
    }
    if (PyErr_Occurred()) throw py::PyError{};
    if (copying) {  // copy.copy's next step for a class without __copy__
      Ref own = Ref::steal(PyObject_GetAttrString(cls, "__copy__"));
      if (own) return PyObject_CallOneArg(own.get(), module);
      if (!PyErr_ExceptionMatches(PyExc_AttributeError)) throw py::PyError{};
      PyErr_Clear();
      Ref own_reduce = py::check(PyObject_GetAttrString(cls, "__reduce_ex__"));
      Ref rv = py::check(PyObject_CallFunction(own_reduce.get(), "Oi", module, 4));
      Ref reconstruct = import_attr("copy", "_reconstruct");
      if (!PyTuple_Check(rv.get())) {  // a global's name: the object itself
        return Py_NewRef(module);
      }
      Ref head = py::check(PyTuple_Pack(2, module, Py_None));
      Ref all = py::check(PySequence_Concat(head.get(), rv.get()));
      return PyObject_Call(reconstruct.get(), all.get(), nullptr);
    }
    if (cls == (PyObject*)&PyModule_Type && g != nullptr) {
      // Still ours once complete: a package's miss hook for its submodules
      // (while an import under it is deferred), or a unit that failed. The
      // pickler gets a stand-in of the module's own class with its name and
      // a copy of its namespace, whose reduction is what an exact module's
      // would be (cloudpickle's by reference; plain pickle's and
      // deepcopy's TypeError). The module's class stays ours.
      Ref name = py::check(PyModule_GetNameObject(module));
      Ref stand_in = py::check(PyModule_NewObject(name.get()));
      if (PyDict_Merge(PyModule_GetDict(stand_in.get()), g, 1) < 0) throw py::PyError{};
      Ref getitem = import_attr("operator", "getitem");
      return Py_BuildValue("(O([O]i))", getitem.get(), stand_in.get(), 0);
    }
    Ref own = py::check(PyObject_GetAttrString(cls, "__reduce_ex__"));
    return PyObject_CallFunctionObjArgs(own.get(), module, args[1], nullptr);
  } catch (const py::PyError&) {
    return nullptr;
  }
}
PyMethodDef module_reduce_ex_def = {"__reduce_ex__", (PyCFunction)(void (*)(void))module_reduce_ex, METH_FASTCALL,
                                    "Completes the module, then reduces it as its own class does."};

// module_class.swap_class: the module's class becomes a subclass of it (same
// name, qualname, module and doc) with `body` added. False when the class
// cannot be subclassed or swapped (TypeError).
bool swap_class(PyObject* module, const char* kind, PyObject* body) {
  PyObject* cls = (PyObject*)Py_TYPE(module);
  if (swapped_kind(cls, kind)) return true;
  Ref key = py::check(Py_BuildValue("(Os)", cls, kind));
  Ref sub = Ref::borrow(PyDict_GetItemWithError(subclasses, key.get()));
  if (!sub && PyErr_Occurred()) throw py::PyError{};
  if (!sub) {
    Ref ns = py::check(PyDict_New());
    Ref slots = py::check(PyTuple_New(0));
    if (PyDict_SetItemString(ns.get(), "__slots__", slots.get()) < 0) throw py::PyError{};
    for (const char* attr : {"__module__", "__qualname__", "__doc__"}) {
      Ref v = py::check(PyObject_GetAttrString(cls, attr));
      if (attr[2] == 'm') v = module_name(v.get());
      if (PyDict_SetItemString(ns.get(), attr, v.get()) < 0) throw py::PyError{};
    }
    if (reduce_method == nullptr) {
      Ref fn = py::check(PyCFunction_New(&module_reduce_ex_def, nullptr));
      reduce_method = py::check(PyInstanceMethod_New(fn.get())).release();  // kept for the process
    }
    if (copy_method == nullptr) {
      Ref fn = py::check(PyCFunction_New(&module_copy_def, nullptr));
      copy_method = py::check(PyInstanceMethod_New(fn.get())).release();  // kept for the process
    }
    if (PyDict_SetItemString(ns.get(), "__reduce_ex__", reduce_method) < 0 ||
        PyDict_SetItemString(ns.get(), "__copy__", copy_method) < 0)
      throw py::PyError{};
    if (PyDict_Update(ns.get(), body) < 0) throw py::PyError{};
    Ref name = py::check(PyObject_GetAttrString(cls, "__name__"));
    Ref made = Ref::steal(PyObject_CallFunction((PyObject*)Py_TYPE(cls), "O(O)O", name.get(), cls, ns.get()));
    if (!made) {
      if (PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        return false;
      }
      throw py::PyError{};
    }
    // Its layout is made: `__slots__` goes, so that `m.__slots__` is a miss, as eagerly.
    if (PyObject_DelAttrString(made.get(), "__slots__") < 0) throw py::PyError{};
    sub = made;
    Ref entry = py::check(Py_BuildValue("(Os)", cls, kind));
    if (PyDict_SetItem(subclasses, key.get(), sub.get()) < 0 || PyDict_SetItem(swapped, sub.get(), entry.get()) < 0)
      throw py::PyError{};
  }
  // object.__setattr__, not the module class's own __setattr__, which may
  // forward the write elsewhere (cryptography's _ModuleWithDeprecations
  // sets it on the module it wraps).
  if (PyObject_GenericSetAttr(module, py::str("__class__").get(), sub.get()) < 0) {
    if (PyErr_ExceptionMatches(PyExc_TypeError)) {
      PyErr_Clear();
      return false;
    }
    throw py::PyError{};
  }
  return true;
}

// ------------------------------------------------------------ inputs
//
// Rule 4 for rebinding through the module object (mutable_inputs.cpp covers
// contents and `global` writes statically): `mod.TIMEOUT = 1`,
// `monkeypatch.setattr(mod, "TIMEOUT", 1)`, `mock.patch("mod.A")`, `del
// mod.N`. Eagerly every unit reading TIMEOUT at definition time (`TIMEOUT_MS
// = TIMEOUT * 1000`, `class B(A)`) ran at import, before any such write; so
// the write first runs the pending ones. Also while the top level runs
// (`setattr(sys.modules[module_name], name, wrapper)` in a function it
// calls: cryptography's utils.deprecated), for the units above the running
// statement (visible_limit); those below read the new value, as eagerly. A module's attribute writes go
// through its class's tp_setattro (generic setattr then writes the dict with
// PyDict_SetItem, which the trapping dict cannot see): while a lazily loaded
// module has pending units reading something, its class is a subclass of
// its own class (same name, qualname and repr) with this __setattr__ and
// __delattr__; it goes back when the module completes (default_on_settled,
// module_class.restore_class). Attribute reads are not affected.

// The "inputs" subclass in `module`'s class hierarchy (its MRO: a class
// assigned over ours keeps working), or null.
PyTypeObject* inputs_class(PyObject* module) {
  PyObject* mro = Py_TYPE(module)->tp_mro;
  for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro); ++i) {
    PyObject* entry = PyDict_GetItemWithError(swapped, PyTuple_GET_ITEM(mro, i));
    if (entry == nullptr) {
      if (PyErr_Occurred()) throw py::PyError{};
      continue;
    }
    if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(entry, 1), "inputs") == 0)
      return (PyTypeObject*)PyTuple_GET_ITEM(mro, i);
  }
  return nullptr;
}

// `super(cls, module).__setattr__(name, value)` (`value` null:
// `__delattr__(name)`): the write as the classes under ours do it. Not
// `cls->tp_base->tp_setattro`: for a class with a Python __setattr__ (the
// "binders" class of module_class.py) that slot looks the method up on
// type(module) again, which is ours: endless recursion.
int write_below(PyTypeObject* cls, PyObject* module, PyObject* name, PyObject* value) {
  PyTypeObject* base = cls != nullptr ? cls->tp_base : nullptr;
  if (base == nullptr || base->tp_setattro == PyModule_Type.tp_setattro)
    return PyModule_Type.tp_setattro(module, name, value);  // generic: no dispatch on type(module)
  Ref sup = py::check(PyObject_CallFunctionObjArgs((PyObject*)&PySuper_Type, (PyObject*)cls, module, nullptr));
  Ref method = py::check(PyObject_GetAttrString(sup.get(), value != nullptr ? "__setattr__" : "__delattr__"));
  Ref r = Ref::steal(value != nullptr ? PyObject_CallFunctionObjArgs(method.get(), name, value, nullptr)
                                      : PyObject_CallFunctionObjArgs(method.get(), name, nullptr));
  return r ? 0 : -1;
}

// `module.__class__ = cls` where `cls` neither is one of the module's
// classes now (restore_class going back) nor keeps ours (a tool's own
// module class): the watch ends, so every unit it covers runs first.
bool leaves_the_watch(PyObject* module, PyObject* name, PyObject* value) {
  if (value == nullptr || !PyType_Check(value) || !PyUnicode_Check(name) ||
      PyUnicode_CompareWithASCIIString(name, "__class__") != 0)
    return false;
  PyTypeObject* ours = inputs_class(module);
  return ours != nullptr && !PyType_IsSubtype(Py_TYPE(module), (PyTypeObject*)value) &&
         !PyType_IsSubtype((PyTypeObject*)value, ours);
}

// `value` null: a deletion.
PyObject* inputs_write(PyObject* module, PyObject* name, PyObject* value) {
  try {
    PyObject* g = namespace_of(module);
    ModuleState* st = g ? state_of(g) : nullptr;
    // (While the top level runs, the watch comes back when it ends: nothing to run now.)
    if (st != nullptr && !st->top_level_running && leaves_the_watch(module, name, value) &&
        force_all_readers(*st) < 0)
      return nullptr;
    if (st != nullptr && force_readers(*st, name) < 0) return nullptr;
    if (value == nullptr && st != nullptr && PyUnicode_Check(name) && (st = state_of(g)) != nullptr) {
      // `del mod.N` of a name whose unit has not run: eagerly N exists and
      // goes; the unit is cancelled, as `del N` in the module does.
      int has = PyDict_Contains(g, name);
      if (has < 0) return nullptr;
      auto it = has ? st->pending.end() : st->pending.find(py::utf8(name));
      if (it != st->pending.end() && it->second < visible_limit(*st)) {
        st->cancelled.emplace(it->first);
        st->pending.erase(it);
        Py_RETURN_NONE;
      }
    }
    if (write_below(inputs_class(module), module, name, value) < 0) return nullptr;
    Py_RETURN_NONE;
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* inputs_setattr(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "__setattr__(module, name, value)");
    return nullptr;
  }
  return inputs_write(args[0], args[1], args[2]);
}
PyMethodDef inputs_setattr_def = {"__setattr__", (PyCFunction)(void (*)(void))inputs_setattr, METH_FASTCALL,
                                  "Runs the pending units that read the name at definition time, then sets it."};

PyObject* inputs_delattr(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "__delattr__(module, name)");
    return nullptr;
  }
  return inputs_write(args[0], args[1], nullptr);
}
PyMethodDef inputs_delattr_def = {"__delattr__", (PyCFunction)(void (*)(void))inputs_delattr, METH_FASTCALL,
                                  "Runs the pending units that read the name at definition time, then deletes it."};

// ------------------------------------------------------ binders
//
// `setattr(package, "main", <module package.main>)`, as importlib binds a
// submodule it has just loaded, while the package's own pending `from .main
// import main` would, eagerly, have imported that submodule at the
// package's import and then bound `main` over it: run that unit now
// instead, and keep what it bound. (In C++ since it is on the path of every
// program importing unittest: in Python, runtime/module_class.py and the
// package layer it needs were imported from disk, about 2 M instructions and
// 0.2 MB in a start served from an image.)
PyObject* binding_write(PyObject* module, PyObject* name, PyObject* value) {
  try {
    PyObject* g = namespace_of(module);
    PyObject* names = nullptr;
    if (g != nullptr) {
      Ref key = py::check(PyLong_FromVoidPtr(g));
      names = PyDict_GetItemWithError(binders, key.get());
      if (names == nullptr && PyErr_Occurred()) throw py::PyError{};
    }
    int listed = names != nullptr ? PySet_Contains(names, name) : 0;
    if (listed < 0) throw py::PyError{};
    if (listed) {
      Ref package = py::check(PyObject_GetAttrString(module, "__name__"));
      Ref full = py::check(PyUnicode_FromFormat("%S.%S", package.get(), name));
      PyObject* modules = PySys_GetObject("modules");
      PyObject* sub = modules != nullptr ? PyObject_GetItem(modules, full.get()) : nullptr;
      if (sub == nullptr) {
        if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_KeyError)) throw py::PyError{};
        PyErr_Clear();
      }
      Ref held = Ref::steal(sub);
      if (sub != nullptr && sub == value && PyUnicode_Check(name)) {
        // Its unit runs (materialize_name); a failing unit stays pending and
        // raises where its name is used: the write goes through as eagerly.
        bool found = false;
        if (PyObject* v = PyDict_GetItemWithError(g, name)) {
          found = true;
          (void)v;
        } else if (PyErr_Occurred()) {
          throw py::PyError{};
        } else if (ModuleState* st = state_of(g)) {
          if (materialize_name(*st, name, /*absent_if_running=*/true) < 0) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) throw py::PyError{};
            PyErr_Clear();
          } else {
            found = PyDict_GetItemWithError(g, name) != nullptr;
            if (!found && PyErr_Occurred()) throw py::PyError{};
          }
        }
        if (found) Py_RETURN_NONE;
      }
    }
    PyObject* cls = (PyObject*)Py_TYPE(module);
    for (;;) {
      PyObject* entry = PyDict_GetItemWithError(swapped, cls);
      if (entry == nullptr) {
        if (PyErr_Occurred()) throw py::PyError{};
        break;
      }
      if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(entry, 1), "binders") == 0) break;
      cls = PyTuple_GET_ITEM(entry, 0);
    }
    if (write_below((PyTypeObject*)cls, module, name, value) < 0) return nullptr;
    Py_RETURN_NONE;
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* binders_setattr(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "__setattr__(module, name, value)");
    return nullptr;
  }
  return binding_write(args[0], args[1], args[2]);
}
PyMethodDef binders_setattr_def = {"__setattr__", (PyCFunction)(void (*)(void))binders_setattr, METH_FASTCALL,
                                   "Runs the package's pending `from .x import x` when importlib binds x on it."};

// ------------------------------------------------------ deferred imports

// The modules a deferred import spec imports: `from a.b import x` may import
// a.b and a.b.x.
Ref targets_of(PyObject* spec) {
  PyObject* mode = PyTuple_GET_ITEM(spec, 2);
  Ref modules = py::check(PySequence_Tuple(PyTuple_GET_ITEM(spec, 3)));
  if (PyUnicode_Check(mode) && PyUnicode_CompareWithASCIIString(mode, "from") == 0 &&
      PyTuple_GET_SIZE(modules.get()) > 0) {
    Ref sub = py::check(PyUnicode_FromFormat("%U.%U", PyTuple_GET_ITEM(modules.get(), 0), PyTuple_GET_ITEM(spec, 4)));
    Py_ssize_t n = PyTuple_GET_SIZE(modules.get());
    Ref out = py::check(PyTuple_New(n + 1));
    for (Py_ssize_t i = 0; i < n; ++i) PyTuple_SET_ITEM(out.get(), i, Py_NewRef(PyTuple_GET_ITEM(modules.get(), i)));
    PyTuple_SET_ITEM(out.get(), n, sub.release());
    return out;
  }
  return modules;
}

void hook_package(PyObject* name, PyObject* pkg) {
  if (!PyModule_Check(pkg)) return;
  PyObject* path = PyDict_GetItemWithError(PyModule_GetDict(pkg), py::str("__path__").get());
  if (path == nullptr || path == Py_None) {
    if (PyErr_Occurred()) throw py::PyError{};
    return;
  }
  Ref body = py::check(Py_BuildValue("{sO}", "__getattr__", submodule_getattr_method));
  if (swap_class(pkg, "submodules", body.get()) && PyDict_SetItem(watched, name, pkg) < 0) throw py::PyError{};
}

PyObject* hook_package_after(PyObject* name, PyObject* module) {
  try {
    hook_package(name, module);
  } catch (const py::PyError&) {
    return nullptr;
  }
  Py_RETURN_NONE;
}
PyMethodDef hook_package_after_def = {"hook_package", hook_package_after, METH_O, nullptr};

void install_package_watcher();

PyObject* patch_inspect(PyObject*, PyObject* module) {
  try {
    Ref patch = import_attr("lazyexec.inspect_patch", "patch");
    return PyObject_CallOneArg(patch.get(), module);
  } catch (const py::PyError&) {
    return nullptr;
  }
}
PyMethodDef patch_inspect_def = {"patch_inspect", patch_inspect, METH_O, nullptr};

// The active finder's watch on `inspect`: patched once its loader has run.
PyObject* inspect_found(PyObject*, PyObject* spec) {
  try {
    Ref loader = py::check(PyObject_GetAttrString(spec, "loader"));
    Ref patch = py::check(PyCFunction_New(&patch_inspect_def, nullptr));
    if (after_exec(loader.get(), patch.get()) < 0) throw py::PyError{};
    if (PyObject* finder = active_finder()) Ref r = py::check(PyObject_CallMethod(finder, "watch", "sO", "inspect", Py_None));
  } catch (const py::PyError&) {
    return nullptr;
  }
  return Py_NewRef(spec);
}
PyMethodDef inspect_found_def = {"inspect_found", inspect_found, METH_O, nullptr};

// inspect.getmodule finds the modules deferred imports would have loaded,
// and inspect.getattr_static a lazy module's pending names
// (runtime/eager_modules.py, lazyexec/inspect_patch.py): patched when the first module loads lazily,
// or when inspect loads after that.
void hook_getmodule() {
  PyObject* inspect = PyDict_GetItemString(modules_dict(), "inspect");
  if (inspect != nullptr) {
    Ref spec = Ref::steal(PyObject_GetAttrString(inspect, "__spec__"));
    if (!spec) PyErr_Clear();
    if (spec && spec.get() != Py_None) {
      Ref initializing = Ref::steal(PyObject_GetAttrString(spec.get(), "_initializing"));
      if (!initializing) PyErr_Clear();
      if (initializing && PyObject_IsTrue(initializing.get()) == 1) return;  // its getmodule may not exist yet
    }
    getmodule_hooked = true;
    Ref r = py::check(patch_inspect(nullptr, inspect));
    return;
  }
  getmodule_hooked = true;
  PyObject* finder = active_finder();
  if (finder == nullptr) return;
  Ref found = py::check(PyCFunction_New(&inspect_found_def, nullptr));
  Ref r = py::check(PyObject_CallMethod(finder, "watch", "sO", "inspect", found.get()));
}

// -------------------------------------------------------------- hook objects

struct HookObject {
  PyObject_HEAD
  int kind;             // 0: __getattr__, 1: __dir__
  PyObject* module;     // the module
  PyObject* globals;    // its namespace
  PyObject* own;        // {"getattr": ..., "dir": ...}: the module's own hooks
};

bool is_identifier_not_dunder(PyObject* attr) {
  if (!PyUnicode_Check(attr) || PyUnicode_IsIdentifier(attr) != 1) return false;
  return PyUnicode_GET_LENGTH(attr) < 2 || PyUnicode_READ_CHAR(attr, 0) != '_' || PyUnicode_READ_CHAR(attr, 1) != '_';
}

// `module.attr` missed: the submodule an eager run would have bound (DESIGN
// rule 7), or null (no exception) when there is none: `module` must be a
// package with an import still deferred under it, and `attr` a submodule
// that can be found; it is imported now (binding it on the package, as
// importlib does), as the deferred import would have.
PyObject* submodule_on_miss(PyObject* module, PyObject* attr) {
  PyObject* g = namespace_of(module);
  if (g == nullptr || !is_identifier_not_dunder(attr)) return nullptr;
  PyObject* name = PyDict_GetItemWithError(g, py::str("__name__").get());
  if (name == nullptr || !PyUnicode_Check(name)) {
    if (PyErr_Occurred()) throw py::PyError{};
    return nullptr;
  }
  PyObject* path = PyDict_GetItemWithError(g, py::str("__path__").get());
  if (path == nullptr || path == Py_None) {
    if (PyErr_Occurred()) throw py::PyError{};
    return nullptr;
  }
  if (!deferred_under(py::utf8(name) + ".")) return nullptr;
  Ref full = py::check(PyUnicode_FromFormat("%U.%U", name, attr));
  Ref sub = Ref::borrow(PyDict_GetItemWithError(modules_dict(), full.get()));
  if (!sub && PyErr_Occurred()) throw py::PyError{};
  if (sub.get() == Py_None) return nullptr;  // blocked: importlib.util.find_spec says None
  if (!sub) {
    // importlib.util.find_spec for a submodule of an imported package: the
    // finders asked with the package's __path__.
    PyObject* bootstrap = PyDict_GetItemString(modules_dict(), "_frozen_importlib");
    if (bootstrap == nullptr) return nullptr;
    Ref spec = Ref::steal(PyObject_CallMethod(bootstrap, "_find_spec", "OO", full.get(), path));
    if (!spec) {
      if (!PyErr_ExceptionMatches(PyExc_ImportError) && !PyErr_ExceptionMatches(PyExc_ValueError)) throw py::PyError{};
      PyErr_Clear();
      return nullptr;
    }
    if (spec.get() == Py_None) return nullptr;
    sub = py::check(PyImport_Import(full.get()));
    // PyImport_Import returns the top-level package for a dotted name.
    sub = Ref::borrow(PyDict_GetItemWithError(modules_dict(), full.get()));
    if (!sub) {
      if (PyErr_Occurred()) throw py::PyError{};
      return nullptr;
    }
  }
  PyObject* value = PyDict_GetItemWithError(g, attr);
  if (value == nullptr && PyErr_Occurred()) throw py::PyError{};
  return Py_NewRef(value ? value : sub.get());
}

PyObject* hook_getattr(HookObject* self, PyObject* attr) {
  PyObject* g = self->globals;
  PyObject* v = PyDict_GetItemWithError(g, attr);
  if (v == nullptr && !PyErr_Occurred()) {
    if (ModuleState* st = state_of(g)) {
      if (materialize_name(*st, attr, /*absent_if_running=*/true) < 0) return nullptr;
      v = PyDict_GetItemWithError(g, attr);
    }
  }
  if (v != nullptr) return Py_NewRef(v);
  if (PyErr_Occurred()) return nullptr;
  if (PyUnicode_Check(attr) && PyUnicode_CompareWithASCIIString(attr, "__all__") == 0) {
    // `from m import *` without __all__: every public pending unit runs
    // first, so the star import then sees them in __dict__.
    if (ModuleState* st = state_of(g)) {
      const int limit = visible_limit(*st);
      for (size_t i = 0; i < st->units.size() && (int)i < limit; ++i) {
        const auto& u = st->units[i];
        if (u.state != UnitRecord::Pending || !u.code || imports_initializing(u)) continue;
        bool wanted = false;
        for (std::string_view b : st->binds(u))
          if (!b.empty() && b[0] != '_' && st->pending.count(b)) wanted = true;
        if (wanted && materialize(*st, (int)i) < 0) return nullptr;
      }
    }
  }
  try {
    if (PyObject* sub = submodule_on_miss(self->module, attr)) return sub;
  } catch (const py::PyError&) {
    return nullptr;
  }
  PyObject* own = PyDict_GetItemString(self->own, "getattr");
  if (own != nullptr && own != Py_None) return PyObject_CallOneArg(own, attr);
  PyObject* name = PyDict_GetItemString(g, "__name__");
  PyErr_Format(PyExc_AttributeError, "module %R has no attribute %R", name ? name : Py_None, attr);
  return nullptr;
}

PyObject* hook_dir(HookObject* self) {
  PyObject* own_dir = PyDict_GetItemString(self->own, "dir");
  if (own_dir == Py_None) own_dir = nullptr;
  PyObject* own_getattr = PyDict_GetItemString(self->own, "getattr");
  if (own_getattr == Py_None) own_getattr = nullptr;
  try {
    Ref names;
    if (own_dir != nullptr) {
      Ref listed = py::check(PyObject_CallNoArgs(own_dir));
      names = py::check(PySet_New(listed.get()));
    } else {
      names = py::check(PySet_New(nullptr));
      PyObject *k, *v;
      Py_ssize_t pos = 0;
      while (PyDict_Next(self->globals, &pos, &k, &v))
        if (PySet_Add(names.get(), k) < 0) throw py::PyError{};
    }
    if (ModuleState* st = state_of(self->globals))
      for (const auto& [name, unit] : st->pending)
        if (unit < visible_limit(*st) && PySet_Add(names.get(), py::str(name).get()) < 0) throw py::PyError{};
    if (own_getattr == nullptr && PySet_Discard(names.get(), py::str("__getattr__").get()) < 0) throw py::PyError{};
    if (own_dir == nullptr && PySet_Discard(names.get(), py::str("__dir__").get()) < 0) throw py::PyError{};
    Ref out = py::check(PySequence_List(names.get()));
    if (PyList_Sort(out.get()) < 0) throw py::PyError{};
    return out.release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* hook_call(PyObject* self_obj, PyObject* args, PyObject* kwargs) {
  auto* self = (HookObject*)self_obj;
  // Module attribute lookup calls the hook through a borrowed reference, and
  // a module that completes while it runs removes the hook from its
  // namespace: it must outlive its own call.
  Ref keep = Ref::borrow(self_obj);
  if (kwargs != nullptr && PyDict_GET_SIZE(kwargs) > 0) {
    PyErr_SetString(PyExc_TypeError, "lazyexec's module hooks take no keyword arguments");
    return nullptr;
  }
  if (self->kind == 0) {
    if (PyTuple_GET_SIZE(args) != 1) {
      PyErr_SetString(PyExc_TypeError, "__getattr__() takes exactly one argument");
      return nullptr;
    }
    return hook_getattr(self, PyTuple_GET_ITEM(args, 0));
  }
  if (PyTuple_GET_SIZE(args) != 0) {
    PyErr_SetString(PyExc_TypeError, "__dir__() takes no arguments");
    return nullptr;
  }
  return hook_dir(self);
}

int hook_traverse(PyObject* self_obj, visitproc visit, void* arg) {
  auto* self = (HookObject*)self_obj;
  Py_VISIT(self->module);
  Py_VISIT(self->globals);
  Py_VISIT(self->own);
  return 0;
}

int hook_clear(PyObject* self_obj) {
  auto* self = (HookObject*)self_obj;
  Py_CLEAR(self->module);
  Py_CLEAR(self->globals);
  Py_CLEAR(self->own);
  return 0;
}

void hook_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  hook_clear(self);
  Py_TYPE(self)->tp_free(self);
}

PyObject* hook_repr(PyObject* self_obj) {
  auto* self = (HookObject*)self_obj;
  PyObject* name = PyDict_GetItemString(self->globals, "__name__");
  return PyUnicode_FromFormat("<lazyexec %s hook of module %R>", self->kind == 0 ? "__getattr__" : "__dir__",
                              name ? name : Py_None);
}

PyObject* hook_get_own(PyObject* self_obj, void*) { return Py_NewRef(((HookObject*)self_obj)->own); }
PyObject* hook_get_name(PyObject* self_obj, void*) {
  return PyUnicode_FromString(((HookObject*)self_obj)->kind == 0 ? "__getattr__" : "__dir__");
}

PyGetSetDef hook_getset[] = {
    {"_lazyexec_own", hook_get_own, nullptr, "The module's own hooks, restored when it completes.", nullptr},
    {"__name__", hook_get_name, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject hook_type = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "lazyexec._lazyexec.ModuleHook";
  t.tp_basicsize = sizeof(HookObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
  t.tp_doc = "A lazily loaded module's PEP 562 __getattr__ or __dir__.";
  t.tp_call = hook_call;
  t.tp_traverse = hook_traverse;
  t.tp_clear = hook_clear;
  t.tp_dealloc = hook_dealloc;
  t.tp_repr = hook_repr;
  t.tp_getset = hook_getset;
  return t;
}();

PyObject* new_hook(int kind, PyObject* module, PyObject* globals, PyObject* own) {
  auto* h = PyObject_GC_New(HookObject, &hook_type);
  if (h == nullptr) return nullptr;
  h->kind = kind;
  h->module = Py_NewRef(module);
  h->globals = Py_NewRef(globals);
  h->own = Py_NewRef(own);
  PyObject_GC_Track((PyObject*)h);
  return (PyObject*)h;
}

// ------------------------------------------------------------ package watcher

// The names this thread's watcher lookups are asking the other finders for.
thread_local std::vector<std::string> watcher_asking;

// A meta path finder that finds nothing itself: for a package an import is
// deferred under, it asks the finders after it and has the module hooked once
// its loader has run. Every other import costs it one dict lookup.
//
// A program may wrap the finders on sys.meta_path (Mercurial's demandimport
// replaces each with a proxy whose find_spec calls the one it wraps). The
// watcher then does not find itself in the list and asks every finder, its
// own proxy among them, which calls it again: endless recursion (`hg init`
// through the .pth activation: RecursionError). A lookup this thread is
// already making for the same name answers None, so the outer one goes on
// with the finders after the proxy.
PyObject* watcher_find_spec(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"fullname", "path", "target", nullptr};
  PyObject *fullname, *path = Py_None, *target = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OO", (char**)kwlist, &fullname, &path, &target)) return nullptr;
  PyObject* entry = PyDict_GetItemWithError(watched, fullname);
  if (entry == nullptr || entry != Py_None) {
    if (PyErr_Occurred()) return nullptr;
    Py_RETURN_NONE;
  }
  std::string name;
  try {
    name = py::utf8(fullname);
  } catch (const py::PyError&) {
    return nullptr;
  }
  for (const std::string& asking : watcher_asking)
    if (asking == name) Py_RETURN_NONE;
  watcher_asking.push_back(name);
  struct Done {
    ~Done() { watcher_asking.pop_back(); }
  } done;
  try {
    Ref finders = py::check(PySequence_List(PySys_GetObject("meta_path")));
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(finders.get()); ++i)
      if (PyList_GET_ITEM(finders.get(), i) == self) {
        start = i + 1;
        break;
      }
    Ref spec = Ref::borrow(Py_None);
    for (Py_ssize_t i = start; i < PyList_GET_SIZE(finders.get()); ++i) {
      Ref find = Ref::steal(PyObject_GetAttrString(PyList_GET_ITEM(finders.get(), i), "find_spec"));
      if (!find) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) throw py::PyError{};
        PyErr_Clear();
        continue;
      }
      spec = py::check(PyObject_CallFunctionObjArgs(find.get(), fullname, path, target, nullptr));
      if (spec.get() != Py_None) break;
    }
    if (spec.get() == Py_None) Py_RETURN_NONE;
    Ref locations = py::check(PyObject_GetAttrString(spec.get(), "submodule_search_locations"));
    if (locations.get() != Py_None) {
      Ref loader = py::check(PyObject_GetAttrString(spec.get(), "loader"));
      Ref after = py::check(PyCFunction_New(&hook_package_after_def, fullname));
      if (after_exec(loader.get(), after.get()) < 0) throw py::PyError{};
    }
    return spec.release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* watcher_invalidate(PyObject*, PyObject*) { Py_RETURN_NONE; }

PyMethodDef watcher_methods[] = {
    {"find_spec", (PyCFunction)(void (*)(void))watcher_find_spec, METH_VARARGS | METH_KEYWORDS,
     "find_spec(fullname, path=None, target=None): the next finders' spec, the package hooked after it runs."},
    {"invalidate_caches", watcher_invalidate, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyTypeObject watcher_type = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "lazyexec._lazyexec.PackageWatcher";
  t.tp_basicsize = sizeof(PyObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "Hooks a package that deferred imports import under, when it is imported.";
  t.tp_methods = watcher_methods;
  t.tp_new = PyType_GenericNew;
  return t;
}();

void install_package_watcher() {
  PyObject* meta_path = PySys_GetObject("meta_path");
  if (meta_path == nullptr || !PyList_Check(meta_path)) return;
  if (package_watcher != nullptr) {
    int present = PySequence_Contains(meta_path, package_watcher);
    if (present < 0) throw py::PyError{};
    if (present) return;
  }
  Ref w = py::check(PyObject_CallNoArgs((PyObject*)&watcher_type));
  if (PyList_Insert(meta_path, 0, w.get()) < 0) throw py::PyError{};
  Py_XSETREF(package_watcher, w.release());
}

// ------------------------------------------------------------ module functions

PyObject* py_deferred_under(PyObject*, PyObject* prefix) {
  if (!PyUnicode_Check(prefix)) {
    PyErr_SetString(PyExc_TypeError, "deferred_under expects a str");
    return nullptr;
  }
  try {
    return PyBool_FromLong(deferred_under(py::utf8(prefix)));
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* py_swap_class(PyObject*, PyObject* args) {
  PyObject *module, *body;
  const char* kind;
  if (!PyArg_ParseTuple(args, "OsO!", &module, &kind, &PyDict_Type, &body)) return nullptr;
  try {
    return PyBool_FromLong(swap_class(module, kind, body));
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* py_module_class_state(PyObject*, PyObject*) {
  return Py_BuildValue("(OOOOO)", deferred, watched, subclasses, swapped, submodule_getattr_method);
}

PyObject* py_submodule_binders(PyObject*, PyObject*) { return Py_NewRef(binders); }

PyObject* py_watch_binders(PyObject*, PyObject* args) {
  PyObject *module, *names;
  if (!PyArg_ParseTuple(args, "OO!", &module, &PySet_Type, &names)) return nullptr;
  if (watch_binders(module, names) < 0) return nullptr;
  Py_RETURN_NONE;
}

// submodule_on_miss(module, attr) -> (found, value).
PyObject* py_submodule_on_miss(PyObject*, PyObject* args) {
  PyObject *module, *attr;
  if (!PyArg_ParseTuple(args, "OU", &module, &attr)) return nullptr;
  try {
    Ref value = Ref::steal(submodule_on_miss(module, attr));
    if (!value) return Py_BuildValue("(OO)", Py_False, Py_None);
    return Py_BuildValue("(OO)", Py_True, value.get());
  } catch (const py::PyError&) {
    return nullptr;
  }
}

PyObject* py_complete_on_settle(PyObject*, PyObject* args) {
  PyObject* value = Py_None;
  if (!PyArg_ParseTuple(args, "|O", &value)) return nullptr;
  bool before = complete_on_settle;
  if (value != Py_None) {
    int flag = PyObject_IsTrue(value);
    if (flag < 0) return nullptr;
    complete_on_settle = flag != 0;
  }
  return PyBool_FromLong(before);
}

// The "submodules" class's __getattr__(module, attr): module_class's
// _submodule_getattr.
PyObject* submodule_getattr(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "__getattr__(module, attr)");
    return nullptr;
  }
  PyObject *module = args[0], *attr = args[1];
  try {
    if (PyObject* sub = submodule_on_miss(module, attr)) return sub;
    // The module class's own __getattr__ (pygments.lexers' _automodule loads
    // lexers on demand): this subclass must not hide it.
    PyObject* cls = original_class((PyObject*)Py_TYPE(module));
    Ref own = Ref::steal(PyObject_GetAttrString(cls, "__getattr__"));
    if (own) return PyObject_CallFunctionObjArgs(own.get(), module, attr, nullptr);
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return nullptr;
    PyErr_Clear();
    PyObject* g = namespace_of(module);
    if (g != nullptr && PyDict_GetItemString(g, "__getattr__") != nullptr)
      // The module's own PEP 562 hook made the error: give it back as it was.
      return PyModule_Type.tp_getattro(module, attr);
    PyObject* name = g ? PyDict_GetItemString(g, "__name__") : nullptr;
    Ref msg = py::check(PyUnicode_FromFormat("module %R has no attribute %R", name ? name : Py_None, attr));
    Ref error_args = py::check(PyTuple_Pack(1, msg.get()));
    Ref kw = py::check(Py_BuildValue("{sOsO}", "name", attr, "obj", module));
    Ref error = py::check(PyObject_Call(PyExc_AttributeError, error_args.get(), kw.get()));
    PyErr_SetObject(PyExc_AttributeError, error.get());
    return nullptr;
  } catch (const py::PyError&) {
    return nullptr;
  }
}
PyMethodDef submodule_getattr_def = {"__getattr__", (PyCFunction)(void (*)(void))submodule_getattr, METH_FASTCALL,
                                     "A package's submodule an import deferred under it would have bound."};

PyMethodDef functions[] = {
    {"deferred_under", py_deferred_under, METH_O, "deferred_under(prefix) -> whether an import under it is deferred."},
    {"submodule_on_miss", py_submodule_on_miss, METH_VARARGS,
     "submodule_on_miss(module, attr) -> (found, value): the submodule a deferred import would have bound."},
    {"swap_class", py_swap_class, METH_VARARGS, "swap_class(module, kind, body) -> whether the class was swapped."},
    {"module_class_state", py_module_class_state, METH_NOARGS,
     "(deferred, watched, subclasses, swapped, submodule_getattr): tables shared with runtime/module_class.py."},
    {"submodule_binders", py_submodule_binders, METH_NOARGS,
     "{id(namespace): names}: the packages of the \"binders\" class (runtime/module_class.py drops an entry)."},
    {"watch_binders", py_watch_binders, METH_VARARGS,
     "watch_binders(package, names): its pending `from .x import x` units (names) run when x is bound on it."},
    {"complete_on_settle", py_complete_on_settle, METH_VARARGS,
     "complete_on_settle(value=None) -> previous: whether a hot settling module runs what is pending."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

PyObject* active_finder() {
  PyObject* meta_path = PySys_GetObject("meta_path");
  if (meta_path == nullptr || !PyList_Check(meta_path)) return nullptr;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(meta_path); ++i)
    if (importer::is_finder(PyList_GET_ITEM(meta_path, i)))
      return PyList_GET_ITEM(meta_path, i);
  return nullptr;
}

PyTypeObject* module_hook_type = nullptr;

int store_own_hook(PyObject* current, PyObject* value) {
  if (current == nullptr || Py_TYPE(current) != &hook_type) return 0;
  auto* h = (HookObject*)current;
  const char* slot = h->kind == 0 ? "getattr" : "dir";
  if (value == nullptr) {
    PyObject* was = PyDict_GetItemString(h->own, slot);
    if (was == nullptr || was == Py_None) {
      PyErr_SetString(PyExc_KeyError, h->kind == 0 ? "__getattr__" : "__dir__");
      return -1;
    }
    value = Py_None;
  }
  return PyDict_SetItemString(h->own, slot, value) < 0 ? -1 : 1;
}

PyObject* own_hook(PyObject* hook) {
  auto* h = (HookObject*)hook;
  PyObject* own = PyDict_GetItemString(h->own, h->kind == 0 ? "getattr" : "dir");
  return own == Py_None ? nullptr : own;
}

PyObject* make_hooks(PyObject* module) {
  PyObject* g = namespace_of(module);
  if (g == nullptr) {
    PyErr_SetString(PyExc_TypeError, "make_hooks expects a module");
    return nullptr;
  }
  // inspect's patch points (getmodule, getattr_static's own-attribute
  // lookup) from the first module with pending units on.
  if (!getmodule_hooked) {
    try {
      hook_getmodule();
    } catch (const py::PyError&) {
      return nullptr;
    }
  }
  Ref own = Ref::steal(PyDict_New());
  if (!own) return nullptr;
  Ref getattr_hook = Ref::steal(new_hook(0, module, g, own.get()));
  Ref dir_hook = getattr_hook ? Ref::steal(new_hook(1, module, g, own.get())) : Ref();
  if (!dir_hook) return nullptr;
  return PyTuple_Pack(3, getattr_hook.get(), dir_hook.get(), own.get());
}

int watch_deferred_imports(PyObject* module, PyObject* specs) {
  PyObject* g = namespace_of(module);
  if (g == nullptr) return 0;
  try {
    Ref fast = py::check(PySequence_Fast(specs, "deferred import specs must be a sequence"));
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast.get());
    if (n > 0 && !getmodule_hooked) hook_getmodule();
    PyObject* modules = modules_dict();
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* spec = PySequence_Fast_GET_ITEM(fast.get(), i);
      if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 5) continue;
      Ref targets = targets_of(spec);
      Ref entry = py::check(PyTuple_Pack(3, g, PyTuple_GET_ITEM(spec, 1), targets.get()));
      if (PyList_Append(deferred, entry.get()) < 0) throw py::PyError{};
      for (Py_ssize_t t = 0; t < PyTuple_GET_SIZE(targets.get()); ++t) {
        std::string target = py::utf8(PyTuple_GET_ITEM(targets.get(), t));
        for (size_t dot = target.find('.'); dot != std::string::npos; dot = target.find('.', dot + 1)) {
          Ref name = py::str(std::string_view(target).substr(0, dot));
          PyObject* pkg = PyDict_GetItemWithError(modules, name.get());
          if (pkg == nullptr) {
            if (PyErr_Occurred()) throw py::PyError{};
            int known = PyDict_Contains(watched, name.get());
            if (known < 0) throw py::PyError{};
            if (!known) {
              if (PyDict_SetItem(watched, name.get(), Py_None) < 0) throw py::PyError{};
              install_package_watcher();
            }
          } else if (PyDict_GetItemWithError(watched, name.get()) != pkg) {
            if (PyErr_Occurred()) throw py::PyError{};
            hook_package(name.get(), pkg);
          }
        }
      }
    }
  } catch (const py::PyError&) {
    return -1;
  }
  return 0;
}

bool deferred_under(const std::string& prefix) {
  Ref keep = py::check(PyList_New(0));
  bool found = false;
  Py_ssize_t n = PyList_GET_SIZE(deferred);
  for (Py_ssize_t i = 0; i < n && i < PyList_GET_SIZE(deferred); ++i) {
    PyObject* entry = PyList_GET_ITEM(deferred, i);
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3) continue;
    if (!is_pending(PyTuple_GET_ITEM(entry, 0), PyTuple_GET_ITEM(entry, 1))) continue;  // ran or cancelled
    if (PyList_Append(keep.get(), entry) < 0) throw py::PyError{};
    if (found) continue;
    PyObject* targets = PyTuple_GET_ITEM(entry, 2);
    for (Py_ssize_t t = 0; PyTuple_Check(targets) && t < PyTuple_GET_SIZE(targets); ++t) {
      std::string target = py::utf8(PyTuple_GET_ITEM(targets, t));
      if (target.compare(0, prefix.size(), prefix) == 0) {
        found = true;
        break;
      }
    }
  }
  if (PyList_SetSlice(deferred, 0, PyList_GET_SIZE(deferred), keep.get()) < 0) throw py::PyError{};
  return found;
}

// `st.readers` from the plan's watch payload ((name, (unit, ...)), ...):
// the units still pending. -1 with an exception set.
static int parse_readers(ModuleState& st) {
  py::Ref plan = std::move(st.readers_plan);
  PyObject* readers = plan.get();
  if (!PyTuple_Check(readers)) return 0;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(readers); ++i) {
    PyObject* entry = PyTuple_GET_ITEM(readers, i);
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(entry, 0)) ||
        !PyTuple_Check(PyTuple_GET_ITEM(entry, 1))) {
      PyErr_SetString(PyExc_ValueError, "lazyexec: a plan's watch entry is (name, (unit, ...))");
      return -1;
    }
    PyObject* ids = PyTuple_GET_ITEM(entry, 1);
    std::vector<int> pending;
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(ids); ++j) {
      long id = PyLong_AsLong(PyTuple_GET_ITEM(ids, j));
      if (id == -1 && PyErr_Occurred()) return -1;
      if (id >= 0 && id < (long)st.units.size() && st.units[(size_t)id].state == UnitRecord::Pending &&
          st.units[(size_t)id].code)
        pending.push_back((int)id);
    }
    if (!pending.empty()) st.readers[py::utf8(PyTuple_GET_ITEM(entry, 0))] = std::move(pending);
  }
  return 0;
}

int force_readers(ModuleState& st, PyObject* name) {
  if (st.readers_plan && parse_readers(st) < 0) return -1;
  if (st.readers.empty() || !PyUnicode_Check(name)) return 0;
  auto it = st.readers.find(py::utf8(name));
  if (it == st.readers.end()) return 0;
  std::string key = it->first;
  std::vector<int> ids = std::move(it->second);  // running them runs Python code
  st.readers.erase(it);
  int limit = visible_limit(st);
  std::vector<int> left;
  for (int id : ids) {
    if (id < 0 || id >= (int)st.units.size()) continue;
    if (st.units[(size_t)id].state != UnitRecord::Pending || !st.units[(size_t)id].code) continue;
    if (id >= limit) {
      // Not reached yet (the top level, or a unit running in this thread, is
      // above it): eagerly it reads the new value; watched for later writes.
      left.push_back(id);
      continue;
    }
    if (materialize(st, id) < 0) {
      if (!PyErr_ExceptionMatches(PyExc_Exception)) return -1;
      PyErr_Clear();  // stays pending: its error comes where its name is used
      left.push_back(id);
    }
  }
  if (!left.empty()) st.readers[key] = std::move(left);
  return 0;
}

int force_all_readers(ModuleState& st) {
  if (st.readers_plan && parse_readers(st) < 0) return -1;
  std::vector<std::string> names;
  for (const auto& [n, ids] : st.readers) names.push_back(n);
  for (const auto& n : names) {
    Ref key = py::str(n);
    if (force_readers(st, key.get()) < 0) return -1;
  }
  return 0;
}

// The "inputs" subclass of ModuleType, once swap_class made it (kept alive
// by its table): later modules of that class get it without the generic
// __class__ assignment, whose layout check the first one passed.
static PyTypeObject* inputs_module_class = nullptr;

int watch_inputs(PyObject* module, PyObject* readers) {
  PyObject* g = namespace_of(module);
  ModuleState* st = g ? state_of(g) : nullptr;
  if (st == nullptr || st->pending.empty() || !PyTuple_Check(readers) || PyTuple_GET_SIZE(readers) == 0) return 0;
  try {
    if (inputs_class(module) != nullptr) return 0;  // watching already
  } catch (const py::PyError&) {
    return -1;
  }
  st->readers_plan = py::Ref::borrow(readers);  // parsed at the first write that asks
  if (Py_TYPE(module) == &PyModule_Type && inputs_module_class != nullptr) {
    Py_INCREF(inputs_module_class);
    Py_SET_TYPE(module, inputs_module_class);  // as object_set_class does (ModuleType is static)
    return 0;
  }
  try {
    bool exact = Py_TYPE(module) == &PyModule_Type;
    if (!swap_class(module, "inputs", inputs_body)) {
      st->readers_plan = py::Ref();
      return 0;
    }
    if (exact && Py_TYPE(module)->tp_base == &PyModule_Type) inputs_module_class = Py_TYPE(module);
  } catch (const py::PyError&) {
    return -1;
  }
  return 0;
}

int watch_binders(PyObject* module, PyObject* names) {
  try {
    PyObject* g = namespace_of(module);
    if (g == nullptr || !swap_class(module, "binders", binders_body)) return 0;
    Ref key = py::check(PyLong_FromVoidPtr(g));
    if (PyDict_SetItem(binders, key.get(), names) < 0) return -1;
  } catch (const py::PyError&) {
    return -1;
  }
  return 0;
}

// Whether the module's class is the "inputs" class alone over ModuleType:
// handled here as a module of its own class (no Python layer), given its
// class back once complete.
static int inputs_only(PyObject* module) {
  if (Py_TYPE(module) == &PyModule_Type) return 0;
  PyObject* entry = PyDict_GetItemWithError(swapped, (PyObject*)Py_TYPE(module));
  if (entry == nullptr) return PyErr_Occurred() ? -1 : 0;
  return PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(entry, 1), "inputs") == 0 &&
         PyTuple_GET_ITEM(entry, 0) == (PyObject*)&PyModule_Type;
}

int default_on_settled(PyObject* module, bool hot) {
  PyObject* g = namespace_of(module);
  ModuleState* st = g ? state_of(g) : nullptr;
  if (st == nullptr) return 0;
  int inputs = inputs_only(module);
  if (inputs < 0) return -1;
  if (Py_TYPE(module) == &PyModule_Type || inputs) {
    if (hot && complete_on_settle && !st->pending.empty()) {
      // Zero overhead includes `module.attr` from other modules, which
      // CPython specializes only without a PEP 562 hook in the namespace: a
      // hot module runs what is left and drops the hook (docs/settle.md).
      // Each with its static closure (nothing traps a settled module's
      // lookups): a unit whose closure waits on a deferred import of a module
      // still initializing stays pending, reachable through the module's hook.
      const std::vector<char> waits = waiting_on_initializing(*st);
      for (size_t i = 0; i < st->units.size(); ++i) {
        const auto& u = st->units[i];
        if (u.state != UnitRecord::Pending || !u.code || (i < waits.size() && waits[i])) continue;
        if (materialize_with_closure(*st, (int)i) < 0) {
          if (!PyErr_ExceptionMatches(PyExc_Exception)) return -1;
          PyErr_Clear();  // stays pending: its error comes where its name is used
        }
      }
    }
    if (st->pending.empty()) {
      st->readers.clear();
      st->readers_plan = py::Ref();
      // Again: a unit run above may have completed the module already, and
      // a nested call given its class back (then `sub` would be ModuleType
      // itself, decremented once more each time: on 3.10-3.11, where static
      // types are not immortal, its count reached zero in a long sympy run
      // and the interpreter freed ModuleType: a crash).
      if (inputs && (inputs = inputs_only(module)) < 0) return -1;
      if (inputs) {
        PyTypeObject* sub = Py_TYPE(module);
        Py_SET_TYPE(module, &PyModule_Type);  // as object_set_class does
        Py_DECREF(sub);
      }
      // Complete: lazyexec's PEP 562 hooks leave the namespace, the module's
      // own come back in their place.
      for (const char* key : {"__getattr__", "__dir__"}) {
        PyObject* hook = PyDict_GetItemString(g, key);
        if (hook == nullptr || Py_TYPE(hook) != &hook_type) continue;  // not ours (rebound by the module)
        PyObject* own = PyDict_GetItemString(((HookObject*)hook)->own, key[2] == 'g' ? "getattr" : "dir");
        Ref keep = Ref::borrow(hook);
        if (own != nullptr && own != Py_None) {
          if (PyDict_SetItemString(g, key, own) < 0) return -1;
        } else if (PyDict_DelItemString(g, key) < 0) {
          PyErr_Clear();
        }
      }
      return 0;
    }
  }
  // A swapped class, or units still pending: runtime/module_class.py (which
  // registers itself as the hook) decides.
  try {
    Ref on_settled = import_attr("lazyexec.runtime.module_class", "on_settled");
    Ref r = py::check(PyObject_CallFunction(on_settled.get(), "OO", module, hot ? Py_True : Py_False));
  } catch (const py::PyError&) {
    return -1;
  }
  return 0;
}

int add_module_hook_types(PyObject* module) {
  for (PyTypeObject* t : {&hook_type, &watcher_type})
    if (PyType_Ready(t) < 0) return -1;
  module_hook_type = &hook_type;
  if (deferred == nullptr) {
    deferred = PyList_New(0);
    watched = PyDict_New();
    subclasses = PyDict_New();
    swapped = PyDict_New();
    Ref fn = Ref::steal(PyCFunction_New(&submodule_getattr_def, nullptr));
    submodule_getattr_method = fn ? PyInstanceMethod_New(fn.get()) : nullptr;
    if (!deferred || !watched || !subclasses || !swapped || !submodule_getattr_method) return -1;
    Ref set = Ref::steal(PyCFunction_New(&inputs_setattr_def, nullptr));
    Ref del = Ref::steal(PyCFunction_New(&inputs_delattr_def, nullptr));
    Ref set_method = set ? Ref::steal(PyInstanceMethod_New(set.get())) : Ref();
    Ref del_method = del ? Ref::steal(PyInstanceMethod_New(del.get())) : Ref();
    if (!set_method || !del_method) return -1;
    inputs_body = Py_BuildValue("{sOsO}", "__setattr__", set_method.get(), "__delattr__", del_method.get());
    if (inputs_body == nullptr) return -1;
    Ref bind = Ref::steal(PyCFunction_New(&binders_setattr_def, nullptr));
    Ref bind_method = bind ? Ref::steal(PyInstanceMethod_New(bind.get())) : Ref();
    binders = PyDict_New();
    if (!bind_method || binders == nullptr) return -1;
    binders_body = Py_BuildValue("{sO}", "__setattr__", bind_method.get());
    if (binders_body == nullptr) return -1;
  }
  if (PyModule_AddObjectRef(module, "ModuleHook", (PyObject*)&hook_type) < 0 ||
      PyModule_AddObjectRef(module, "PackageWatcher", (PyObject*)&watcher_type) < 0)
    return -1;
  return PyModule_AddFunctions(module, functions);
}

}  // namespace lazyexec::runtime
