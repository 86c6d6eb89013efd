// Settle: zero steady-state overhead. CPython specializes LOAD_GLOBAL only on
// exact dicts, so a hot module must stop trapping. Before the type swap, every
// name that code already able to run may read at call time must be bound:
// the static closure over call_reads of every unit that has run.
#include <string>
#include <vector>

#include "runtime/lazy_globals.h"
#include "runtime/module_hooks.h"
#include "runtime/module_state.h"

namespace lazyexec::runtime {
namespace {

// Materializes `start` and everything reachable through calls/deps.
// Returns -1 with an exception set on the first failure.
int closure(ModuleState& st, std::vector<int> work, long* forced) {
  std::vector<char> seen(st.units.size(), 0);
  while (!work.empty()) {
    int id = work.back();
    work.pop_back();
    if (id < 0 || id >= (int)st.units.size() || seen[(size_t)id]) continue;
    seen[(size_t)id] = 1;
    UnitRecord& u = st.units[(size_t)id];
    if (u.code && u.state == UnitRecord::Pending) {
      if (materialize(st, id) < 0) return -1;
      if (forced) (*forced)++;
    }
    for (int c : st.calls(st.units[(size_t)id])) work.push_back(c);
    for (int d : st.deps(st.units[(size_t)id])) work.push_back(d);
  }
  return 0;
}

PyObject* settled_hook = nullptr;

}  // namespace

// Iterating an exact dict cannot run pending units: while some are pending the
// hook gives a settled module a `__dict__` that completes the namespace first;
// once none are (settled or not), it removes lazyexec's PEP 562 hooks, whose
// presence keeps CPython from specializing `module.attr` loads and which an
// eager namespace does not have.
int on_settled(PyObject* module, bool hot) {
  if (!settled_hook) return default_on_settled(module, hot);
  py::Ref r = py::Ref::steal(PyObject_CallFunction(settled_hook, "OO", module, hot ? Py_True : Py_False));
  return r ? 0 : -1;
}

void notify_settled(ModuleState& st) {
  if (!st.module_ref || (!st.settled && !st.pending.empty())) return;
  PyObject* module = PyWeakref_GetObject(st.module_ref.get());  // borrowed
  if (!module || module == Py_None) return;
  py::Ref keep = py::Ref::borrow(module);
  bool hot = st.settle_reason.rfind("hot", 0) == 0;  // settled by the threshold, not on request
  if (on_settled(module, hot) < 0) PyErr_WriteUnraisable(settled_hook ? settled_hook : module);
}

void set_settled_hook(PyObject* fn) {
  Py_XINCREF(fn);
  Py_XSETREF(settled_hook, fn);
}

void settle(ModuleState& st, const char* reason) {
  if (st.settled || st.settling) return;
  st.settling = true;
  std::vector<int> roots;
  for (size_t i = 0; i < st.units.size(); ++i)
    if (st.units[i].state == UnitRecord::Done) roots.push_back((int)i);
  long forced = 0;
  // A failure here must not surface at an unrelated lookup: keep the trap.
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  int rc = closure(st, roots, &forced);
  if (rc < 0) {
    PyErr_Clear();
    st.settle_reason = std::string("not settled: a unit raised while settling (") + reason + ")";
    st.settle_threshold = -1;  // do not try again on every lookup
  }
  st.settle_forced += forced;
  st.settling = false;
  if (rc == 0) {
    // The type swap: identical layouts (checked when the trap type was readied).
    st.keepalive = py::Ref::borrow(st.globals);  // the dict now frees as a plain dict: keep the state's key alive
    Py_SET_TYPE(st.globals, &PyDict_Type);
    st.settled = true;
    st.settle_reason = reason;
    notify_settled(st);
  }
  PyErr_Restore(type, value, tb);
}

int materialize_with_closure(ModuleState& st, int id) {
  return closure(st, {id}, &st.settle_forced);
}

std::vector<char> waiting_on_initializing(const ModuleState& st) {
  // One pass, whatever the number of units: the pending units that import a
  // module still initializing, then, through the closure's edges reversed,
  // every unit whose closure reaches one of them.
  const size_t n = st.units.size();
  std::vector<std::vector<int>> users(n);
  std::vector<char> waits(n, 0);
  std::vector<int> work;
  for (size_t i = 0; i < n; ++i) {
    const UnitRecord& u = st.units[i];
    for (int c : st.calls(u))
      if (c >= 0 && (size_t)c < n) users[(size_t)c].push_back((int)i);
    for (int d : st.deps(u))
      if (d >= 0 && (size_t)d < n) users[(size_t)d].push_back((int)i);
    if (u.code && u.state == UnitRecord::Pending && imports_initializing(u)) {
      waits[i] = 1;
      work.push_back((int)i);
    }
  }
  while (!work.empty()) {
    int i = work.back();
    work.pop_back();
    for (int user : users[(size_t)i])
      if (!waits[(size_t)user]) {
        waits[(size_t)user] = 1;
        work.push_back(user);
      }
  }
  return waits;
}

}  // namespace lazyexec::runtime
