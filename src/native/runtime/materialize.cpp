// Materialization: run a pending unit on first use, exactly once, with its
// bindings collected in a scratch namespace and published only when the whole
// unit succeeded, and only for names still absent (later writes win).
#include <algorithm>
#include <chrono>
#include <memory>
#include <unordered_set>
#include <thread>
#include <string_view>
#include <utility>

#include "compile/unit_value.h"
#include "runtime/module_state.h"
// after Python.h (module_state.h): marshal.h needs its declarations
#include <marshal.h>

namespace lazyexec::runtime {
namespace {

std::unordered_map<PyObject*, std::unique_ptr<ModuleState>>& table() {
  static auto* t = new std::unordered_map<PyObject*, std::unique_ptr<ModuleState>>();
  return *t;
}

// Which unit each thread is waiting for, for deadlock detection: a pure walk
// over the wait-for graph (thread -> unit -> owner thread -> ...).
struct Wait {
  ModuleState* st;
  int unit;
};
std::unordered_map<unsigned long, Wait>& waits() {
  static auto* w = new std::unordered_map<unsigned long, Wait>();
  return *w;
}

std::string where_of(const ModuleState& st, const UnitRecord& u) {
  return (st.filename.empty() ? st.module : st.filename) + ":" + st.where(u);
}

// importlib's own waits: thread -> owners of the module locks it is blocked
// on, from a Python helper (importlib's bookkeeping differs by version).
PyObject* import_waits_fn = nullptr;

std::unordered_map<unsigned long, std::vector<unsigned long>> import_waits() {
  std::unordered_map<unsigned long, std::vector<unsigned long>> out;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (!import_waits_fn) {
    // A warm start has not loaded the Python runtime layer, which registers
    // the helper: load it now (a thread is waiting for another anyway).
    py::Ref runtime_layer = py::Ref::steal(PyImport_ImportModule("lazyexec.runtime"));
    PyErr_Clear();
  }
  if (!import_waits_fn) {
    PyErr_Restore(type, value, tb);
    return out;
  }
  py::Ref r = py::Ref::steal(PyObject_CallNoArgs(import_waits_fn));
  if (r && PyDict_Check(r.get())) {
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(r.get(), &pos, &k, &v)) {
      unsigned long tid = PyLong_AsUnsignedLong(k);
      py::Ref it = py::Ref::steal(PyObject_GetIter(v));
      while (it) {
        py::Ref o = py::Ref::steal(PyIter_Next(it.get()));
        if (!o) break;
        out[tid].push_back(PyLong_AsUnsignedLong(o.get()));
      }
    }
  }
  PyErr_Clear();
  PyErr_Restore(type, value, tb);
  return out;
}

// A pure walk over the wait-for graph: unit waits (thread -> unit -> owner
// thread) and importlib module-lock waits (thread -> lock owner threads).
// True when it leads back to `me`; `chain` names the path for the error.
bool would_deadlock(unsigned long me, ModuleState* st, int unit, std::string& chain, bool with_imports) {
  std::unordered_map<unsigned long, std::vector<unsigned long>> imports;
  if (with_imports) imports = import_waits();
  std::vector<std::pair<unsigned long, std::string>> work = {{st->units[(size_t)unit].owner, where_of(*st, st->units[(size_t)unit])}};
  std::unordered_set<unsigned long> seen;
  while (!work.empty()) {
    auto [thread, path] = work.back();
    work.pop_back();
    if (thread == me) {
      chain = path;
      return true;
    }
    if (!seen.insert(thread).second) continue;
    auto w = waits().find(thread);
    if (w != waits().end()) {
      const UnitRecord& next = w->second.st->units[(size_t)w->second.unit];
      if (next.state == UnitRecord::Running) work.push_back({next.owner, path + " -> " + where_of(*w->second.st, next)});
    }
    auto im = imports.find(thread);
    if (im != imports.end())
      for (unsigned long owner : im->second) work.push_back({owner, path + " -> an import (module lock)"});
  }
  return false;
}


// Unit code kept marshalled until first use: the bytes of an artifact's
// plan, or any other read-only buffer (an image's unit code, read from its
// mapping without a copy: image/image_object.cpp). Neither a code object
// nor a constant's (value,).
bool marshalled(PyObject* code) { return !PyCode_Check(code) && !PyTuple_Check(code) && PyObject_CheckBuffer(code); }

// The code object unmarshalled from a marshalled unit; null with an
// exception set (the buffer refused, e.g. an image's hash check, or bad data).
PyObject* unmarshal_unit(PyObject* code) {
  Py_buffer view;
  if (PyObject_GetBuffer(code, &view, PyBUF_SIMPLE) < 0) return nullptr;
  PyObject* obj = PyMarshal_ReadObjectFromString(static_cast<const char*>(view.buf), view.len);
  PyBuffer_Release(&view);
  return obj;
}

// The stream of code objects that unit `u`, a group member, shares with the
// module's other members (the units the import runs): unmarshalled once, each
// member still holding the stream gets its item. 0 when done; -1 with an
// exception set and no member changed when the stream is damaged.
int unmarshal_group(ModuleState& st, const UnitRecord& u) {
  py::Ref blob = u.code;  // the members' shared stream: kept while they change
  py::Ref codes = py::Ref::steal(unmarshal_unit(blob.get()));
  if (!codes) return -1;
  bool valid = PyTuple_Check(codes.get());
  for (const auto& v : st.units) {
    if (!valid) break;
    if (v.group_index < 0 || v.code.get() != blob.get()) continue;
    valid = v.group_index < PyTuple_GET_SIZE(codes.get()) && PyCode_Check(PyTuple_GET_ITEM(codes.get(), v.group_index));
  }
  if (!valid) {
    PyErr_SetString(PyExc_ImportError, "lazyexec: bad marshal data for a group of units");
    return -1;
  }
  for (auto& v : st.units)
    if (v.group_index >= 0 && v.code.get() == blob.get())
      v.code = py::Ref::borrow(PyTuple_GET_ITEM(codes.get(), v.group_index));
  return 0;
}

void add_note(const std::string& note) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (value && PyObject_HasAttrString(value, "add_note")) {  // PEP 678, 3.11+
    PyObject* r = PyObject_CallMethod(value, "add_note", "s", note.c_str());
    if (r) Py_DECREF(r);
    else PyErr_Clear();
  }
  if (tb && value) PyException_SetTraceback(value, tb);
  PyErr_Restore(type, value, tb);
}

// `lazyexec why`: see module_state.h.
bool recording = false;

// A new str from UTF-8 (invalid bytes replaced): null only when out of memory.
PyObject* new_str(const std::string& s) { return PyUnicode_DecodeUTF8(s.data(), (Py_ssize_t)s.size(), "replace"); }
struct Materializing {
  PyObject* code;  // borrowed: the unit keeps its code while it runs
  ModuleState* st;
  int unit;
  std::string trigger;
};
thread_local std::vector<Materializing> materializing_now;
thread_local std::string next_trigger;  // set by materialize_name, taken by run_unit

}  // namespace

void set_recording(bool on) { recording = on; }

PyObject* materializing() {
  PyObject* out = PyList_New(0);
  if (!out) return nullptr;
  for (const Materializing& m : materializing_now) {
    const UnitRecord& u = m.st->units[(size_t)m.unit];
    PyObject* item = Py_BuildValue("(ONNNN)", m.code, new_str(m.st->module), new_str(m.st->filename), new_str(m.st->where(u)),
                                   new_str(m.trigger));
    if (!item || PyList_Append(out, item) < 0) {
      Py_XDECREF(item);
      Py_DECREF(out);
      return nullptr;
    }
    Py_DECREF(item);
  }
  return out;
}

