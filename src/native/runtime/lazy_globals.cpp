#include "runtime/lazy_globals.h"

#include "runtime/module_hooks.h"
#include "runtime/module_state.h"

#include <algorithm>
#include <cstdlib>

#include <frameobject.h>

namespace lazyexec::runtime {
namespace {

PyTypeObject LazyGlobals = {PyVarObject_HEAD_INIT(nullptr, 0)};
PyMappingMethods mapping;
PySequenceMethods sequence;

// Whether `code` is `unit`'s own code or nested in it (a function, class
// body or comprehension the statement defines).
bool nested_in(PyObject* code, PyObject* unit, int depth = 0) {
  if (code == unit) return true;
  if (depth > 64 || !PyCode_Check(unit)) return false;
  py::Ref consts = py::Ref::steal(PyObject_GetAttrString(unit, "co_consts"));
  if (!consts || !PyTuple_Check(consts.get())) {
    PyErr_Clear();
    return false;
  }
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(consts.get()); ++i) {
    PyObject* c = PyTuple_GET_ITEM(consts.get(), i);
    if (PyCode_Check(c) && nested_in(code, c, depth + 1)) return true;
  }
  return false;
}

// A name of unit `id` is hidden from this thread because an earlier unit is
// running here (visible_limit): eagerly, while a statement runs, later names
// do not exist yet. That holds for the statement's own code and for code
// defined before it, which it may call. Code of this module defined by a
// statement after every running unit that hides `id` (a handler defined and
// registered further down, fired from inside a deferred import: ansible's
// `_on_collection_load_handler` reading `to_text` while the loader's deferred
// `from .filter import ...` runs) could not have run during that statement
// eagerly; it runs now because the module has finished, and once the module
// had finished eagerly every name was bound. Such code sees unit `id`.
bool seen_by_later_code(const ModuleState& st, int id) {
  if (st.running.empty() || id >= st.frontier) return false;
  PyFrameObject* frame = PyEval_GetFrame();  // borrowed: the code doing the lookup
  if (!frame) return false;
#if PY_VERSION_HEX >= 0x030B0000
  py::Ref globals = py::Ref::steal(PyFrame_GetGlobals(frame));
#else
  py::Ref globals = py::Ref::borrow(frame->f_globals);
#endif
  if (globals.get() != st.globals) return false;  // another module's code, or exec with other globals
  py::Ref code = py::Ref::steal(reinterpret_cast<PyObject*>(PyFrame_GetCode(frame)));
  int first = reinterpret_cast<PyCodeObject*>(code.get())->co_firstlineno;
  unsigned long me = PyThread_get_thread_ident();
  bool hidden = false;
  for (const auto& [thread, running] : st.running) {
    if (thread != me || running > id) continue;
    if (running == id) return false;  // its own unit: not bound yet, as eagerly
    hidden = true;
    const UnitRecord& r = st.units[(size_t)running];
    int line = std::atoi(st.where(r));  // "12 (def f)"
    if (line <= 0 || first <= line || !r.code || nested_in(code.get(), r.code.get())) return false;
  }
  return hidden;
}

}  // namespace

