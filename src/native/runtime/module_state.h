// The runtime's record of one lazily loaded module: its pending units and
// what they bind. Keyed by the module's globals dict (see lazy_globals.h).
//
// Every field is read and written with the GIL held; a thread that waits for
// a unit another thread is running releases the GIL in short slices. No C++
// mutex is ever held while Python code runs.
#pragma once

#include <Python.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "py/handle.h"

namespace lazyexec::runtime {

// A deferred import's modules (set_imports, from the plan's bind_loaded
// step): see imports_initializing. Most units import nothing: out of line.
struct UnitImports {
  std::vector<std::string> modules;
  std::string attr;                // `from m import attr`: attr, which may be submodule m.attr
};

// One per unit of every lazily loaded module, alive as long as the module:
// kept small (72 bytes; 120 with its names, `where` and links in vectors
// and strings of its own, 200 with the import fields inline too:
// docs/image-format.md, tenth and eleventh passes). Its bound names, its
// `where` and its deps and calls sit in the module's tables
// (ModuleState::text and ::links), read through ModuleState's accessors.
struct UnitRecord {
  enum State : uint8_t { Pending, Running, Done, Cancelled };
  // Code: unit code (a code object or its marshal bytes) run in a scratch
  // namespace. Value: `code` is (marshal bytes of a constant,), bound as is.
  // Function: `code` is a plain function's own code (or its marshal bytes),
  // made into a function as MAKE_FUNCTION would, no unit code run.
  // Class: `code` is a plain class's body code (or its marshal bytes),
  // `bases` the names of its bases: the class is built as LOAD_BUILD_CLASS
  // does, no unit code run.
  enum Kind : uint8_t { Code, Value, Function, Class };
  py::Ref code;                    // null for units that run eagerly
  py::Ref bases;                   // Class: the base names (a tuple of str)
  std::unique_ptr<UnitImports> imports;  // null: no modules recorded
  unsigned long owner = 0;         // thread running it
  uint32_t size = 0;               // its marshalled code's (or value's) bytes at install: the usage profile's cost
  // A unit the import runs (force steps) may share one marshal stream with
  // the module's other such units (artifact format 12): `code` is then that
  // stream (the same bytes object for every member) until the first member
  // runs, which unmarshals it and gives each member item `group_index`.
  int32_t group_index = -1;        // -1: its code is its own
  // In ModuleState::text: its `where` ("12 (def f)": the module's filename
  // is prefixed when shown), then the names it binds, each NUL-terminated.
  uint32_t where_at = 0, binds_at = 0, nbinds = 0;
  // In ModuleState::links: deps (lazy units read at definition time: run
  // first), then calls (units binding what its code reads later: call_reads).
  uint32_t links_at = 0, ndeps = 0, ncalls = 0;
  Kind kind = Code;
  State state = Pending;
};
static_assert(sizeof(UnitRecord) <= 72, "a unit record is kept for every unit of every lazy module");

// The names a unit binds (ModuleState::binds): NUL-terminated, one after
// another in the module's text.
class BoundNames {
 public:
  class iterator {
   public:
    iterator(const char* p, uint32_t left) : p_(p), left_(left) {}
    std::string_view operator*() const { return p_; }
    iterator& operator++() {
      p_ += std::char_traits<char>::length(p_) + 1;
      --left_;
      return *this;
    }
    bool operator!=(const iterator& o) const { return left_ != o.left_; }

   private:
    const char* p_;
    uint32_t left_;
  };
  BoundNames(const char* first, uint32_t n) : first_(first), n_(n) {}
  iterator begin() const { return {first_, n_}; }
  iterator end() const { return {nullptr, 0}; }
  uint32_t size() const { return n_; }
  const char* front() const { return first_; }  // NUL-terminated; only when size() > 0