namespace {
// reversed(d) as a plain dict, whatever d's type: keys newest first.
py::Ref newest_first(PyObject* dict) {
  static PyObject* reversed = nullptr;  // dict.__reversed__, a method descriptor
  if (!reversed) {
    reversed = PyObject_GetAttrString((PyObject*)&PyDict_Type, "__reversed__");
    if (!reversed) return {};
  }
  return py::Ref::steal(PyObject_CallOneArg(reversed, dict));
}
}  // namespace

py::Ref last_key(PyObject* dict) {
  py::Ref it = newest_first(dict);
  if (!it) return {};
  py::Ref k = py::Ref::steal(PyIter_Next(it.get()));
  if (!k && !PyErr_Occurred()) return py::Ref::borrow(Py_None);  // empty dict
  return k;
}

bool inserted_since(PyObject* dict, PyObject* last, std::vector<py::Ref>& out) {
  // Dicts keep insertion order: the keys after `last` were inserted since.
  py::Ref it = newest_first(dict);
  if (!it) return false;
  while (py::Ref k = py::Ref::steal(PyIter_Next(it.get()))) {
    if (k.get() == last) return true;
    out.push_back(k);
  }
  if (PyErr_Occurred()) return false;
  if (last == Py_None) return true;  // the dict was empty
  out.clear();  // `last` itself went away: no reliable answer
  return false;
}

namespace {

// `from .N import ...` binding N in package P (a "binder"): eagerly the
// statement loads P.N, importlib binds that submodule on P, and the
// statement then binds N over it. So P's own submodule found under N (bound
// by an import above the statement, maybe in the same run step) never
// outlives the unit's binding. `current` is what the namespace holds.
bool own_submodule_under(const ModuleState& st, const UnitRecord& u, PyObject* name, PyObject* current) {
  if (current == nullptr || !PyModule_Check(current) || !u.imports || u.imports->modules.empty()) return false;
  Py_ssize_t n = 0;
  const char* bound = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &n) : nullptr;
  if (bound == nullptr) {
    PyErr_Clear();
    return false;
  }
  const std::string& from = u.imports->modules[0];
  if (from.size() != st.module.size() + 1 + (size_t)n || from.compare(0, st.module.size(), st.module) != 0 ||
      from[st.module.size()] != '.' || from.compare(st.module.size() + 1, (size_t)n, bound, (size_t)n) != 0)
    return false;
  PyObject* modules = PyImport_GetModuleDict();
  py::Ref key = py::Ref::steal(PyUnicode_FromStringAndSize(from.data(), (Py_ssize_t)from.size()));
  if (!key) {
    PyErr_Clear();
    return false;
  }
  PyObject* loaded = PyDict_GetItemWithError(modules, key.get());  // borrowed
  if (loaded == nullptr) PyErr_Clear();
  return loaded == current;
}

}  // namespace

int supersede(ModuleState& st, PyObject* last, int first_later) {
  if (!last || st.pending.empty()) return 0;
  std::vector<py::Ref> inserted;
  if (!inserted_since(st.globals, last, inserted)) {
    PyErr_Clear();
    return 0;
  }
  for (const py::Ref& k : inserted) {
    if (!PyUnicode_Check(k.get())) continue;
    auto it = st.pending.find(py::utf8(k.get()));
    if (it == st.pending.end()) continue;
    const UnitRecord& u = st.units[(size_t)it->second];
    if (u.state != UnitRecord::Pending) continue;
    // A pending unit within this run step (between two of its eager
    // statements) binds over the package's own submodule too.
    if (it->second < first_later &&
        !own_submodule_under(st, u, k.get(), PyDict_GetItemWithError(st.globals, k.get()))) {
      if (PyErr_Occurred()) return -1;
      // Otherwise the eager part's binding is the name's value from now on
      // (an accelerator's import guard over the pure-Python definition:
      // functools' `partial`). The unit's value of it never shows again,
      // also once the name is deleted: eagerly `del functools.partial`
      // leaves no `partial`. The name is cancelled, as a deletion before
      // first use cancels it (the unit itself may still run for its other
      // names, and publishes none of the cancelled ones).
      st.cancelled.emplace(it->first);
      st.pending.erase(it);
      continue;
    }
    if (PyErr_Occurred()) return -1;
    // Statements between this part and that unit still read this value.
    if (PyObject* value = PyDict_GetItemWithError(st.globals, k.get()))
      st.shadowed[std::string(it->first)] = py::Ref::borrow(value);
    else if (PyErr_Occurred()) return -1;
    if (PyDict_DelItem(st.globals, k.get()) < 0) return -1;
  }
  return 0;
}

PyObject* shadowed_value(const ModuleState& st, PyObject* name) {
  if (st.shadowed.empty() || !PyUnicode_Check(name)) return nullptr;
  std::string key = py::utf8(name);
  auto s = st.shadowed.find(key);
  if (s == st.shadowed.end()) return nullptr;
  auto it = st.pending.find(key);
  if (it == st.pending.end() || it->second < visible_limit(st)) return nullptr;  // ran, cancelled, or reached
  return s->second.get();
}

namespace {

// Publishes a unit's bindings. Names bound in the namespace while the unit
// ran (importlib binding `pkg.sub` as the unit's `from .sub import x` loads
// it, or anything the imported code did) happened, eagerly, at the
// statement's own position: its own bindings replace them, and a later
// pending unit's names are unbound again so that unit's binding wins.
int publish(ModuleState& st, UnitRecord& u, int id, PyObject* scratch, PyObject* last) {
  // Almost always nothing was inserted meanwhile: the names are compared as
  // objects (no conversion, no set) and only when something was.
  std::vector<py::Ref> inserted;
  if (last && !inserted_since(st.globals, last, inserted)) {
    PyErr_Clear();
    inserted.clear();
  }
  auto inserted_during = [&inserted](PyObject* key) {
    for (const py::Ref& k : inserted) {
      if (k.get() == key) return true;
      if (PyUnicode_Check(k.get()) && PyUnicode_Compare(k.get(), key) == 0) return true;  // str against str: no error
    }
    return false;
  };
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(scratch, &pos, &key, &value)) {
    // The namespace holds this very object already (the module's identity
    // seeded into the scratch namespace, or a name the run bound in both):
    // nothing to publish, and no conversion of the name.
    PyObject* current = PyDict_GetItemWithError(st.globals, key);  // borrowed; exact dict lookup, no trap
    if (current == value) continue;
    if (current == nullptr && PyErr_Occurred()) return -1;
    if (!PyUnicode_Check(key)) continue;  // a unit binds names only
    if (PyDict_Check(value) && PyUnicode_CompareWithASCIIString(key, "__annotations__") == 0) {
      // A unit's annotated assignment: merge into the module's annotations.
      PyObject* ann = current;
      if (!ann) {
        py::Ref fresh = py::check(PyDict_New());
        if (PyDict_SetItem(st.globals, key, fresh.get()) < 0) return -1;
        ann = fresh.get();
      }
      if (PyDict_Check(ann) && PyDict_Merge(ann, value, 0) < 0) return -1;
      continue;
    }
    if (!st.cancelled.empty() && st.cancelled.count(py::utf8(key))) continue;  // deleted before first use
    bool has = current != nullptr;
    // A global write, `mod.x = ...` or star import came first: it stays,
    // but for the package's own submodule under a name the unit binds.
    if (has && !inserted_during(key) && !own_submodule_under(st, u, key, current)) continue;
    if (PyDict_SetItem(st.globals, key, value) < 0) return -1;
  }
  for (const py::Ref& k : inserted) {
    if (!PyUnicode_Check(k.get()) || PyDict_Contains(scratch, k.get()) == 1) continue;
    auto it = st.pending.find(py::utf8(k.get()));
    if (it == st.pending.end() || it->second <= id) continue;
    if (st.units[(size_t)it->second].state != UnitRecord::Pending) continue;
    if (PyDict_DelItem(st.globals, k.get()) < 0) return -1;
  }
  for (std::string_view b : st.binds(u)) {
    auto it = st.pending.find(b);
    if (it != st.pending.end() && &st.units[(size_t)it->second] == &u) st.pending.erase(it);
  }
  return 0;
}

