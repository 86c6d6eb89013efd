#include "importer/policy.h"

namespace lazyexec::importer {

bool Policy::selects(std::string_view name) const {
  // never-lazy covers the module and everything below a never-lazy package;
  // an entry "=pkg" the module pkg alone (analyze/knowledge.h).
  if (never.contains("=" + std::string(name))) return false;
  for (size_t end = name.find('.');; end = name.find('.', end + 1)) {
    if (never.contains(name.substr(0, end))) return false;
    if (end == std::string_view::npos) break;
  }
  if (exclude.contains(name)) return false;
  if (!include.empty() && !include.contains(name)) return false;
  return !eager.count(std::string(name));
}

bool Policy::opted_in(std::string_view name, std::string_view path) const {
  for (const auto& [dir, names] : opted) {
    if (path.size() <= dir.size() || path.compare(0, dir.size(), dir) != 0 ||
        (path[dir.size()] != '/' && path[dir.size()] != '\\'))
      continue;
    std::string probe(name);
    if (names.count(probe)) return true;
    for (size_t dot = name.find('.'); dot != std::string_view::npos; dot = name.find('.', dot + 1)) {
      probe.assign(name.substr(0, dot)).append(".*");
      if (names.count(probe)) return true;
    }
  }
  return false;
}

namespace {

bool at_line_start(std::string_view s, size_t i) { return i == 0 || s[i - 1] == '\n' || s[i - 1] == '\r'; }

std::string_view strip(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool has_marker(std::string_view source) {
  constexpr std::string_view kMarker = "__lazy_module__";
  for (size_t i = source.find(kMarker); i != std::string_view::npos; i = source.find(kMarker, i + 1)) {
    if (!at_line_start(source, i)) continue;
    size_t start = i + kMarker.size();
    size_t end = source.find('\n', start);
    std::string_view rest = source.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    rest = rest.substr(0, rest.find('#'));
    size_t eq = rest.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view target = strip(rest.substr(0, eq));  // "" or ": bool"
    if (!target.empty() && target.front() != ':') continue;
    std::string_view value = rest.substr(eq + 1);
    if (!value.empty() && value.front() == '=') continue;  // `==`: a comparison
    if (strip(value) == "True") return true;
  }
  return false;
}

bool has_pep810_list(std::string_view source) {
  constexpr std::string_view kName = "__lazy_modules__";
  for (size_t i = source.find(kName); i != std::string_view::npos; i = source.find(kName, i + 1))
    if (at_line_start(source, i)) return true;
  return false;
}

}  // namespace lazyexec::importer
