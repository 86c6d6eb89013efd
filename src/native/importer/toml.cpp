#include "importer/toml.h"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace lazyexec::importer {
namespace {

using py::Ref;

// Thrown inside the reader: the caller hands the file to tomllib.
struct Declined {};

// What a table is, for TOML's rules on defining it again (the reader
// declines whenever those rules would need more than these marks).
enum : int {
  kExplicit = 1,        // defined by a [header]
  kDotted = 2,          // made by a dotted key (`a.b = 1`), in `section`
  kFrozen = 4,          // an inline table: nothing may be added to it
  kArrayOfTables = 8,   // a list made by [[header]] (other lists are values)
};
struct Mark {
  int flags = 0;
  int section = 0;  // the [header] section (or inline table) that made it
};

bool control(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }
bool bare_key_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
int digit_value(char c, int base) {
  int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 99;
  return v < base ? v : -1;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += (char)cp;
  } else if (cp < 0x800) {
    out += (char)(0xC0 | (cp >> 6));
    out += (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += (char)(0xE0 | (cp >> 12));
    out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  } else {
    out += (char)(0xF0 | (cp >> 18));
    out += (char)(0x80 | ((cp >> 12) & 0x3F));
    out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  }
}

// Digits with single underscores between them (TOML's `1_000`): the digits
// alone, or Declined.
std::string digits_of(std::string_view s, int base) {
  std::string out;
  if (s.empty()) throw Declined{};
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 == s.size() || s[i + 1] == '_') throw Declined{};
      continue;
    }
    if (digit_value(s[i], base) < 0) throw Declined{};
    out += s[i];
  }
  return out;
}

class Reader {
 public:
  explicit Reader(std::string_view text) : s_(text) {}

  Ref document() {
    Ref root = new_dict();
    PyObject* table = root.get();
    while (true) {
      skip_spaces();
      if (at_end()) break;
      char c = s_[i_];
      if (c == '\n') {
        ++i_;
        continue;
      }
      if (c == '#') {
        skip_comment();
        continue;
      }
      if (c == '[') {
        table = header(root.get());
      } else {
        key_value(table, section_);
      }
      end_of_line();
    }
    return root;
  }