// Binds `value` under `name` (a str) for a unit that ran no Python code of
// its own (a plain function, a constant), as publish() would: only if the
// name is still absent and was not deleted before first use. Nothing else
// ran meanwhile, so no namespace diff is needed.
int publish_binding(ModuleState& st, UnitRecord& u, PyObject* name, PyObject* value) {
  PyObject* current = PyDict_GetItemWithError(st.globals, name);  // borrowed; exact dict lookup, no trap
  if (current == nullptr) {
    if (PyErr_Occurred()) return -1;
    bool cancelled = !st.cancelled.empty() && st.cancelled.count(py::utf8(name));  // deleted before first use
    if (!cancelled && PyDict_SetItem(st.globals, name, value) < 0) return -1;
  } else if (current != value && own_submodule_under(st, u, name, current)) {
    if (PyDict_SetItem(st.globals, name, value) < 0) return -1;  // binds over its own submodule (publish())
  }  // else a global write, `mod.x = ...` or star import came first
  for (std::string_view b : st.binds(u)) {
    auto it = st.pending.find(b);
    if (it != st.pending.end() && &st.units[(size_t)it->second] == &u) st.pending.erase(it);
  }
  return 0;
}

// A function unit (UnitRecord::Function) whose code is unmarshalled: the
// function made in the module's globals (PyFunction_New, as MAKE_FUNCTION;
// 3.10's takes the qualified name, a top-level def's own name) and bound
// under its name.
int publish_function(ModuleState& st, UnitRecord& u) {
  auto* co = reinterpret_cast<PyCodeObject*>(u.code.get());
  PyObject* name = co->co_name;
#if PY_VERSION_HEX < 0x030B0000
  py::Ref fn = py::Ref::steal(PyFunction_NewWithQualName(u.code.get(), st.globals, name));
#else
  py::Ref fn = py::Ref::steal(PyFunction_New(u.code.get(), st.globals));
#endif
  if (!fn) return -1;
  return publish_binding(st, u, name, fn.get());
}

// A constant's unit (UnitRecord::Value): its value unmarshalled (no Python
// code runs) and bound under its interned name, as STORE_NAME would.
int publish_value(ModuleState& st, UnitRecord& u) {
  PyObject* blob = PyTuple_GET_ITEM(u.code.get(), 0);
  py::Ref value = py::Ref::steal(PyMarshal_ReadObjectFromString(PyBytes_AS_STRING(blob), PyBytes_GET_SIZE(blob)));
  if (!value) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ImportError, "lazyexec: bad marshal data for a unit");
    return -1;
  }
  py::Ref name = py::Ref::steal(PyUnicode_InternFromString(st.binds(u).front()));
  if (!name) return -1;
  return publish_binding(st, u, name.get(), value.get());
}

// An interned str kept for the process (a name looked up on every unit run:
// no new str each time). Null with an exception set when out of memory.
PyObject* interned(PyObject*& slot, const char* text) {
  if (slot == nullptr) slot = PyUnicode_InternFromString(text);
  return slot;
}

// The namespace's builtins as a frame running in it gets them
// (`__builtins__`, a module or its dict; else the interpreter's): borrowed.
PyObject* builtins_of(PyObject* globals) {
  static PyObject* key = nullptr;
  PyObject* b = interned(key, "__builtins__") ? PyDict_GetItemWithError(globals, key) : nullptr;  // exact lookup, no trap
  if (b != nullptr && PyModule_Check(b)) b = PyModule_GetDict(b);
  if (b == nullptr || !PyDict_Check(b)) {
    PyErr_Clear();
    b = PyEval_GetBuiltins();
  }
  return b;
}

// While a unit's code runs (a scope): names of units later in the source are
// not bound yet in this thread, as eagerly (see visible_limit), and the
// recorder knows which unit is materializing.
struct RunningUnit {
  ModuleState& st;
  int id;
  RunningUnit(ModuleState& state, UnitRecord& u, int unit, std::string& trigger) : st(state), id(unit) {
    st.running.emplace_back(u.owner, id);
    if (recording) materializing_now.push_back({u.code.get(), &st, id, std::move(trigger)});
  }
  ~RunningUnit() {
    if (!materializing_now.empty() && materializing_now.back().st == &st && materializing_now.back().unit == id)
      materializing_now.pop_back();
    for (auto it = st.running.end(); it != st.running.begin();) {
      --it;
      if (it->second == id) {
        st.running.erase(it);
        break;
      }
    }
  }
  RunningUnit(const RunningUnit&) = delete;
  RunningUnit& operator=(const RunningUnit&) = delete;
};

// A plain class's unit (UnitRecord::Class) whose body code is unmarshalled:
// built as LOAD_BUILD_CLASS, MAKE_FUNCTION and CALL build it
// (`__build_class__(function of the body, name, *bases)`, each base read as
// LOAD_NAME reads it at the top level: the namespace, then builtins), with
// no unit code object, frame or scratch namespace of its own; then
// published as any unit (names the body's run inserted meanwhile give way).
int run_class(ModuleState& st, UnitRecord& u, int id, std::string& trigger) {
  PyObject* g = st.globals;
  auto* co = reinterpret_cast<PyCodeObject*>(u.code.get());
  py::Ref name = py::Ref::steal(PyUnicode_InternFromString(st.binds(u).front()));
  if (!name) return -1;
  PyObject* builtins = builtins_of(g);
  static PyObject* build_key = nullptr;
  if (!interned(build_key, "__build_class__")) return -1;
  PyObject* build = PyDict_GetItemWithError(builtins, build_key);
  if (build == nullptr) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_NameError, "__build_class__ not found");
    return -1;
  }
  py::Ref keep_build = py::Ref::borrow(build);
#if PY_VERSION_HEX < 0x030B0000
  py::Ref fn = py::Ref::steal(PyFunction_NewWithQualName(u.code.get(), g, co->co_name));
#else
  (void)co;
  py::Ref fn = py::Ref::steal(PyFunction_New(u.code.get(), g));