// A run step's code holds the eager statements of the top level from one
// force step to the next, with the lazy units between them left out, and its
// frontier is the unit after its last statement. Eagerly, while one of those
// statements runs, the lazy units after it are not bound yet: code it calls
// (`probe()` reading X before `X = 1`) and `"X" in globals()` must miss them.
// The run step's frame (found from the innermost frame outward, in this
// thread) is at a line of the running statement; a unit whose first line is
// after that line comes later. Units on that very line (`f(); X = 1`) stay
// visible, as before.
int segment_limit(const ModuleState& st, int limit) {
  PyFrameObject* top = PyEval_GetFrame();  // borrowed
  if (!top) return limit;
  py::Ref frame = py::Ref::borrow(reinterpret_cast<PyObject*>(top));
  int line = -1;
  for (int depth = 0; frame && depth < 1000; ++depth) {
    PyFrameObject* f = reinterpret_cast<PyFrameObject*>(frame.get());
    py::Ref code = py::Ref::steal(reinterpret_cast<PyObject*>(PyFrame_GetCode(f)));
    if (code.get() == st.segment.get()) {
      line = PyFrame_GetLineNumber(f);
      break;
    }
    frame = py::Ref::steal(reinterpret_cast<PyObject*>(PyFrame_GetBack(f)));
  }
  if (line <= 0) return limit;
  int lo = 0, hi = std::min(limit, (int)st.units.size());
  while (lo < hi) {  // units are in source order: the first one starting after `line`
    int mid = lo + (hi - lo) / 2;
    if (std::atoi(st.where(st.units[(size_t)mid])) > line) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

namespace {

PyObject* lookup(PyObject* self, PyObject* key) {
  ModuleState* st = state_of(self);
  // Not while one of its units runs, nor while its own top level runs (a
  // loop at the top level passes the threshold: html5lib.serializer's over
  // 2,231 entities): settling would run later units out of source order, and
  // a deferred import of its package, which is still initializing, stays
  // pending while the functions reading it are bound, so their LOAD_GLOBAL
  // on the exact dict raised NameError. A later lookup settles it.
  if (st && st->settle_threshold >= 0 && ++st->lookups >= st->settle_threshold && !st->settled &&
      st->running.empty() && !st->top_level_running) {
    settle(*st, "hot: trap lookups passed settle_threshold");
    st = state_of(self);
  }
  PyObject* v = PyDict_GetItemWithError(self, key);
  if (v && Py_TYPE(v) == module_hook_type) {
    // `__getattr__`/`__dir__` read by the module's own code (or copied out
    // of its namespace): the module's own hook, not lazyexec's standing in
    // for it. A module without one keeps lazyexec's there: the key is listed
    // (attrs' `globs.update(module.__dict__)` reads every listed key).
    if (PyObject* own = own_hook(v)) v = own;
  }
  if (v) return Py_NewRef(v);
  if (PyErr_Occurred()) return nullptr;
  if (st && !st->settled) {
    // A name whose unit is running in this very thread is not bound yet,
    // exactly as eagerly (dataclasses' ns.get(name) on its own class).
    int ran = materialize_name(*st, key, /*absent_if_running=*/true);
    if (ran < 0) return nullptr;
    if (ran == 0 && PyUnicode_Check(key) && !st->running.empty()) {
      auto it = st->pending.find(py::utf8(key));
      if (it != st->pending.end() && seen_by_later_code(*st, it->second)) {
        if (materialize(*st, it->second) < 0) return nullptr;
        ran = 1;
      }
    }
    if (ran > 0) {
      v = PyDict_GetItemWithError(self, key);
      if (v) return Py_NewRef(v);
      if (PyErr_Occurred()) return nullptr;
    } else if (PyObject* before = shadowed_value(*st, key)) {
      return Py_NewRef(before);  // a star import's binding, the later unit not reached yet
    }
  }
  if (st) ++st->misses;  // a builtin's lookup, mostly: LOAD_GLOBAL tries the builtins next
  return nullptr;  // no exception: absent
}

// d[key]: the interpreter's global and name lookups land here on a miss.
// Builtins are not answered here: `globals()["len"]` must stay a KeyError.
PyObject* subscript(PyObject* self, PyObject* key) {
  PyObject* v = lookup(self, key);
  if (!v && !PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, key);
  return v;
}

// del d[key] on a pending name cancels it: it is never resurrected.
// `vars(mod)[N] = v` (or `del`) from Python code, after the import: the
// pending units reading N at definition time run first, as for `mod.N = v`
// (STORE_GLOBAL and C code write the dict directly: no trap sees those).
int ass_subscript(PyObject* self, PyObject* key, PyObject* value) {
  if (ModuleState* rs = state_of(self);
      rs && !rs->top_level_running && (rs->readers_plan || !rs->readers.empty()) && force_readers(*rs, key) < 0)
    return -1;
  if (PyUnicode_Check(key) && (PyUnicode_GET_LENGTH(key) == 11 || PyUnicode_GET_LENGTH(key) == 7) &&
      (PyUnicode_CompareWithASCIIString(key, "__getattr__") == 0 ||
       PyUnicode_CompareWithASCIIString(key, "__dir__") == 0)) {
    // The module's own PEP 562 hook, written while lazyexec's holds the name.
    PyObject* current = PyDict_GetItemWithError(self, key);
    if (current == nullptr && PyErr_Occurred()) return -1;
    if (int done = store_own_hook(current, value)) return done < 0 ? -1 : 0;
  }
  if (value) return PyDict_SetItem(self, key, value);
  int has = PyDict_Contains(self, key);
  if (has < 0) return -1;
  ModuleState* st = state_of(self);
  if (st && PyUnicode_Check(key)) {
    std::string name = py::utf8(key);
    auto it = st->pending.find(name);
    if (it != st->pending.end()) {
      st->pending.erase(it);
      st->cancelled.insert(name);
      if (!has) return 0;
    }
  }
  if (!has) {
    PyErr_SetObject(PyExc_KeyError, key);
    return -1;
  }
  return PyDict_DelItem(self, key);
}

int contains(PyObject* self, PyObject* key) {
  int has = PyDict_Contains(self, key);
  if (has != 0) return has;
  ModuleState* st = state_of(self);
  if (!st || !PyUnicode_Check(key) || !may_be_pending(*st, key)) return 0;
  auto it = st->pending.find(py::utf8(key));
  if (it != st->pending.end() && it->second >= visible_limit(*st)) return shadowed_value(*st, key) ? 1 : 0;
  if (it == st->pending.end()) return 0;
  const UnitRecord& u = st->units[(size_t)it->second];
  return u.state == UnitRecord::Running && u.owner == PyThread_get_thread_ident() ? 0 : 1;
}

// Whole-namespace views (iteration, keys/items/values, copies) must show
// every name, as eagerly: doctest and pydoc walk module.__dict__.items().
int materialize_everything(PyObject* self) {
  ModuleState* st = state_of(self);
  if (!st || st->pending.empty()) return 0;
  if (!st->own_views.empty() && !st->running.empty()) {
    // The unit this thread runs innermost copies the namespace only for
    // names the analysis made it read first (Unit::own_views): as it is.
    unsigned long me = PyThread_get_thread_ident();
    for (auto it = st->running.rbegin(); it != st->running.rend(); ++it) {
      if (it->first != me) continue;
      for (int id : st->own_views)
        if (id == it->second) return 0;
      break;
    }
  }
  const int limit = visible_limit(*st);
  for (size_t i = 0; i < st->units.size() && (int)i < limit; ++i) {
    const UnitRecord& u = st->units[i];
    if (!u.code || u.state != UnitRecord::Pending || imports_initializing(u)) continue;
    bool binds_pending = false;
    for (std::string_view b : st->binds(u))
      if (st->pending.count(b)) binds_pending = true;
    if (binds_pending && materialize(*st, (int)i) < 0) return -1;
    st = state_of(self);
    if (!st) return 0;
  }
  return 0;
}

PyObject* dict_method(PyObject* self, const char* name) {
  if (materialize_everything(self) < 0) return nullptr;
  py::Ref method = py::Ref::steal(PyObject_GetAttrString((PyObject*)&PyDict_Type, name));
  if (!method) return nullptr;
  return PyObject_CallOneArg(method.get(), self);
}

PyObject* keys(PyObject* self, PyObject*) { return dict_method(self, "keys"); }
PyObject* items(PyObject* self, PyObject*) { return dict_method(self, "items"); }
PyObject* values(PyObject* self, PyObject*) { return dict_method(self, "values"); }
PyObject* copy(PyObject* self, PyObject*) { return dict_method(self, "copy"); }

PyObject* iter(PyObject* self) {
  if (materialize_everything(self) < 0) return nullptr;
  return PyDict_Type.tp_iter(self);
}

PyObject* get(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2) {
    PyErr_SetString(PyExc_TypeError, "get expected 1 or 2 arguments");
    return nullptr;
  }
  PyObject* v = lookup(self, args[0]);
  if (v || PyErr_Occurred()) return v;
  return Py_NewRef(nargs == 2 ? args[1] : Py_None);
}

// D.pop(k[,d]) and D.setdefault(k[,d]) see a pending name as bound, as
// eagerly (vars(module).pop(name)): its unit runs first.
PyObject* pop(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2) {
    PyErr_SetString(PyExc_TypeError, "pop expected 1 or 2 arguments");
    return nullptr;
  }
  PyObject* v = lookup(self, args[0]);
  if (v) {
    if (PyDict_DelItem(self, args[0]) < 0) {
      Py_DECREF(v);
      return nullptr;
    }
    return v;
  }
  if (PyErr_Occurred()) return nullptr;
  if (nargs == 2) return Py_NewRef(args[1]);
  PyErr_SetObject(PyExc_KeyError, args[0]);
  return nullptr;
}

PyObject* setdefault(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2) {
    PyErr_SetString(PyExc_TypeError, "setdefault expected 1 or 2 arguments");
    return nullptr;
  }
  PyObject* v = lookup(self, args[0]);
  if (v || PyErr_Occurred()) return v;
  PyObject* value = nargs == 2 ? args[1] : Py_None;
  if (PyDict_SetItem(self, args[0], value) < 0) return nullptr;
  return Py_NewRef(value);
}

