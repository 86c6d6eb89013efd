// The knowledge base: which external callables, bases and metaclasses are
// pure, which names read changing state, which modules stay eager. It is data
// (src/lazyexec/analyze/knowledge.toml, extended by configuration); this class
// only answers questions about dotted names. Patterns may use '*'.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace lazyexec::analyze {

class NameSet {
 public:
  void add(std::string pattern);
  bool contains(std::string_view dotted) const;
  bool empty() const { return exact_.empty() && globs_.empty(); }

 private:
  std::unordered_set<std::string> exact_;
  std::vector<std::string> globs_;
};

bool glob_match(std::string_view pattern, std::string_view text);

struct KnowledgeBase {
  NameSet pure;             // callables (and decorator factories) safe to call at definition time
  NameSet pure_bases;       // external classes safe to subclass
  // External classes safe to subclass whose attributes may still compute
  // (their body ran code the analysis cannot see through): from the
  // cross-module summaries (analyze/summaries.py), not for attribute reads.
  NameSet safe_bases;
  NameSet pure_metaclasses; // metaclasses whose class creation has no side effects
  NameSet never_lazy;       // modules imported for their side effects, never deferred
  // Modules whose import (with everything it imports in turn) is known to
  // change nothing outside themselves, found by the build from their sources
  // (analyze/side_effects.py): an import of one whose names the module never
  // reads is a re-export for other modules, not a side-effect import.
  NameSet effect_free;
  // Names whose value changes while the program runs, with why (prefix match
  // on dotted names: "os.environ" covers "os.environ.get").
  std::unordered_map<std::string, std::string> impure;
  // Configuration `defer = "imports"`: only import statements may be lazy.
  bool imports_only = false;

  // The reason a dotted name is known impure, or nullptr.
  const std::string* impure_reason(std::string_view dotted) const;
  // A module or any package above it is never lazy; an entry "=pkg" covers
  // the module pkg itself only, not its submodules.
  // With `importing`, whether an import of the module is kept eager: "=pkg"
  // entries do not count.
  bool module_never_lazy(std::string_view module, bool importing = false) const;
};

}  // namespace lazyexec::analyze