#endif
  if (!fn) return -1;
  Py_ssize_t nb = u.bases ? PyTuple_GET_SIZE(u.bases.get()) : 0;
  std::vector<py::Ref> args;
  args.reserve((size_t)nb + 2);
  args.push_back(fn);
  args.push_back(name);
  for (Py_ssize_t i = 0; i < nb; ++i) {
    PyObject* base_name = PyTuple_GET_ITEM(u.bases.get(), i);
    PyObject* v = PyDict_GetItemWithError(g, base_name);  // exact lookup, as LOAD_NAME: no trap
    if (v == nullptr && !PyErr_Occurred()) v = PyDict_GetItemWithError(builtins, base_name);
    if (v == nullptr) {
      if (!PyErr_Occurred()) PyErr_Format(PyExc_NameError, "name '%U' is not defined", base_name);
      return -1;
    }
    args.push_back(py::Ref::borrow(v));
  }
  std::vector<PyObject*> argv;
  for (const py::Ref& a : args) argv.push_back(a.get());
  py::Ref last = last_key(g);  // what the namespace held before the body ran
  if (!last) PyErr_Clear();
  py::Ref cls;
  {
    RunningUnit running(st, u, id, trigger);
    cls = py::Ref::steal(PyObject_Vectorcall(build, argv.data(), argv.size(), nullptr));
  }
  if (!cls) return -1;
  // Almost always the body's run inserted nothing into the namespace: the
  // class is bound as a single name is (the same checks as publish()).
  if (last) {
    py::Ref now = last_key(g);
    if (now && now.get() == last.get()) return publish_binding(st, u, name.get(), cls.get());
    if (!now) PyErr_Clear();
  }
  py::Ref scratch = py::Ref::steal(PyDict_New());
  if (!scratch || PyDict_SetItem(scratch.get(), name.get(), cls.get()) < 0) return -1;
  return publish(st, u, id, scratch.get(), last.get());
}

// The unit's locals start with the module's identity: eagerly a top-level
// statement's locals are the module's namespace, and an `__import__` hook is
// handed them (IMPORT_NAME passes f_locals), as click's tests read
// `__name__` there. publish() leaves these names alone: they are in the
// namespace already (dunder assignments are never deferred).
int seed_scratch(PyObject* globals, PyObject* scratch) {
  static PyObject* names[6] = {};
  if (names[0] == nullptr) {
    const char* raw[6] = {"__name__", "__package__", "__spec__", "__loader__", "__file__", "__path__"};
    for (int i = 0; i < 6; ++i)
      if (!(names[i] = PyUnicode_InternFromString(raw[i]))) return -1;  // kept for the process
  }
  for (PyObject* name : names) {
    PyObject* value = PyDict_GetItemWithError(globals, name);  // borrowed; an exact dict lookup, no trap
    if (value == nullptr) {
      if (PyErr_Occurred()) return -1;
      continue;
    }
    if (PyDict_SetItem(scratch, name, value) < 0) return -1;
  }
  return 0;
}

// A unit is done: once nothing is pending the module settles (or, settled
// already or never settling on its own, gets its hooks back).
void after_done(ModuleState& st) {
  if (!st.pending.empty()) return;
  if (st.settle_threshold >= 0 && !st.settled) settle(st, "complete: nothing pending");
  else notify_settled(st);
}

// A unit's code run in a scratch namespace, then published. 0 when done, -1
// with an exception set.
int run_code(ModuleState& st, UnitRecord& u, int id, std::string& trigger) {
  int rc = -1;
  py::Ref last = last_key(st.globals);  // what the namespace held before the run
  if (!last) PyErr_Clear();
  py::Ref scratch = py::Ref::steal(PyDict_New());
  if (scratch && seed_scratch(st.globals, scratch.get()) < 0) scratch = py::Ref();
  PyObject* result;
  {
    RunningUnit running(st, u, id, trigger);
    result = scratch ? PyEval_EvalCode(u.code.get(), st.globals, scratch.get()) : nullptr;
  }
  // `st.units` never resizes after install, so `u` stays valid across Python code.
  if (result) {
    Py_DECREF(result);
    rc = publish(st, u, id, scratch.get(), last.get());
  }
  return rc;
}

int run_unit(ModuleState& st, int id) {
  UnitRecord& u = st.units[(size_t)id];
  std::string trigger;
  if (recording) trigger = std::exchange(next_trigger, std::string());
  for (int dep : st.deps(u)) {
    if (recording) next_trigger = std::string("(read when ") + st.where(u) + " is defined)";
    if (materialize(st, dep) < 0) {
      add_note("lazyexec: while materializing " + where_of(st, u) + ", which reads it when defined");
      return -1;
    }
  }
  if (u.state != UnitRecord::Pending) return 0;  // a dep's run may have finished it (shared cycle)
  u.state = UnitRecord::Running;
  u.owner = PyThread_get_thread_ident();
  auto start = std::chrono::steady_clock::now();
  if (u.group_index >= 0 && marshalled(u.code.get())) {  // the import's units' shared stream
    if (unmarshal_group(st, u) < 0) {
      u.state = UnitRecord::Pending;
      u.owner = 0;
      return -1;
    }
  } else if (marshalled(u.code.get())) {  // kept marshalled until first use
    PyObject* code = unmarshal_unit(u.code.get());
    if (!code || !PyCode_Check(code)) {
      Py_XDECREF(code);
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_ImportError, "lazyexec: bad marshal data for a unit");
      u.state = UnitRecord::Pending;
      u.owner = 0;
      return -1;
    }
    u.code = py::Ref::steal(code);
  }
  int rc = -1;
  if (u.kind == UnitRecord::Function) {
    // A plain `def`: the function made as MAKE_FUNCTION makes it, no unit
    // code, frame or scratch namespace; nothing else runs meanwhile.
    rc = publish_function(st, u);
  } else if (u.kind == UnitRecord::Value) {
    rc = publish_value(st, u);  // a constant stored as its value: unmarshalled and bound, no code runs
  } else if (u.kind == UnitRecord::Class) {
    rc = run_class(st, u, id, trigger);  // a plain class: built from its body, no unit code
  } else {
    rc = run_code(st, u, id, trigger);
  }
  st.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (rc < 0) {
    u.state = UnitRecord::Pending;  // retried on next access
    u.owner = 0;
    st.failures++;
    add_note("lazyexec: raised while materializing " + where_of(st, u) + " (a lazily deferred top-level statement)");
    return -1;
  }
  u.state = UnitRecord::Done;
  u.owner = 0;
  // Its code ran: nothing reads it again (every use is of a pending unit).
  // Eagerly the module's code object goes once it ran; kept here, each unit
  // run held its code (a class body's code with its consts) for the life of
  // the module. A plain function's code is the function's own. None, not
  // null: the unit stays counted as deferred (module_stats).
  if (u.kind != UnitRecord::Function) u.code = py::Ref::borrow(Py_None);
  st.materialized++;
  after_done(st);
  return 0;
}

}  // namespace

void set_import_waits(PyObject* fn) {
  Py_XINCREF(fn);
  Py_XSETREF(import_waits_fn, fn);
}

namespace {
// The last namespace looked up and its state: a module's own global lookups
// (every one reaches the trap on a non-exact dict) ask for the same one in a
// row. Reset whenever the table changes.
PyObject* last_globals = nullptr;
ModuleState* last_state = nullptr;
}  // namespace

ModuleState* state_of(PyObject* globals) {
  if (globals == last_globals) return last_state;
  auto it = table().find(globals);
  ModuleState* st = it == table().end() ? nullptr : it->second.get();
  last_globals = globals;
  last_state = st;
  return st;
}

ModuleState& create_state(PyObject* globals) {
  auto& slot = table()[globals];
  slot = std::make_unique<ModuleState>();
  slot->globals = globals;
  last_globals = nullptr;
  last_state = nullptr;
  return *slot;
}