PyMethodDef methods[] = {
    {"pop", (PyCFunction)(void (*)(void))pop, METH_FASTCALL, "D.pop(k[,d]): a pending name materializes first."},
    {"setdefault", (PyCFunction)(void (*)(void))setdefault, METH_FASTCALL,
     "D.setdefault(k[,d]): a pending name materializes first."},
    {"get", (PyCFunction)(void (*)(void))get, METH_FASTCALL, "D.get(k[,d]): pending names materialize first."},
    {"keys", keys, METH_NOARGS, "Every pending unit runs first."},
    {"items", items, METH_NOARGS, "Every pending unit runs first."},
    {"values", values, METH_NOARGS, "Every pending unit runs first."},
    {"copy", copy, METH_NOARGS, "Every pending unit runs first."},
    {nullptr, nullptr, 0, nullptr},
};

void dealloc(PyObject* self) {
  forget_state(self);
  PyDict_Type.tp_dealloc(self);
}

}  // namespace

bool ready_lazy_globals() {
  static int ready = 0;  // 0 unknown, 1 ready, -1 refused
  if (ready) return ready > 0;
  LazyGlobals.tp_name = "lazyexec.LazyGlobals";
  LazyGlobals.tp_basicsize = PyDict_Type.tp_basicsize;  // identical layout: settle swaps the type back
  LazyGlobals.tp_itemsize = PyDict_Type.tp_itemsize;
  LazyGlobals.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
  LazyGlobals.tp_base = &PyDict_Type;
  LazyGlobals.tp_dealloc = dealloc;
  LazyGlobals.tp_traverse = PyDict_Type.tp_traverse;
  LazyGlobals.tp_clear = PyDict_Type.tp_clear;
  LazyGlobals.tp_free = PyDict_Type.tp_free ? PyDict_Type.tp_free : PyObject_GC_Del;
  LazyGlobals.tp_doc = "A module namespace whose missing names may be pending lazy units.";
  mapping = *PyDict_Type.tp_as_mapping;
  mapping.mp_subscript = subscript;
  mapping.mp_ass_subscript = ass_subscript;
  LazyGlobals.tp_as_mapping = &mapping;
  sequence = *PyDict_Type.tp_as_sequence;
  sequence.sq_contains = contains;
  LazyGlobals.tp_as_sequence = &sequence;
  LazyGlobals.tp_methods = methods;
  LazyGlobals.tp_iter = iter;
  if (PyType_Ready(&LazyGlobals) < 0) return false;
  if (LazyGlobals.tp_basicsize != PyDict_Type.tp_basicsize ||
      (LazyGlobals.tp_flags & Py_TPFLAGS_HAVE_GC) != (PyDict_Type.tp_flags & Py_TPFLAGS_HAVE_GC)) {
    PyErr_WarnEx(PyExc_RuntimeWarning, "lazyexec: this interpreter's dict layout differs; modules load eagerly", 1);
    ready = -1;
    return false;
  }
  ready = 1;
  return true;
}

PyTypeObject* lazy_globals_type() { return &LazyGlobals; }

int make_trapping(PyObject* dict) {
  if (!ready_lazy_globals()) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "lazyexec: trapping dict unavailable");
    return -1;
  }
  if (Py_TYPE(dict) == &LazyGlobals) return 0;
  if (!PyDict_CheckExact(dict)) {
    PyErr_SetString(PyExc_TypeError, "lazyexec: module globals must be an exact dict");
    return -1;
  }
  Py_SET_TYPE(dict, &LazyGlobals);
  return 0;
}

}  // namespace lazyexec::runtime