 private:
  bool at_end() const { return i_ >= s_.size(); }
  char peek(size_t ahead = 0) const { return i_ + ahead < s_.size() ? s_[i_ + ahead] : '\0'; }
  void expect(char c) {
    if (peek() != c || at_end()) throw Declined{};
    ++i_;
  }
  void skip_spaces() {
    while (!at_end() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  void skip_comment() {
    if (peek() != '#') return;
    for (++i_; !at_end() && s_[i_] != '\n'; ++i_)
      if (control((unsigned char)s_[i_])) throw Declined{};
  }
  // Spaces, a comment, then a newline or the end.
  void end_of_line() {
    skip_spaces();
    skip_comment();
    if (at_end()) return;
    expect('\n');
  }
  // Inside an array: spaces, comments and newlines.
  void skip_blank() {
    while (true) {
      skip_spaces();
      if (peek() == '#') skip_comment();
      if (!at_end() && s_[i_] == '\n') {
        ++i_;
        continue;
      }
      return;
    }
  }

  Ref new_dict() {
    Ref d = py::check(PyDict_New());
    if (inline_depth_ > 0) marks_[d.get()].flags |= kFrozen;
    return d;
  }
  Ref text(const std::string& bytes) {
    PyObject* s = PyUnicode_DecodeUTF8(bytes.data(), (Py_ssize_t)bytes.size(), nullptr);
    if (s == nullptr) {
      if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) throw py::PyError{};
      PyErr_Clear();
      throw Declined{};
    }
    return Ref::steal(s);
  }

  // --- keys ---
  Ref simple_key() {
    char c = peek();
    if (c == '"' || c == '\'') {
      if (peek(1) == c && peek(2) == c) throw Declined{};  // a multi-line string is no key
      return text(c == '"' ? basic_string() : literal_string());
    }
    size_t from = i_;
    while (!at_end() && bare_key_char(s_[i_])) ++i_;
    if (i_ == from) throw Declined{};
    return text(std::string(s_.substr(from, i_ - from)));
  }
  std::vector<Ref> key() {
    std::vector<Ref> parts{simple_key()};
    while (true) {
      skip_spaces();
      if (peek() != '.') return parts;
      ++i_;
      skip_spaces();
      parts.push_back(simple_key());
    }
  }

  // --- strings ---
  void escape(std::string& out) {
    char e = peek();
    ++i_;
    switch (e) {
      case 'b': out += '\b'; return;
      case 't': out += '\t'; return;
      case 'n': out += '\n'; return;
      case 'f': out += '\f'; return;
      case 'r': out += '\r'; return;
      case '"': out += '"'; return;
      case '\\': out += '\\'; return;
      case 'u':
      case 'U': {
        int n = e == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int k = 0; k < n; ++k) {
          int v = digit_value(peek(), 16);
          if (v < 0 || at_end()) throw Declined{};
          cp = cp * 16 + (uint32_t)v;
          ++i_;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) throw Declined{};
        append_utf8(out, cp);
        return;
      }
      default:
        throw Declined{};
    }
  }
  std::string basic_string() {
    expect('"');
    std::string out;
    while (true) {
      if (at_end()) throw Declined{};
      char c = s_[i_];
      if (c == '"') {
        ++i_;
        return out;
      }
      if (c == '\\') {
        ++i_;
        escape(out);
        continue;
      }
      if (control((unsigned char)c)) throw Declined{};
      out += c;
      ++i_;
    }
  }
  std::string literal_string() {
    expect('\'');
    size_t from = i_;
    while (!at_end() && s_[i_] != '\'') {
      if (control((unsigned char)s_[i_])) throw Declined{};
      ++i_;
    }
    expect('\'');
    return std::string(s_.substr(from, i_ - 1 - from));
  }
  // """...""" or '''...''': a newline right after the opening is dropped;
  // up to two quotes may stand right before the closing three.
  std::string multiline_string(char quote) {
    i_ += 3;
    if (peek() == '\n') ++i_;
    std::string out;
    while (true) {
      if (at_end()) throw Declined{};
      char c = s_[i_];
      if (c == quote && peek(1) == quote && peek(2) == quote) {
        size_t n = 3;
        while (peek(n) == quote) ++n;
        if (n > 5) throw Declined{};
        out.append(n - 3, quote);
        i_ += n;
        return out;
      }
      if (c == '\\' && quote == '"') {
        ++i_;
        // A line-ending backslash drops the whitespace and newlines after it.
        size_t at = i_;
        while (at < s_.size() && (s_[at] == ' ' || s_[at] == '\t')) ++at;
        if (at < s_.size() && s_[at] == '\n') {
          i_ = at;
          while (!at_end() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n')) ++i_;
        } else {
          escape(out);
        }
        continue;
      }
      if (c != '\n' && control((unsigned char)c)) throw Declined{};
      out += c;
      ++i_;
    }
  }

  // --- numbers and the other scalars ---
  Ref number_or_keyword() {
    size_t from = i_;
    while (!at_end() && (bare_key_char(s_[i_]) || s_[i_] == '+' || s_[i_] == '.')) ++i_;
    std::string_view token = s_.substr(from, i_ - from);
    if (token == "true") return Ref::borrow(Py_True);
    if (token == "false") return Ref::borrow(Py_False);
    if (token == "inf" || token == "+inf") return py::check(PyFloat_FromDouble(Py_HUGE_VAL));
    if (token == "-inf") return py::check(PyFloat_FromDouble(-Py_HUGE_VAL));
    if (token.size() > 2 && token[0] == '0' && (token[1] == 'x' || token[1] == 'o' || token[1] == 'b')) {
      int base = token[1] == 'x' ? 16 : token[1] == 'o' ? 8 : 2;
      return integer(digits_of(token.substr(2), base), base, false);
    }
    // [+-]? (0 | [1-9](_?[0-9])*) (\.[0-9](_?[0-9])*)? ([eE][+-]?[0-9](_?[0-9])*)?
    size_t p = 0;
    bool negative = false;
    if (p < token.size() && (token[p] == '+' || token[p] == '-')) negative = token[p++] == '-';
    size_t int_end = p;
    while (int_end < token.size() && (digit_value(token[int_end], 10) >= 0 || token[int_end] == '_')) ++int_end;
    std::string whole = digits_of(token.substr(p, int_end - p), 10);
    if (whole.size() > 1 && whole[0] == '0') throw Declined{};
    std::string literal = (negative ? "-" : "") + whole;
    size_t q = int_end;
    bool is_float = false;
    if (q < token.size() && token[q] == '.') {
      size_t end = q + 1;
      while (end < token.size() && (digit_value(token[end], 10) >= 0 || token[end] == '_')) ++end;
      literal.append(".").append(digits_of(token.substr(q + 1, end - q - 1), 10));
      q = end;
      is_float = true;
    }
    if (q < token.size() && (token[q] == 'e' || token[q] == 'E')) {
      size_t end = q + 1;
      std::string sign;
      if (end < token.size() && (token[end] == '+' || token[end] == '-')) sign = token[end++];
      size_t digits_from = end;
      while (end < token.size() && (digit_value(token[end], 10) >= 0 || token[end] == '_')) ++end;
      literal.append("e").append(sign).append(digits_of(token.substr(digits_from, end - digits_from), 10));
      q = end;
      is_float = true;
    }
    if (q != token.size()) throw Declined{};  // a date, a time, nan, or not TOML
    if (!is_float) return integer(whole, 10, negative);
    char* end = nullptr;
    double v = PyOS_string_to_double(literal.c_str(), &end, nullptr);
    if (v == -1.0 && PyErr_Occurred()) throw py::PyError{};
    if (end == nullptr || *end != '\0') throw Declined{};
    return py::check(PyFloat_FromDouble(v));
  }
  Ref integer(const std::string& digits, int base, bool negative) {
    uint64_t v = 0;
    for (char c : digits) {
      uint64_t d = (uint64_t)digit_value(c, base);
      if (v > (UINT64_MAX - d) / (uint64_t)base) throw Declined{};
      v = v * (uint64_t)base + d;
    }
    if (v > (uint64_t)INT64_MAX) throw Declined{};  // tomllib has no bound; this reader stops at 64 bits
    return py::check(PyLong_FromLongLong(negative ? -(long long)v : (long long)v));
  }

  // --- values ---
  Ref value() {
    char c = peek();
    if (at_end()) throw Declined{};
    if (c == '"' || c == '\'') {
      if (peek(1) == c && peek(2) == c) return text(multiline_string(c));
      return text(c == '"' ? basic_string() : literal_string());
    }
    if (c == '[') return array();
    if (c == '{') return inline_table();
    return number_or_keyword();
  }
  Ref array() {
    expect('[');
    Ref list = py::check(PyList_New(0));
    while (true) {
      skip_blank();
      if (peek() == ']') break;
      Ref item = value();
      if (PyList_Append(list.get(), item.get()) < 0) throw py::PyError{};
      skip_blank();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() != ']') throw Declined{};
    }
    expect(']');
    return list;
  }
  Ref inline_table() {
    expect('{');
    ++inline_depth_;
    Ref table = new_dict();
    int section = next_section_++;
    skip_spaces();
    if (peek() == '}') {
      ++i_;
    } else {
      while (true) {
        skip_spaces();
        key_value(table.get(), section);
        skip_spaces();
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect('}');
        break;
      }
    }
    --inline_depth_;
    return table;
  }