void forget_state(PyObject* globals) {
  table().erase(globals);
  last_globals = nullptr;
  last_state = nullptr;
}

void add_pending_hashed(ModuleState& st, Py_hash_t h, std::string_view key, int id) {
  size_t bit = (size_t)h & (ModuleState::kFilterBits - 1);
  st.pending_filter[bit >> 6] |= uint64_t{1} << (bit & 63);
  st.pending[key] = id;
}

void add_pending(ModuleState& st, PyObject* name, std::string_view key, int id) {
  Py_hash_t h = PyObject_Hash(name);
  if (h == -1) throw py::PyError{};
  add_pending_hashed(st, h, key, id);
}

bool imports_initializing(const UnitRecord& u) {
  if (!u.imports) return false;
  PyObject* modules = PyImport_GetModuleDict();
  for (const auto& name : u.imports->modules) {
    PyObject* m = PyDict_GetItemString(modules, name.c_str());  // borrowed
    if (m == nullptr) continue;
    py::Ref spec = py::Ref::steal(PyObject_GetAttrString(m, "__spec__"));
    py::Ref flag = spec && spec.get() != Py_None ? py::Ref::steal(PyObject_GetAttrString(spec.get(), "_initializing"))
                                                 : py::Ref();
    PyErr_Clear();
    if (flag && PyObject_IsTrue(flag.get()) == 1) return true;
    PyErr_Clear();
  }
  return false;
}

namespace {
// A unit's kind, from its `where` ("12 (from-import x)": compile/__init__.py
// writes the analyzer's kind there).
std::string_view unit_kind(const ModuleState& st, const UnitRecord& u) {
  std::string_view w = st.where(u);
  size_t open = w.find('(');
  if (open == std::string_view::npos) return {};
  w.remove_prefix(open + 1);
  return w.substr(0, w.find_first_of(" )"));
}

bool loads_nothing_new(const ModuleState& st, const UnitRecord& u, int depth = 0);

// Whether running pending unit `id` of `st`, with the pending units it reads
// when defined, would load no module (depth bounds the walk across modules).
bool unit_loads_nothing_new(const ModuleState& st, int id, int depth) {
  const UnitRecord& u = st.units[(size_t)id];
  if (u.state != UnitRecord::Pending || !u.code) return true;
  if (!loads_nothing_new(st, u, depth)) return false;
  for (int dep : st.deps(u))
    if (dep != id && !unit_loads_nothing_new(st, dep, depth)) return false;
  return true;
}

// Whether running pending unit `u` now would load no module: it imports
// nothing, or every module it imports is loaded already (for `from m import
// name`: name bound in m, a pending unit of m that loads nothing new in turn,
// or the submodule m.name loaded).
bool loads_nothing_new(const ModuleState& st, const UnitRecord& u, int depth) {
  if (!u.imports) {
    std::string_view kind = unit_kind(st, u);
    return kind != "import" && kind != "from-import" && kind != "try";  // modules not recorded: unknown
  }
  PyObject* modules = PyImport_GetModuleDict();
  PyObject* m = nullptr;
  const UnitImports& imports = *u.imports;
  for (const auto& name : imports.modules) {
    m = PyDict_GetItemString(modules, name.c_str());  // borrowed
    if (m == nullptr || m == Py_None) return false;
  }
  if (imports.attr.empty()) return true;
  // `from m import attr`: bound in m already, or the submodule m.attr loaded.
  if (imports.modules.size() == 1 && PyModule_Check(m)) {
    PyObject* ns = PyModule_GetDict(m);
    PyObject* found = PyDict_GetItemString(ns, imports.attr.c_str());  // exact lookup, no trap
    if (found != nullptr) return true;
    const ModuleState* other = ns ? state_of(ns) : nullptr;
    if (other && depth < 4) {
      auto it = other->pending.find(imports.attr);
      if (it != other->pending.end()) return unit_loads_nothing_new(*other, it->second, depth + 1);
    }
  }
  PyObject* sub = PyDict_GetItemString(modules, (imports.modules.back() + "." + imports.attr).c_str());
  return sub != nullptr && sub != Py_None;
}
}  // namespace

