#include "analyze/stable_inputs.h"

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
    if (!f.units.empty()) plan.push_back(std::move(f));
  }
  return plan;
}

}  // namespace lazyexec::analyze
