#include "analyze/knowledge.h"

namespace lazyexec::analyze {

bool glob_match(std::string_view p, std::string_view t) {
  // Iterative wildcard match with single backtrack point: linear for the
  // short patterns a knowledge base holds.
  size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (pi < p.size() && (p[pi] == t[ti] || p[pi] == '?')) {
      ++pi;
      ++ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

void NameSet::add(std::string pattern) {
  if (pattern.find_first_of("*?") == std::string::npos) {
    exact_.insert(std::move(pattern));
  } else {
    globs_.push_back(std::move(pattern));
  }
}

bool NameSet::contains(std::string_view dotted) const {
  if (exact_.find(dotted) != exact_.end()) return true;
  for (const auto& g : globs_)
    if (glob_match(g, dotted)) return true;
  return false;
}

namespace {

// The entry of `table` for `dotted` or the nearest package or object above it.
const std::string* prefix_lookup(const std::unordered_map<std::string, std::string>& table, std::string_view dotted) {
  std::string_view probe = dotted;
  while (true) {
    auto it = table.find(std::string(probe));
    if (it != table.end()) return &it->second;
    auto dot = probe.rfind('.');
    if (dot == std::string_view::npos) return nullptr;
    probe = probe.substr(0, dot);
  }
}

}  // namespace

const std::string* KnowledgeBase::impure_reason(std::string_view dotted) const {
  return prefix_lookup(impure, dotted);
}

const std::string* KnowledgeBase::call_reason(std::string_view dotted) const {
  if (const std::string* why = prefix_lookup(impure, dotted)) return why;
  return prefix_lookup(effects, dotted);
}

bool KnowledgeBase::module_never_lazy(std::string_view module, bool importing) const {
  // "=pkg" names the module pkg alone, not its submodules (importlib is the
  // import system; importlib.metadata is an ordinary library), and keeps the
  // module itself eager, not the imports of it (it has no side effect to wait for).
  if (!importing && never_lazy.contains("=" + std::string(module))) return true;
  std::string_view probe = module;
  while (!probe.empty()) {
    if (never_lazy.contains(probe)) return true;
    auto dot = probe.rfind('.');
    if (dot == std::string_view::npos) break;
    probe = probe.substr(0, dot);
  }
  return false;
}

bool KnowledgeBase::import_kept_eager(std::string_view importer, std::string_view module) const {
  if (eager_imports_in.empty() || importer.empty()) return false;
  auto it = eager_imports_in.find(std::string(importer));
  return it != eager_imports_in.end() && it->second.contains(module);
}

std::optional<std::vector<std::string>> never_lazy_entries(std::string_view toml) {
  // The key at the start of a line of the top-level table (before any `[`).
  size_t at = 0;
  for (;;) {
    if (at >= toml.size() || toml[at] == '[') return std::nullopt;
    if (toml.compare(at, 10, "never_lazy") == 0) break;
    size_t eol = toml.find('\n', at);
    if (eol == std::string_view::npos) return std::nullopt;
    at = eol + 1;
  }
  size_t i = at + 10;
  auto blank = [&] {
    while (i < toml.size() && (toml[i] == ' ' || toml[i] == '\t')) ++i;
  };
  // Whitespace, newlines and comments between array items.
  auto gap = [&] {
    for (;;) {
      blank();
      if (i < toml.size() && (toml[i] == '\n' || toml[i] == '\r')) {
        ++i;
      } else if (i < toml.size() && toml[i] == '#') {
        while (i < toml.size() && toml[i] != '\n') ++i;
      } else {
        return;
      }
    }
  };
  blank();
  if (i >= toml.size() || toml[i] != '=') return std::nullopt;
  ++i;
  blank();
  if (i >= toml.size() || toml[i] != '[') return std::nullopt;
  ++i;
  std::vector<std::string> out;
  for (;;) {
    gap();
    if (i >= toml.size()) return std::nullopt;
    if (toml[i] == ']') break;
    char quote = toml[i];
    if (quote != '"' && quote != '\'') return std::nullopt;
    size_t end = toml.find(quote, i + 1);
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view item = toml.substr(i + 1, end - i - 1);
    for (char c : item)  // escapes, control characters, a newline: the parser's job
      if (c == '\\' || (unsigned char)c < 0x20 || c == 0x7f) return std::nullopt;
    if (item.size() >= 2 && item[0] == quote) return std::nullopt;  // a multi-line string
    out.emplace_back(item);
    i = end + 1;
    gap();
    if (i < toml.size() && toml[i] == ',') {
      ++i;
      continue;
    }
    gap();
    if (i < toml.size() && toml[i] == ']') break;
    return std::nullopt;
  }
  ++i;
  blank();
  if (i < toml.size() && toml[i] == '#')
    while (i < toml.size() && toml[i] != '\n') ++i;
  if (i < toml.size() && toml[i] != '\n' && toml[i] != '\r') return std::nullopt;  // more on the line
  return out;
}

}  // namespace lazyexec::analyze