namespace {
// The usage profile's cost model, in instructions (callgrind, Debian's
// 3.11.2; docs/startup.md "The usage profile"): generated modules of 40
// units each (20 or 50 of them), every unit used or none, lazy against
// eager. A unit that ran cost more lazily than eagerly: a plain function
// +15 K (224 bytes of marshalled code) to +43 K (1.5 KiB), a function with
// defaults (a unit code object around it) +29 K (456 bytes) to +57 K
// (1.7 KiB), 13 K an import, 23 K a small class: about 20 instructions
// per byte, because a unit's code unmarshalled alone re-creates and
// re-interns every name, constant and the file name that the module's
// `.pyc` shares (40 such units unmarshal in 4 times the instructions of the
// module's whole code). One that stayed pending saved -0.4 K to 6.3 K (a
// function, by size), 68 K (a small class with three methods), nothing (an
// import of a loaded module). The figures below err toward lazy: the lazy
// side's are below the ones measured, and a kind whose cost is unknown (a
// class, a computed assignment: `re.compile(...)`) counts as expensive to
// run.
constexpr long kModuleCost = 20'000;   // the plan, trapping namespace, hooks
// A global lookup through the trap (the module's own code, its eager part
// included, until it settles): the interpreter specializes LOAD_GLOBAL only
// on exact dicts, so each one goes through PyObject_GetItem to the trap, and
// a builtin's misses the namespace first (a KeyError set and cleared, then
// the builtins dict). Measured (10,000 lookups of a lazy module against the
// same module loaded eagerly): +213 a module global, +503 a builtin.
// typing's import alone makes about 2,200 of them.
constexpr long kPerLookup = 200;
// A lookup the trap misses (a builtin's: KeyError set, matched and cleared,
// then the builtins dict) costs about 300 more.
constexpr long kPerMiss = 300;
// A deferred unit's record in the plan, decoded and installed at import
// whether it runs or not (docs/benchmarks.md, per-unit cost, third pass:
// 2.1 K decoding, 1.8 K installing on 3.11.7; rounded down).
constexpr long kUnitRecordCost = 3'000;
constexpr long kRanUnitCost = 12'000;  // a unit run lazily: code unmarshalled alone, frame, scratch, publish
constexpr long kRanValueCost = 2'000;  // a constant's value unmarshalled and published
constexpr long kRanFunctionCost = 6'000;  // a plain function's code unmarshalled alone, the function published
constexpr long kRanClassCost = 8'000;  // a plain class's body unmarshalled alone, built and published
constexpr long kPerByteRan = 20;       // unmarshalling one unit's code alone shares no names with the rest
// A class body's methods share names and the file name with each other:
// argparse's 27 classes (and its other units) unmarshal alone in 1.35
// times the instructions of its whole `.pyc`, zipfile's in 1.36 times.
constexpr long kPerByteClass = 6;
constexpr long kPerByteGroup = 2;      // a group's stream is unmarshalled once, its names shared as in the .pyc

// What running unit `u` lazily cost beyond running it eagerly.
long lazy_cost(const ModuleState& st, const UnitRecord& u) {
  const long per_byte = u.group_index >= 0 ? kPerByteGroup : kPerByteRan;
  if (u.kind == UnitRecord::Value) return kRanValueCost;
  if (u.kind == UnitRecord::Function) return kRanFunctionCost + per_byte * (long)u.size;
  if (u.kind == UnitRecord::Class)
    return kRanClassCost + (u.group_index >= 0 ? kPerByteGroup : kPerByteClass) * (long)u.size;
  if (u.group_index < 0 && unit_kind(st, u) == "class") return kRanUnitCost + kPerByteClass * (long)u.size;
  return kRanUnitCost + per_byte * (long)u.size;
}

// abc.ABCMeta when abc is loaded (borrowed), else null: its classes cost
// about what a plain class does (ABCMeta.__new__ is type's plus _abc_init
// in C; measured 41 against 52 us for a class of two methods).
PyObject* abc_meta() {
  PyObject* abc = PyDict_GetItemString(PyImport_GetModuleDict(), "abc");  // borrowed
  PyObject* ns = abc && PyModule_Check(abc) ? PyModule_GetDict(abc) : nullptr;
  return ns ? PyDict_GetItemString(ns, "ABCMeta") : nullptr;
}

// The pending import unit of `st` binding `name`, or null.
const UnitRecord* pending_import(const ModuleState& st, PyObject* name) {
  const char* s = PyUnicode_AsUTF8(name);
  if (s == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  auto it = st.pending.find(s);
  if (it == st.pending.end()) return nullptr;
  const UnitRecord& u = st.units[(size_t)it->second];
  std::string_view kind = unit_kind(st, u);
  return u.state == UnitRecord::Pending && (kind == "import" || kind == "from-import" || kind == "try") ? &u : nullptr;
}

// What `name`'s pending `from m import attr` would bind, when m is loaded
// and binds attr already (borrowed; exact lookup), else null.
PyObject* pending_import_value(const ModuleState& st, PyObject* name) {
  const UnitRecord* u = pending_import(st, name);
  if (u == nullptr) return nullptr;
  if (!u->imports || u->imports->attr.empty() || u->imports->modules.size() != 1) return nullptr;
  PyObject* m = PyDict_GetItemString(PyImport_GetModuleDict(), u->imports->modules[0].c_str());  // borrowed
  if (m == nullptr || !PyModule_Check(m)) return nullptr;
  PyObject* ns = PyModule_GetDict(m);
  return ns ? PyDict_GetItemString(ns, u->imports->attr.c_str()) : nullptr;
}

// A class whose creation runs code the model cannot size: a unit code object
// around it (a decorator, a class keyword, a computed base: `@dataclass`,
// `@attr.s`, `metaclass=M`, `Generic[T]`) or a base whose metaclass is
// neither `type` nor `abc.ABCMeta` (`enum.Enum`, `typing.NamedTuple`, ...).
// Measured (3.11, timeit, against a plain class of two methods): an
// `@attr.s` class 50 times, a `@dataclass` 28 times, an Enum or NamedTuple
// subclass 6 to 8 times, about what a `re.compile` costs: counted as a
// computed value.
bool class_of_unknown_cost(const ModuleState& st, const UnitRecord& u) {
  if (u.kind != UnitRecord::Class) return true;  // "class" run by its own unit code
  if (!u.bases || !PyTuple_Check(u.bases.get())) return false;
  PyObject* builtins = PyEval_GetBuiltins();
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(u.bases.get()); ++i) {
    PyObject* name = PyTuple_GET_ITEM(u.bases.get(), i);
    // Exact lookups: no trap runs a pending unit.
    PyObject* base = st.globals ? PyDict_GetItemWithError(st.globals, name) : nullptr;
    if (base == nullptr && !PyErr_Occurred()) base = pending_import_value(st, name);
    if (base == nullptr && !PyErr_Occurred() && builtins) base = PyDict_GetItemWithError(builtins, name);
    if (base == nullptr) {
      PyErr_Clear();
      if (pending_import(st, name)) return true;  // an import whose value is not known yet
      continue;  // a class of this module still pending, its bases counted with it
    }
    if (Py_TYPE(base) != &PyType_Type && (PyObject*)Py_TYPE(base) != abc_meta()) return true;
  }
  return false;
}

// What running pending unit `u` of `st` at import would add (the eager cost
// of what laziness saved). `from m import name` with name still pending in
// m (a lazily loaded module) runs that unit of m too, and what it reads
// when defined: its cost counts (depth bounds the walk across modules, `seen`
// counts each unit once).
long eager_cost(const ModuleState& st, const UnitRecord& u, int depth, std::unordered_set<const UnitRecord*>& seen);

// What running pending unit `id` of `st` now, lazily, would cost: its
// eager cost, the lazy machinery's, and the pending units it reads when
// defined.
long run_cost(const ModuleState& st, int id, int depth, std::unordered_set<const UnitRecord*>& seen) {
  const UnitRecord& u = st.units[(size_t)id];
  if (u.state != UnitRecord::Pending || !u.code || !seen.insert(&u).second) return 0;
  long cost = eager_cost(st, u, depth, seen) + lazy_cost(st, u);
  for (int dep : st.deps(u))
    if (dep != id) cost += run_cost(st, dep, depth, seen);
  return cost;
}

// What an import unit pulls from the module it imports from: the pending
// unit binding `imports->attr` there (a name bound, or a module, costs nothing).
long pulled_cost(const UnitRecord& u, int depth, std::unordered_set<const UnitRecord*>& seen) {
  if (!u.imports || u.imports->attr.empty() || u.imports->modules.size() != 1 || depth >= 4) return 0;
  PyObject* m = PyDict_GetItemString(PyImport_GetModuleDict(), u.imports->modules[0].c_str());  // borrowed
  if (m == nullptr || !PyModule_Check(m)) return 0;
  PyObject* ns = PyModule_GetDict(m);
  if (ns == nullptr || PyDict_GetItemString(ns, u.imports->attr.c_str()) != nullptr) return 0;  // exact lookup, no trap
  const ModuleState* other = state_of(ns);
  if (other == nullptr) return 0;
  auto it = other->pending.find(u.imports->attr);
  return it == other->pending.end() ? 0 : run_cost(*other, it->second, depth + 1, seen);
}

long eager_cost(const ModuleState& st, const UnitRecord& u, int depth, std::unordered_set<const UnitRecord*>& seen) {
  long size = (long)u.size;
  // A constant: unmarshalled (about 25 instructions per byte for the
  // module's own code, measured above; str-heavy tables as much) and bound.
  if (u.kind == UnitRecord::Value) return 500 + 20 * size;
  std::string_view kind = unit_kind(st, u);
  if (kind == "def") return 4'000 + 2 * size;  // MAKE_FUNCTION (and any decorator) and its code unmarshalled
  // Modules loaded already, and what a `from` import runs in them.
  if (kind == "import" || kind == "from-import" || kind == "try") return 2'000 + pulled_cost(u, depth, seen);
  // A class: built, its body's code (its methods') unmarshalled at about 25
  // instructions per byte. A computed value may run anything the analysis
  // called pure: `re.compile(...)` costs 0.3-2 M (gettext's `_token_pattern`
  // left pending made `pygmentize -V` 2.8 M cheaper than gettext loaded
  // eagerly), so unknown counts as expensive; so does a class whose creation
  // runs code of unknown cost.
  if (kind == "class" && !class_of_unknown_cost(st, u)) return 50'000 + 20 * size;
  return 400'000 + 20 * size;
}

// A builtin constructor or conversion the module does not rebind: calling
// it with constants or names costs about what binding a constant does
// (`_NOT_FOUND = object()`, `_special = frozenset({...})`, `chr(i)`).
bool cheap_builtin(PyObject* name, void* context) {
  static const std::unordered_set<std::string_view> constructors = {
      "object", "frozenset", "set", "dict", "list", "tuple", "str", "bytes", "int", "float", "bool", "complex",
      "chr", "ord"};
  const auto& st = *static_cast<const ModuleState*>(context);
  Py_ssize_t n = 0;
  const char* s = PyUnicode_AsUTF8AndSize(name, &n);
  if (s == nullptr) {
    PyErr_Clear();
    return false;
  }
  if (!constructors.count(std::string_view(s, (size_t)n)) || st.pending.count(std::string_view(s, (size_t)n))) return false;
  PyObject* bound = st.globals ? PyDict_GetItemWithError(st.globals, name) : nullptr;  // exact: no trap runs
  PyErr_Clear();
  return bound == nullptr;
}

// What pending assignment `u` would cost eagerly when its code runs like a
// constant's (compile::runs_like_a_constant: names, displays, builtin
// constructors), else -1. Reads its code (unmarshalled here when still
// bytes): called only where that may change the verdict.
long constant_like_cost(const ModuleState& st, const UnitRecord& u) {
  if (u.kind != UnitRecord::Code || u.group_index >= 0 || unit_kind(st, u) != "assign") return -1;
  py::Ref code = u.code;
  if (PyBytes_Check(code.get())) {
    code = py::Ref::steal(PyMarshal_ReadObjectFromString(PyBytes_AS_STRING(code.get()), PyBytes_GET_SIZE(code.get())));
    if (!code) {
      PyErr_Clear();
      return -1;
    }
  }
  long items = compile::runs_like_a_constant(code.get(), cheap_builtin, const_cast<ModuleState*>(&st));
  if (items < 0) return -1;
  // A constant's 500 + 20 per byte, plus the names it reads; a
  // comprehension's iteration (a builtin call and a store) per item.
  return 1'000 + 20 * (long)u.size + 1'000 * items;
}

// Loading an extension module the run did not load: finding it, dlopen and
// its init (Debian 3.11.2, callgrind: `import _typing` 270 K, `_json` 490 K).
constexpr long kNativeModuleCost = 500'000;

// Whether module `name` loads without running Python code: built into the
// interpreter, or a top-level extension module importlib's path finder finds
// (an accelerator: typing's `try: from _typing import _idfunc`). Runs the
// path finder (Python code, file-system lookups): called only where it
// decides the verdict.
bool native_module(const std::string& name) {
  for (const struct _inittab* p = PyImport_Inittab; p->name != nullptr; ++p)
    if (name == p->name) return true;
  if (name.empty() || name.find('.') != std::string::npos) return false;
  py::Ref machinery_name = py::Ref::steal(PyUnicode_FromString("importlib.machinery"));
  py::Ref machinery = machinery_name ? py::Ref::steal(PyImport_GetModule(machinery_name.get())) : py::Ref();
  py::Ref finder = machinery ? py::Ref::steal(PyObject_GetAttrString(machinery.get(), "PathFinder")) : py::Ref();
  py::Ref extension =
      machinery ? py::Ref::steal(PyObject_GetAttrString(machinery.get(), "ExtensionFileLoader")) : py::Ref();
  py::Ref spec = finder ? py::Ref::steal(PyObject_CallMethod(finder.get(), "find_spec", "s", name.c_str())) : py::Ref();
  py::Ref loader = spec && spec.get() != Py_None ? py::Ref::steal(PyObject_GetAttrString(spec.get(), "loader")) : py::Ref();
  int is_extension = loader && extension ? PyObject_IsInstance(loader.get(), extension.get()) : 0;
  PyErr_Clear();
  return is_extension == 1;
}

// Whether pending unit `u` is an import guard (`try: import x` / `except
// ImportError:`) whose only modules not loaded are unblocked ones, which it
// appends to `missing` once each (each must then be a native_module for the module to
// count as used nearly whole). A plain import of a module the run did not
// load keeps the module lazy: it could cost anything, and its failure would
// be the program's; a guard's failure is its fallback's, eagerly as well.
bool guard_loads_only(const ModuleState& st, const UnitRecord& u, std::vector<std::string>& missing) {
  if (!u.imports || unit_kind(st, u) != "try") return false;
  PyObject* modules = PyImport_GetModuleDict();
  for (const auto& name : u.imports->modules) {
    PyObject* m = PyDict_GetItemString(modules, name.c_str());  // borrowed
    if (m == Py_None) return false;
    if (m != nullptr || std::find(missing.begin(), missing.end(), name) != missing.end()) continue;
    // `from m import x` lists m.x too (the submodule it may be): when m is
    // missing as well, m is the one to load (an extension module has no
    // submodules; anything else keeps the module lazy anyway).
    size_t dot = name.rfind('.');
    if (dot != std::string::npos && std::find(missing.begin(), missing.end(), name.substr(0, dot)) != missing.end())
      continue;
    missing.push_back(name);
  }
  return true;
}

// Whether `target` names `from` itself or a package above it: a package
// runs before its submodules, so an import of it is no edge back.
bool self_or_package_above(std::string_view from, std::string_view target) {
  return from.size() >= target.size() && from.compare(0, target.size(), target) == 0 &&
         (from.size() == target.size() || from[target.size()] == '.');
}

// Whether `st`'s module is on an import cycle through the deferred imports
// of lazily loaded modules (their units' recorded modules; for `from m
// import x`, the submodule m.x when loaded): it reaches itself. Loaded
// eagerly next time, its imports would run at its own import, starting the
// cycle where the deferred ones had left it unstarted (nbformat.reader and
// nbformat.validator import names from each other; eagerly nbformat's
// earlier `from . import v4` started the cycle at validator, while reader
// loaded whole at nbformat's later `from . import reader` started it at
// reader, and validator met reader half-initialized: ImportError).
// Searched within the module's top-level package, as the analysis searches
// cycles within one distribution: the walk stays small at exit.
bool on_import_cycle(const ModuleState& st) {
  PyObject* modules = PyImport_GetModuleDict();
  std::string_view top = std::string_view(st.module).substr(0, st.module.find('.'));
  std::unordered_set<const ModuleState*> seen{&st};
  std::vector<const ModuleState*> todo{&st};
  while (!todo.empty()) {
    const ModuleState* at = todo.back();
    todo.pop_back();
    bool found = false;
    auto edge = [&](const std::string& t) {
      if (found || !self_or_package_above(t, top) || self_or_package_above(at->module, t)) return;
      if (t == st.module) {
        found = true;
        return;
      }
      PyObject* m = PyDict_GetItemString(modules, t.c_str());  // borrowed
      if (m == nullptr || !PyModule_Check(m)) return;
      PyObject* ns = PyModule_GetDict(m);
      const ModuleState* next = ns ? state_of(ns) : nullptr;
      if (next != nullptr && seen.insert(next).second) todo.push_back(next);
    };
    for (const auto& u : at->units) {
      if (!u.imports) continue;
      const UnitImports& imports = *u.imports;
      for (const auto& t : imports.modules) edge(t);
      if (!imports.attr.empty() && !imports.modules.empty()) edge(imports.modules.back() + "." + imports.attr);
      if (found) return true;
    }
  }
  return false;
}

}  // namespace