 private:
  const char* first_;
  uint32_t n_;
};

struct ModuleState {
  PyObject* globals = nullptr;     // borrowed: the state dies with the dict
  std::string module;
  std::string filename;
  std::vector<UnitRecord> units;
  // Every unit's `where` and bound names (NUL-terminated) and every unit's
  // deps and calls, one table each for the module (install(), fixed then:
  // `pending`'s keys point into `text`).
  std::vector<char> text;
  std::vector<int> links;
  std::unordered_map<std::string_view, int> pending;  // name (in `text`) -> unit, while it can still be published
  // The bits of the str hashes of every name ever made pending (add_pending):
  // a name whose bit is clear is not pending, told from the hash the str
  // caches, without converting it (a module's own builtin lookups: len,
  // isinstance, ... miss the namespace and land in the trap on each call).
  // 1024 bits: a module with a hundred pending names (zipfile, typing) sets
  // about a tenth of them, where 256 bits let a third of its other lookups through.
  static constexpr size_t kFilterBits = 1024;
  uint64_t pending_filter[kFilterBits / 64] = {};
  std::unordered_set<std::string> cancelled;      // deleted before first use: never published
  // While the top level runs: what an eager part bound as a side effect (a
  // star import) under a name a later pending unit binds, which supersede()
  // unbound. Until the top level passes that unit, lookups get this value, as
  // eagerly (numpy.distutils.log: `from distutils.log import *`, then
  // `_error = error`, then `def error(...)`). Cleared when the top level ends.
  std::unordered_map<std::string, py::Ref> shadowed;
  // While the module's top level runs: units with id >= frontier come later
  // in the source and are not bound yet, so every lookup treats them as absent.
  int frontier = INT_MAX;
  // The run step's code object while it runs, else null. One run step may hold several eager statements with lazy
  // units between them; its frame's line tells which of those units the
  // top level has passed (segment_limit).
  py::Ref segment;
  // Units running now, as (thread, unit): while unit N runs in a thread,
  // units from N on are not bound yet for that thread either.
  std::vector<std::pair<unsigned long, int>> running;
  long materialized = 0;
  long failures = 0;
  double seconds = 0.0;
  // Settling (DESIGN "Settle"): back to an exact dict once hot or complete.
  long lookups = 0;                // trap lookups so far
  long misses = 0;                 // lookups of names it does not bind (builtins): a KeyError set and cleared each
  long settle_threshold = 10000;   // < 0: never settle on its own
  bool settled = false;
  bool settling = false;           // re-entrancy guard
  std::string settle_reason;       // why it settled, or why it could not
  long settle_forced = 0;          // units settling materialized
  py::Ref keepalive;               // after settling: the dict (see settle.cpp)
  py::Ref module_ref;              // weak reference to the module object, if given
  // Pending units by the module globals they read at definition time (the
  // plan's "watch" step), filled at the first write that asks: rebinding or
  // deleting one of these names from outside (`mod.N = v`, `del mod.N`,
  // `vars(mod)[N] = v`) first runs those units, which eagerly had run before
  // (module_hooks.cpp, the "inputs" class).
  std::unordered_map<std::string, std::vector<int>> readers;
  // The plan's "watch" payload, turned into `readers` at the first write
  // that asks (most modules never see one: nothing of it on the import path).
  py::Ref readers_plan;
  // While the plan's top level runs: a namespace write is the module's own
  // STORE_NAME, whose readers the force plan ran before it (only writes
  // through the module object are watched then).
  bool top_level_running = false;
  // Units whose own whole view of the namespace (keys, iteration, a copy:
  // attrs' `globs.update(module.__dict__)`) takes it as it is, running no
  // pending unit (the plan's "own_views" step; analyze/unit.h, own_views).
  std::vector<int> own_views;

