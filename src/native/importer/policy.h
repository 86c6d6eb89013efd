// Which modules the import hook claims, compiled once per activation: the
// never-lazy set, include / exclude globs, and the modules the usage profile
// says this program uses whole (they load eagerly: laziness would be pure cost).
#pragma once

#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "analyze/knowledge.h"

namespace lazyexec::importer {

struct Policy {
  bool all_mode = false;           // mode "all": no marker needed
  analyze::NameSet never;          // never lazy: the module or any package above it ("=pkg": pkg alone)
  analyze::NameSet include;        // empty: everything
  analyze::NameSet exclude;
  analyze::NameTable eager;  // usage profile: whole modules used last time
  // Installed distributions that opted in (docs/package-opt-in.md): per
  // site-packages directory, the modules lazy in mode "marked" without a
  // marker, when found in that directory (not a same-named module that
  // shadows it from elsewhere on sys.path). Entries are exact module names,
  // or "pkg.*" for every module below the package pkg (no globs otherwise:
  // one hash lookup per dotted prefix).
  std::vector<std::pair<std::string, std::unordered_set<std::string>>> opted;

  // Whether policy selects `name` (before any marker check).
  bool selects(std::string_view name) const;
  // Whether `name`, found at `path`, belongs to an opted-in distribution.
  bool opted_in(std::string_view name, std::string_view path) const;
};

// A top-level `__lazy_module__ = True` (optionally annotated), found by a byte
// scan without running or parsing the module.
bool has_marker(std::string_view source);
// A top-level `__lazy_modules__ = ...` (PEP 810), by byte scan.
bool has_pep810_list(std::string_view source);

// Either of the two: the finder's test in mode "marked" (one pass).
bool opts_in(std::string_view source);

}  // namespace lazyexec::importer