bool used_nearly_whole(const ModuleState& st) {
  if (st.failures != 0) return false;
  long lazy_extra = kModuleCost + kPerLookup * st.lookups + kPerMiss * st.misses, eager_extra = 0;
  std::unordered_set<const UnitRecord*> seen;  // units of other modules counted already
  std::vector<std::pair<const UnitRecord*, long>> assignments;  // pending computed values and what they counted
  std::vector<std::string> natives;  // modules pending import guards would load, counted as extension modules
  for (const auto& u : st.units) {
    if (!u.code) continue;  // eager, or resolved as an import of a loaded module
    lazy_extra += kUnitRecordCost;  // its plan record, decoded and installed at import
    if (u.state == UnitRecord::Done) {
      lazy_extra += lazy_cost(st, u);
      continue;
    }
    if (u.state != UnitRecord::Pending) continue;  // cancelled: never runs either way
    long cost = 0;
    if (!loads_nothing_new(st, u)) {
      size_t before = natives.size();
      if (!guard_loads_only(st, u, natives)) return false;
      cost += kNativeModuleCost * (long)(natives.size() - before);
    }
    cost += eager_cost(st, u, 0, seen);
    if (u.kind == UnitRecord::Code && unit_kind(st, u) == "assign") assignments.emplace_back(&u, cost);
    eager_extra += cost;
  }
  // A computed value counted as expensive (it may run anything the analysis
  // called pure) but whose code only reads names, builds displays or calls a
  // builtin constructor (`EnumMeta = EnumType`, `_special = frozenset({...})`)
  // costs what a constant does: looked at only when it may tip the verdict.
  for (size_t i = 0; i < assignments.size() && eager_extra > lazy_extra; ++i) {
    long cheap = constant_like_cost(st, *assignments[i].first);
    if (cheap >= 0 && cheap < assignments[i].second) eager_extra -= assignments[i].second - cheap;
  }
  if (eager_extra > lazy_extra) return false;
  // Modules pending guards would load that the run did not: only extension
  // or built-in ones (looked up last, only when they decide the verdict).
  for (const auto& name : natives)
    if (!native_module(name)) return false;
  return !on_import_cycle(st);
}