  // `a.b.c = value` in `table`: the tables on the way are made by dotted
  // keys of this same section, or are new.
  void key_value(PyObject* table, int section) {
    std::vector<Ref> parts = key();
    skip_spaces();
    expect('=');
    skip_spaces();
    Ref v = value();
    PyObject* at = table;
    for (size_t k = 0; k + 1 < parts.size(); ++k) {
      PyObject* next = PyDict_GetItemWithError(at, parts[k].get());
      if (next == nullptr) {
        if (PyErr_Occurred()) throw py::PyError{};
        Ref made = new_dict();
        marks_[made.get()].flags |= kDotted;
        marks_[made.get()].section = section;
        if (PyDict_SetItem(at, parts[k].get(), made.get()) < 0) throw py::PyError{};
        next = made.get();
      } else {
        auto mark = marks_.find(next);
        if (!PyDict_Check(next) || mark == marks_.end() || !(mark->second.flags & kDotted) ||
            mark->second.section != section)
          throw Declined{};
      }
      at = next;
    }
    int present = PyDict_Contains(at, parts.back().get());
    if (present < 0) throw py::PyError{};
    if (present) throw Declined{};
    if (PyDict_SetItem(at, parts.back().get(), v.get()) < 0) throw py::PyError{};
  }

  // [a.b] or [[a.b]]: the table the following key/values go to.
  PyObject* header(PyObject* root) {
    expect('[');
    bool array_of_tables = peek() == '[';
    if (array_of_tables) ++i_;
    skip_spaces();
    std::vector<Ref> parts = key();
    skip_spaces();
    expect(']');
    if (array_of_tables) expect(']');
    section_ = next_section_++;
    PyObject* at = root;
    for (size_t k = 0; k + 1 < parts.size(); ++k) {
      PyObject* next = PyDict_GetItemWithError(at, parts[k].get());
      if (next == nullptr) {
        if (PyErr_Occurred()) throw py::PyError{};
        Ref made = new_dict();
        if (PyDict_SetItem(at, parts[k].get(), made.get()) < 0) throw py::PyError{};
        next = made.get();
      } else if (PyList_Check(next)) {
        auto mark = marks_.find(next);
        if (mark == marks_.end() || !(mark->second.flags & kArrayOfTables) || PyList_GET_SIZE(next) == 0)
          throw Declined{};
        next = PyList_GET_ITEM(next, PyList_GET_SIZE(next) - 1);
      } else if (!PyDict_Check(next) || (marks_[next].flags & kFrozen)) {
        throw Declined{};
      }
      at = next;
    }
    PyObject* last = parts.back().get();
    PyObject* found = PyDict_GetItemWithError(at, last);
    if (found == nullptr && PyErr_Occurred()) throw py::PyError{};
    if (array_of_tables) {
      Ref element = new_dict();
      if (found == nullptr) {
        Ref list = py::check(PyList_New(0));
        marks_[list.get()].flags = kArrayOfTables;
        if (PyDict_SetItem(at, last, list.get()) < 0) throw py::PyError{};
        found = list.get();
      } else if (!PyList_Check(found) || !(marks_[found].flags & kArrayOfTables)) {
        throw Declined{};
      }
      if (PyList_Append(found, element.get()) < 0) throw py::PyError{};
      return element.get();
    }
    if (found == nullptr) {
      Ref made = new_dict();
      marks_[made.get()].flags = kExplicit;
      if (PyDict_SetItem(at, last, made.get()) < 0) throw py::PyError{};
      return made.get();
    }
    if (!PyDict_Check(found) || (marks_[found].flags & (kExplicit | kDotted | kFrozen))) throw Declined{};
    marks_[found].flags |= kExplicit;
    return found;
  }

  std::string_view s_;
  size_t i_ = 0;
  int section_ = 0, next_section_ = 1, inline_depth_ = 0;
  std::unordered_map<PyObject*, Mark> marks_;
};

}  // namespace

Ref parse_toml(std::string_view text) {
  // As _toml_load reads the file: UTF-8 (a BOM is not TOML to tomllib and
  // stops the reader at its first statement). Carriage returns are left to
  // tomllib (CRLF rules inside multi-line strings).
  PyObject* decoded = PyUnicode_DecodeUTF8(text.data(), (Py_ssize_t)text.size(), nullptr);
  if (decoded == nullptr) {
    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) throw py::PyError{};
    PyErr_Clear();
    return Ref();
  }
  Py_DECREF(decoded);
  if (text.find('\r') != std::string_view::npos) return Ref();
  try {
    return Reader(text).document();
  } catch (const Declined&) {
    return Ref();
  }
}

}  // namespace lazyexec::importer