  std::span<const int> deps(const UnitRecord& u) const { return {links.data() + u.links_at, u.ndeps}; }
  std::span<const int> calls(const UnitRecord& u) const { return {links.data() + u.links_at + u.ndeps, u.ncalls}; }
  const char* where(const UnitRecord& u) const { return text.data() + u.where_at; }  // NUL-terminated
  BoundNames binds(const UnitRecord& u) const { return {text.data() + u.binds_at, u.nbinds}; }
};

// Registers the callable that reports importlib's module-lock waits as
// {thread id: [owner thread ids]} (see lazyexec/runtime/__init__.py).
void set_import_waits(PyObject* fn);

// Registers the callable run with the module object when a module settles and
// when a settled module's last pending unit has run (see settle.cpp and
// lazyexec/runtime/__init__.py).
void set_settled_hook(PyObject* fn);
void notify_settled(ModuleState& st);
// What notify_settled runs for `module`: the registered hook (the Python
// layer's, once loaded), else the C++ default (runtime/module_hooks.h).
int on_settled(PyObject* module, bool hot);

// The first unit not yet defined for lookups from the calling thread: the
// top level's frontier, or an earlier unit this thread is running (eagerly,
// names later in the source do not exist while a statement runs).
// Within a run step holding several eager statements, the first unit after
// the statement its frame is running (lazy_globals.cpp); `limit` otherwise
// (another thread's lookup, or none of this module's frames on the stack).
int segment_limit(const ModuleState& st, int limit);

inline int visible_limit(const ModuleState& st) {
  int limit = st.frontier;
  if (st.segment.get() && limit != INT_MAX) limit = segment_limit(st, limit);
  if (!st.running.empty()) {
    unsigned long me = PyThread_get_thread_ident();
    for (const auto& [thread, id] : st.running)
      if (thread == me && id < limit) limit = id;
  }
  return limit;
}

// Makes `name` (a str; `key`, its UTF-8 in st.text) pending for unit `id`.
// Throws py::PyError when the name cannot be hashed.
void add_pending(ModuleState& st, PyObject* name, std::string_view key, int id);
// The same with the name's str hash `h` (hash(name)) given.
void add_pending_hashed(ModuleState& st, Py_hash_t h, std::string_view key, int id);

// False when `name` (a str) is certainly not pending (pending_filter); true
// when it may be.
inline bool may_be_pending(const ModuleState& st, PyObject* name) {
  Py_hash_t h = PyObject_Hash(name);  // cached in the str once computed
  if (h == -1) {
    PyErr_Clear();
    return true;
  }
  size_t bit = (size_t)h & (ModuleState::kFilterBits - 1);
  return (st.pending_filter[bit >> 6] >> (bit & 63)) & 1;
}

// Runs the pending units that read `name` at definition time (`readers`),
// before it is rebound or deleted from outside. A unit that fails stays
// pending (its error comes at first use). -1 only for a non-Exception error.
int force_readers(ModuleState& st, PyObject* name);
// The same for every name watched (the module's class is being replaced by
// one that does not keep the watch).
int force_all_readers(ModuleState& st);

// Side table from globals dict to state.
ModuleState* state_of(PyObject* globals);
ModuleState& create_state(PyObject* globals);
void forget_state(PyObject* globals);

// Replaces builtins.exec and builtins.eval (once, at activation): code run
// in a lazy module's namespace with separate locals reads globals with
// PyDict_GetItem, which no trap sees, so the pending units binding the names
// it mentions run first (see dynamic_eval.cpp).
int install_dynamic_eval();

// Runs unit `id` (and first its deps) exactly once. Returns -1 with an
// exception set on failure; the unit stays pending so a later access retries.
int materialize(ModuleState& st, int id);

// Whether unit `u` is a deferred import of a module that is initializing now
// (in sys.modules, its __spec__._initializing set). Whole-namespace runs
// (materialize_all, a namespace's keys/items/values/copy) leave such a unit
// pending: running it would meet a partially initialized module. The
// initializing module is then the one asking, as when a package's submodule
// imported first star-imports the package whose deferred import of it
// (ctypes._endian): eagerly the package's import was running it, and the
// star import saw the package up to that line.
bool imports_initializing(const UnitRecord& u);

// The usage profile's verdict on a lazily loaded module at exit: whether
// loading it eagerly next time would cost less than it did lazily. True when
// no unit failed, the units still pending would load nothing this run did
// not (each is a definition or assignment, or an import (guard) whose modules
// are all in sys.modules now), and running them eagerly is estimated to cost
// less than the lazy bookkeeping of the units that ran (each unmarshalled
// alone and published: 4-12 K instructions and more on 3.11) and of the
// module (its plan, trapping namespace and hooks). What a pending unit saves
// depends on its kind: a function definition about 5 K, a class 50 K or
// more, an import of a loaded module nothing (docs/startup.md "The usage
// profile" has the measurements). Eager is the reference behaviour, so this
// only changes what the program pays; except for a module on an import cycle
// through deferred imports (its own loaded eagerly would start the cycle at
// it): never.
bool used_nearly_whole(const ModuleState& st);

// Marks pending unit `id` done without running it, publishing `values`
// (name -> object) as it would have: an import whose module was already in
// sys.modules when its importer loaded (see importer/importlib_bootstrap.py).
int resolve(ModuleState& st, int id, PyObject* values);
// The same for a unit binding one name (a deferred import of a module loaded
// already, bound when its importer finishes loading: the plan's bind_loaded
// step), without a dict of values or a namespace diff.
int resolve_binding(ModuleState& st, int id, PyObject* name, PyObject* value);

// Materializes the unit that would bind `name`, if it is pending. Returns 1 if
// a unit ran, 0 if the name is not pending, -1 on error.
// With `absent_if_running`, a name whose unit is running in this very thread
// counts as not pending (returns 0): that is module attribute access during
// the unit's own run, e.g. importlib's hasattr(pkg, "sub") while the unit
// `from . import sub` imports it. Eagerly the name is not bound yet either.
int materialize_name(ModuleState& st, PyObject* name, bool absent_if_running = false);

// The namespace's newest key (None when empty; null with an exception on
// failure): a mark for `inserted_since`.
py::Ref last_key(PyObject* dict);
// Keys inserted after `last` (dicts keep insertion order). False when that
// cannot be told (`last` itself was deleted).
bool inserted_since(PyObject* dict, PyObject* last, std::vector<py::Ref>& out);
// After an eager part of the top level ran: names it bound as a side effect
// (importlib binding `pkg.sub` when a statement loads that submodule, a star
// import) that a pending unit with id >= first_later binds are unbound again,
// because eagerly that later unit's binding replaces them. Until the top
// level reaches that unit, lookups still get what the part bound (shadowed).
int supersede(ModuleState& st, PyObject* last, int first_later);

// The value an eager part bound under `name` before the later pending unit
// that binds it, while that unit is not visible to this lookup (borrowed;
// null if none): see ModuleState::shadowed.
PyObject* shadowed_value(const ModuleState& st, PyObject* name);

// Materializes the static closure (call_reads, transitively) of every unit
// that has run, then turns the namespace back into an exact dict in place.
// Never raises: a unit failing during settling leaves the module trapped and
// records why (the failure reaches user code only if it uses that name).
void settle(ModuleState& st, const char* reason);

// After settling, a pending unit reached through module attribute access
// brings its static closure with it (nothing traps its functions' lookups).
int materialize_with_closure(ModuleState& st, int id);

// Per unit: whether its static closure (calls and deps, transitively) holds a
// pending unit that imports a module still initializing (imports_initializing).
// Completing a settled module skips such a unit, which would otherwise be
// bound while a name its code reads stays pending with no trap to run it.
// Computed once per completion, in time linear in units and edges.
std::vector<char> waiting_on_initializing(const ModuleState& st);

// Runs, in every lazily loaded module, the pending units whose code mentions
// `name` (a substring of the marshalled code: a superset, which only runs
// units earlier than their first use) and that are bound already (below the
// visible limit). Used before logging configuration reads the set of
// existing loggers (lazyexec/runtime/loggers.py). A unit that fails stays
// pending (its error comes at first use, as always). Returns how many ran.
long materialize_mentioning(const std::string& name);

// `lazyexec why` (off unless turned on; one flag test per unit run when off):
// while recording, each thread keeps the units it is materializing, and the
// name whose first use started each, so the recorder can tell which lazy unit
// a module import came from.
void set_recording(bool on);
// [(code, module, filename, where, trigger)] for the calling thread, innermost
// last; trigger is the name read, or "" (forced by a plan step, settling, ...).
PyObject* materializing();

}  // namespace lazyexec::runtime
