#include "importer/policy.h"

#include <cstring>

namespace lazyexec::importer {

bool Policy::selects(std::string_view name) const {
  // never-lazy covers the module and everything below a never-lazy package;
  // an entry "=pkg" the module pkg alone (analyze/knowledge.h).
  char marked[256];  // "=" + name without an allocation (names are short)
  if (name.size() < sizeof marked) {
    marked[0] = '=';
    std::memcpy(marked + 1, name.data(), name.size());
    if (never.contains(std::string_view(marked, name.size() + 1))) return false;
  } else if (never.contains("=" + std::string(name))) {
    return false;
  }
  for (size_t end = name.find('.');; end = name.find('.', end + 1)) {
    if (never.contains(name.substr(0, end))) return false;
    if (end == std::string_view::npos) break;
  }
  if (exclude.contains(name)) return false;
  if (!include.empty() && !include.contains(name)) return false;
  return eager.find(name) == eager.end();
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

// The first occurrence of `needle` (a "__lazy_module..." name) at a line
// start at or after `from`, or npos. It looks for the needle's 'z' with
// memchr, which is vectorised and stops rarely ('z' is rare in Python
// source); a scan for the first character would stop at every '_'. The
// finder scans every source file it is asked about in mode "marked".
size_t find_at_line_start(std::string_view s, std::string_view needle, size_t from) {
  constexpr size_t kZ = 4;  // "__la|z|y_module"
  for (size_t at = from + kZ; at < s.size();) {
    const void* hit = memchr(s.data() + at, 'z', s.size() - at);
    if (hit == nullptr) return std::string_view::npos;
    size_t z = (size_t)(static_cast<const char*>(hit) - s.data());
    size_t i = z - kZ;
    if (s.compare(i, needle.size(), needle) == 0 && at_line_start(s, i)) return i;
    at = z + 1;
  }
  return std::string_view::npos;
}

// `__lazy_module__ = True` (optionally annotated) at `i`, to the line's end.
bool marker_assignment(std::string_view source, size_t i) {
  constexpr std::string_view kMarker = "__lazy_module__";
  if (source.substr(i, kMarker.size()) != kMarker) return false;
  size_t start = i + kMarker.size();
  size_t end = source.find('\n', start);
  std::string_view rest = source.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
  rest = rest.substr(0, rest.find('#'));
  size_t eq = rest.find('=');
  if (eq == std::string_view::npos) return false;
  std::string_view target = strip(rest.substr(0, eq));  // "" or ": bool"
  if (!target.empty() && target.front() != ':') return false;
  std::string_view value = rest.substr(eq + 1);
  if (!value.empty() && value.front() == '=') return false;  // `==`: a comparison
  return strip(value) == "True";
}

}  // namespace

bool has_marker(std::string_view source) {
  constexpr std::string_view kMarker = "__lazy_module__";
  for (size_t i = find_at_line_start(source, kMarker, 0); i != std::string_view::npos;
       i = find_at_line_start(source, kMarker, i + 1))
    if (marker_assignment(source, i)) return true;
  return false;
}

bool has_pep810_list(std::string_view source) {
  return find_at_line_start(source, "__lazy_modules__", 0) != std::string_view::npos;
}

bool opts_in(std::string_view source) {
  // One pass for both names: they share their first 13 characters.
  constexpr std::string_view kPrefix = "__lazy_module";
  for (size_t i = find_at_line_start(source, kPrefix, 0); i != std::string_view::npos;
       i = find_at_line_start(source, kPrefix, i + 1)) {
    if (source.substr(i + kPrefix.size(), 3) == "s__") return true;
    if (marker_assignment(source, i)) return true;
  }
  return false;
}

}  // namespace lazyexec::importer
