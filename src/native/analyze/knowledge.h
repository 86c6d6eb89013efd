// The knowledge base: which external callables, bases and metaclasses are
// pure, which names read changing state, which modules stay eager. It is data
// (src/lazyexec/analyze/knowledge.toml, extended by configuration); this class
// only answers questions about dotted names. Patterns may use '*'.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace lazyexec::analyze {

// Hashes std::string and std::string_view alike, so that a lookup by view
// builds no string (the finder asks for every import).
struct NameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using NameTable = std::unordered_set<std::string, NameHash, std::equal_to<>>;

class NameSet {
 public:
  void add(std::string pattern);
  void reserve(size_t n) { exact_.reserve(exact_.size() + n); }
  bool contains(std::string_view dotted) const;
  // Listed by name, not matched by a pattern ("typing.*" speaks for
  // typing's public API as others use it, not for each of its own helpers).
  bool names_exactly(std::string_view dotted) const { return exact_.find(dotted) != exact_.end(); }
  bool empty() const { return exact_.empty() && globs_.empty(); }

 private:
  NameTable exact_;
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
  // Callables whose call has an effect (registers, configures, emits, reads
  // the clock), with why. Calling one is an impure call (as for any callable
  // not known pure; this only explains it); reading one without calling it
  // (`partial(warnings.warn, ...)`, `def f(clock=time.time)`) is an ordinary
  // attribute read of a module. Prefix match as for `impure`.
  std::unordered_map<std::string, std::string> effects;
  // Imports kept eager in one module only: importer -> the modules whose
  // import it keeps eager (its code, or its importers', rely on a side effect
  // of that import: email.utils' `import urllib.parse` makes `urllib.parse`
  // the attribute email._header_value_parser reads after a bare `import urllib`).
  std::unordered_map<std::string, NameSet> eager_imports_in;
  // Class decorators that copy the class's module namespace only to serve as
  // the globals of the methods they generate, so that typing.get_type_hints
  // resolves the string annotations those methods copy from the class
  // (attrs' `__init__`): see Unit::own_views.
  NameSet namespace_copy_decorators;
  // ABCs (metaclass abc.ABCMeta) whose `register(cls)` only adds cls to the
  // ABC's registry: what it changes is the answer of isinstance/issubclass
  // against the ABC (and its bases), nothing of the module (Unit::abc_registrant).
  NameSet abc_registries;
  // Callables of other modules whose call may list classes' subclasses
  // (`cls.__subclasses__()`): the classes pending imports would have
  // created show there, so an eager statement calling one (or decorating
  // with one) runs after the pending imports before it (Unit::lists_subclasses).
  // From the cross-module summaries (analyze/summaries.py, "subclasses"
  // facts): matplotlib's `@_docstring.interpd` finds `Text` among `Artist`'s
  // subclasses.
  NameSet subclass_listers;
  // Callables of other modules pure to call whose result is not judged (a
  // function making a function, lambda or class: the summaries' "call"
  // facts). `pure` also lists them, but `pure` entries are decorator
  // factories too, and `@f(...)` calls what f returns: pyupgrade's
  // `@register(ast.Call)`, whose closure appends to a registry.
  NameSet not_factories;
  // Names another module binds once to a name the knowledge base knows
  // (`from typing import final as final` in _pytest.compat, followed from
  // module to module): dotted name -> the known name it is, from the
  // cross-module summaries (analyze/summaries.py, "alias:" facts). Rules
  // that ask what a callable does, not only whether it is pure (a class
  // decorator that returns its class: Unit::plain_new of attrs classes),
  // read it through the known name.
  std::unordered_map<std::string, std::string> aliases;
  // Configuration `defer = "imports"`: only import statements may be lazy.
  bool imports_only = false;

  // The reason reading a dotted name is impure (its value changes), or nullptr.
  const std::string* impure_reason(std::string_view dotted) const;
  // The reason calling a dotted name is impure: a changing value or a
  // callable with an effect, or nullptr.
  const std::string* call_reason(std::string_view dotted) const;
  // A module or any package above it is never lazy; an entry "=pkg" covers
  // the module pkg itself only, not its submodules.
  // With `importing`, whether an import of the module is kept eager: "=pkg"
  // entries do not count.
  bool module_never_lazy(std::string_view module, bool importing = false) const;
  // Whether `importer`'s import of `module` is kept eager (eager_imports_in).
  bool import_kept_eager(std::string_view importer, std::string_view module) const;
};

// The top-level `never_lazy = [...]` array of knowledge.toml, read without a
// TOML parser (activation needs only it, before the first table): strings,
// commas, comments and blank lines; nullopt on anything else, and the caller
// parses the whole file. tests/python checks it against tomllib's reading.
std::optional<std::vector<std::string>> never_lazy_entries(std::string_view toml);

}  // namespace lazyexec::analyze