int materialize(ModuleState& st, int id) {
  if (id < 0 || id >= (int)st.units.size()) {
    PyErr_Format(PyExc_IndexError, "lazyexec: no unit %d in %s", id, st.module.c_str());
    return -1;
  }
  unsigned long me = PyThread_get_thread_ident();
  unsigned long slices = 0;
  while (true) {
    UnitRecord& u = st.units[(size_t)id];
    switch (u.state) {
      case UnitRecord::Done:
      case UnitRecord::Cancelled:
        return 0;
      case UnitRecord::Pending:
        if (!u.code) return 0;  // an eager unit: nothing deferred
        return run_unit(st, id);
      case UnitRecord::Running: {
        std::string chain;
        if (u.owner == me) {
          PyErr_Format(PyExc_ImportError,
                       "lazyexec: cycle while materializing %s: it needs itself at definition time "
                       "(a circular reference between lazily deferred statements)",
                       where_of(st, u).c_str());
          return -1;
        }
        if (would_deadlock(me, &st, id, chain, (++slices % 16) == 0)) {
          PyErr_Format(PyExc_ImportError, "lazyexec: deadlock detected: this thread waits for %s", chain.c_str());
          return -1;
        }
        waits()[me] = {&st, id};
        Py_BEGIN_ALLOW_THREADS
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        Py_END_ALLOW_THREADS
        waits().erase(me);
        if (PyErr_CheckSignals() < 0) return -1;
        continue;  // re-check with the GIL held
      }
    }
  }
}

int resolve_binding(ModuleState& st, int id, PyObject* name, PyObject* value) {
  if (id < 0 || id >= (int)st.units.size()) {
    PyErr_Format(PyExc_IndexError, "lazyexec: no unit %d in %s", id, st.module.c_str());
    return -1;
  }
  UnitRecord& u = st.units[(size_t)id];
  if (u.state != UnitRecord::Pending || !u.code) return 0;
  if (!PyUnicode_Check(name)) {
    PyErr_SetString(PyExc_TypeError, "lazyexec: a resolved import binds a str");
    return -1;
  }
  if (publish_binding(st, u, name, value) < 0) return -1;
  u.state = UnitRecord::Done;
  u.code = py::Ref();  // never runs: its code can go
  st.materialized++;
  after_done(st);
  return 0;
}

int resolve(ModuleState& st, int id, PyObject* values) {
  if (id < 0 || id >= (int)st.units.size()) {
    PyErr_Format(PyExc_IndexError, "lazyexec: no unit %d in %s", id, st.module.c_str());
    return -1;
  }
  UnitRecord& u = st.units[(size_t)id];
  if (u.state != UnitRecord::Pending || !u.code) return 0;
  if (publish(st, u, id, values, nullptr) < 0) return -1;
  u.state = UnitRecord::Done;
  u.code = py::Ref();  // never runs: its code can go
  st.materialized++;
  after_done(st);
  return 0;
}

namespace {
bool mentions(PyObject* code, const std::string& name) {
  if (PyTuple_Check(code)) return false;  // a constant's value reads no name
  if (marshalled(code)) {
    Py_buffer view;
    if (PyObject_GetBuffer(code, &view, PyBUF_SIMPLE) < 0) {
      PyErr_Clear();
      return true;  // unreadable: running it gives the error at first use
    }
    bool found = std::string_view(static_cast<const char*>(view.buf), (size_t)view.len).find(name) != std::string_view::npos;
    PyBuffer_Release(&view);
    return found;
  }
  return true;  // already a code object: run it (a superset is safe)
}
}  // namespace

long materialize_mentioning(const std::string& name) {
  // Python code runs while units materialize (imports, new modules): collect
  // the namespaces first and look each state up again.
  std::vector<py::Ref> spaces;
  for (auto& [globals, st] : table())
    if (!st->pending.empty()) spaces.push_back(py::Ref::borrow(globals));
  long ran = 0;
  for (const py::Ref& g : spaces) {
    ModuleState* st = state_of(g.get());
    if (!st) continue;
    int limit = visible_limit(*st);
    for (int id = 0; id < (int)st->units.size() && id < limit; ++id) {
      st = state_of(g.get());
      if (!st) break;
      const UnitRecord& u = st->units[(size_t)id];
      if (u.state != UnitRecord::Pending || !u.code || !mentions(u.code.get(), name)) continue;
      int rc = st->settled ? materialize_with_closure(*st, id) : materialize(*st, id);
      if (rc < 0) PyErr_Clear();  // stays pending: the error comes at first use
      else ++ran;
    }
  }
  return ran;
}

int materialize_name(ModuleState& st, PyObject* name, bool absent_if_running) {
  if (!PyUnicode_Check(name) || st.pending.empty() || !may_be_pending(st, name)) return 0;
  auto it = st.pending.find(py::utf8(name));
  if (it == st.pending.end()) return 0;
  if (it->second >= visible_limit(st)) return 0;  // later in the source: not bound yet
  const UnitRecord& u = st.units[(size_t)it->second];
  if (absent_if_running && u.state == UnitRecord::Running && u.owner == PyThread_get_thread_ident()) return 0;
  if (recording) next_trigger = py::utf8(name);
  int rc = st.settled ? materialize_with_closure(st, it->second) : materialize(st, it->second);
  if (recording) next_trigger.clear();  // not taken when the unit was done or running already
  return rc < 0 ? -1 : 1;
}

}  // namespace lazyexec::runtime
