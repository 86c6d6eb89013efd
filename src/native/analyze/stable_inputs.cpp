#include "analyze/stable_inputs.h"

#include <algorithm>
#include <map>
#include <unordered_set>

namespace lazyexec::analyze {
namespace {

// Names an eager statement may touch: what it mentions, plus what the code it
// may reach mentions or writes. Code is reached through the units binding a
// reached name: their call_reads (function bodies that may run) and, to find
// the classes behind values, their def_reads. A def_read is followed but not
// itself counted as touched: reaching `obj = Cls()` means Cls's methods may
// run, not that Cls is rebound.
Names touched_by(const Unit& stmt, const std::map<std::string, std::vector<int>>& binders,
                 const std::vector<Unit>& units, Names& rebound) {
  Names touched(stmt.mentions.begin(), stmt.mentions.end());
  Names reached;
  std::vector<std::string> work(stmt.mentions.begin(), stmt.mentions.end());
  while (!work.empty()) {
    std::string name = std::move(work.back());
    work.pop_back();
    if (!reached.insert(name).second) continue;
    auto it = binders.find(name);
    if (it == binders.end()) continue;
    for (int b : it->second) {
      const Unit& u = units[(size_t)b];
      for (const Names* set : {&u.call_reads, &u.global_writes})
        for (const auto& n : *set) {
          touched.insert(n);
          if (!reached.count(n)) work.push_back(n);
        }
      rebound.insert(u.global_writes.begin(), u.global_writes.end());
      for (const auto& n : u.def_reads)
        if (!reached.count(n)) work.push_back(n);
    }
  }
  return touched;
}

// What of the import state an eager statement may touch: its own code (as
// it runs: not the bodies of the functions it defines), or the bodies of the
// units binding what it mentions (followed as touched_by
// does, but only through units bound before it: code defined later cannot
// run yet). Returns true for any change (or a read of any module); adds
// the modules read by name to `named`.
bool reaches_import_state(const Unit& stmt, const std::map<std::string, std::vector<int>>& binders,
                          const std::vector<Unit>& units, Names& named) {
  if (stmt.import_state_at_definition) return true;
  named.insert(stmt.loaded_module_reads_at_definition.begin(), stmt.loaded_module_reads_at_definition.end());
  // A change anywhere in the reached code counts. A read of sys.modules
  // counts in the code the statement names itself (a function it calls),
  // not deeper: mentions are syntactic and transitive, and typing's `class
  // TypeVar` would otherwise reach ForwardRef._evaluate's
  // `sys.modules.get(...)` through _type_check and _type_convert.
  Names reached;
  std::vector<std::pair<std::string, int>> work;  // (name, depth)
  for (const auto& n : stmt.mentions) work.emplace_back(n, 0);
  while (!work.empty()) {
    auto [name, depth] = std::move(work.back());
    work.pop_back();
    if (!reached.insert(name).second) continue;
    auto it = binders.find(name);
    if (it == binders.end()) continue;
    for (int b : it->second) {
      if (b >= stmt.id) continue;
      const Unit& u = units[(size_t)b];
      if (depth == 0) {
        if (u.touches_import_state) return true;
        named.insert(u.loaded_module_reads.begin(), u.loaded_module_reads.end());
      } else if (u.changes_import_state) {
        return true;
      }
      for (const Names* set : {&u.call_reads, &u.def_reads})
        for (const auto& n : *set)
          if (!reached.count(n)) work.emplace_back(n, depth + 1);
    }
  }
  return false;
}

// Whether import unit `u` loads module `m` (`import a.b` loads a and a.b).
bool loads(const Unit& u, const std::string& m) {
  for (const auto& i : u.imports)
    if (i == m || (i.size() > m.size() && i.compare(0, m.size(), m) == 0 && i[m.size()] == '.')) return true;
  return false;
}

}  // namespace

std::vector<Force> plan_forces(const std::vector<Unit>& units, const std::vector<bool>& star) {
  std::map<std::string, std::vector<int>> binders;
  for (const auto& u : units)
    for (const auto& n : u.binds) binders[n].push_back(u.id);

  std::vector<Force> plan;
  std::unordered_set<int> forced;
  // Adds `id` and, first, the lazy units binding what it reads at definition
  // time (materialization runs those first anyway; listing them keeps the plan explicit).
  auto add_closure = [&](int id, Force& f, auto& self) -> void {
    if (forced.count(id)) return;
    forced.insert(id);
    for (const auto& n : units[(size_t)id].def_reads) {
      auto it = binders.find(n);
      if (it == binders.end()) continue;
      for (int b : it->second)
        if (b < id && units[(size_t)b].lazy) self(b, f, self);
    }
    f.units.push_back(id);
  };

  for (const auto& e : units) {
    if (e.lazy) continue;
    Force f;
    f.before = e.id;
    if (star[(size_t)e.id]) {
      for (int i = 0; i < e.id; ++i)
        if (units[(size_t)i].lazy) add_closure(i, f, add_closure);
    } else if (!e.abc_registrant.empty()) {
      // ABC.register(Cls) changes what isinstance/issubclass answer, and
      // nothing else of this module (Unit::abc_registrant): the units that
      // may ask (def_calls) or look into Cls run first.
      for (int i = 0; i < e.id; ++i) {
        const Unit& u = units[(size_t)i];
        if (!u.lazy || forced.count(i)) continue;
        bool reads = u.def_reads.count(e.abc_registrant) && !u.captured_reads.count(e.abc_registrant);
        if (u.def_calls || reads) add_closure(i, f, add_closure);
      }
    } else if (!e.mentions.empty() || !e.binds.empty()) {
      // Names the statement (or code it may reach) may rebind or delete:
      // what it binds, a top-level `del`'s names, `global` writes.
      Names rebound(e.binds.begin(), e.binds.end());
      if (e.kind == "del") rebound.insert(e.mentions.begin(), e.mentions.end());
      Names touched = touched_by(e, binders, units, rebound);
      // What it binds, too: an eager `def`/`class` rebinding a name (locale's
      // `def setlocale(...)` wrapping `_setlocale = setlocale`) does not
      // mention its own name, yet a lazy unit reading that name at
      // definition time must run before it, to see the earlier binding.
      touched.insert(e.binds.begin(), e.binds.end());
      for (int i = 0; i < e.id; ++i) {
        const Unit& u = units[(size_t)i];
        if (!u.lazy || forced.count(i)) continue;
        bool force = false;
        for (const auto& n : u.def_reads) {
          // A value only taken as it is (an annotation, an alias): a
          // mutation shows through the same object either way.
          if (u.captured_reads.count(n) && !rebound.count(n)) continue;
          if (touched.count(n)) {
            force = true;
            break;
          }
        }
        for (const auto& n : u.plan_reads) force = force || touched.count(n) != 0;
        if (force) add_closure(i, f, add_closure);
      }
    }
    // An import resolves against sys.modules, sys.path and the import hooks
    // as they are when it runs: the pending imports before a statement that
    // may change them run first, as they did eagerly.
    Names named;
    bool any = !star[(size_t)e.id] && reaches_import_state(e, binders, units, named);
    if (any || !named.empty())
      for (int i = 0; i < e.id; ++i) {
        const Unit& u = units[(size_t)i];
        if (!u.lazy || forced.count(i) || u.imports.empty()) continue;
        bool wanted = any;
        for (const auto& m : named) wanted = wanted || loads(u, m);
        if (wanted) add_closure(i, f, add_closure);
      }
    std::sort(f.units.begin(), f.units.end());  // source order, whichever rule forced each
    if (!f.units.empty()) plan.push_back(std::move(f));
  }
  return plan;
}

}  // namespace lazyexec::analyze
