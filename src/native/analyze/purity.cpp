// Rules 2 and 3 of the safety model: is everything a unit evaluates at
// definition time pure, and which module globals does it read (def_reads)?
// The walker errs toward eager: the first thing it cannot prove pure decides
// the reason, but it keeps walking so def_reads are complete for `explain`.
#include <algorithm>
#include <cctype>
#include <functional>
#include <set>
#include <utility>
#include <unordered_set>

#include "analyze/analyzer_impl.h"

namespace lazyexec::analyze {
namespace {

bool is_dunder(const std::string& n) {
  return n.size() > 4 && n.compare(0, 2, "__") == 0 && n.compare(n.size() - 2, 2, "__") == 0;
}

// `__unittest`: a module global that code in classes cannot even name (name
// mangling), so it is read reflectively, as `"__unittest" in
// frame.f_globals`, which no trap sees once the module has settled.
bool is_marker(const std::string& n) { return n.size() > 2 && n.compare(0, 2, "__") == 0 && !is_dunder(n); }

// Module metadata (PEP 8's "module level dunder names" other than
// __all__, and what packages conventionally publish beside them): neither
// the import system nor the interpreter reads them; tools read them as
// attributes of the module (`pkg.__version__`, getattr, pydoc), which run a
// pending unit as for any other name. They may be deferred like any
// binding: attrs' `__version_info__ = VersionInfo._from_version_string(...)`
// built an attrs class at every import of attr.
bool metadata_dunder(const std::string& n) {
  static const std::unordered_set<std::string> s = {
      "__version__", "__version_info__", "__author__", "__author_email__", "__email__",
      "__maintainer__", "__copyright__", "__license__", "__credits__", "__status__",
      "__date__", "__title__", "__summary__", "__uri__", "__url__", "__description__"};
  return s.count(n) > 0;
}

const std::unordered_set<std::string>& module_dunders() {
  // Set by the import system before the module body runs.
  static const std::unordered_set<std::string> s = {
      "__name__", "__file__", "__doc__", "__spec__", "__loader__", "__package__",
      "__builtins__", "__path__", "__cached__"};
  return s;
}

std::string at_line(int line) { return " at line " + std::to_string(line); }

}  // namespace

Resolution Analyzer::resolve(const std::string& name, int unit) const {
  Resolution r;
  auto it = binders_.find(name);
  int before = -1, after = -1;
  if (it != binders_.end()) {
    for (int b : it->second) {
      if (b < unit) before = b;
      else if (b > unit && after < 0) after = b;
      else if (b == unit) before = before < 0 ? -2 : before;  // bound by this very unit (walrus)
    }
  }
  if (before == -2) {
    r.kind = Resolution::ComprehensionLocal;  // same unit: no cross-unit dependency
    return r;
  }
  if (before >= 0) {
    const Unit& b = units_[(size_t)before];
    r.unit = before;
    r.line = b.line;
    if (b.kind == "import") {
      r.kind = Resolution::Import;
      Node alias = unit_alias_[(size_t)before];
      std::string full = alias.str("name"), as = alias.str("asname");
      r.dotted = as.empty() ? full.substr(0, full.find('.')) : full;
    } else if (b.kind == "from-import") {
      r.kind = Resolution::FromImport;
      r.dotted = b.imports.size() > 1 ? b.imports[1] : name;
    } else if (b.kind == "class") {
      r.kind = Resolution::LocalClass;
    } else if (b.kind == "def") {
      r.kind = Resolution::LocalDef;
    } else {
      r.kind = Resolution::LocalValue;
    }
    return r;
  }
  bool builtin = builtins_ && PyDict_GetItemString(builtins_.get(), name.c_str()) != nullptr;
  if (after >= 0) {
    r.unit = after;
    r.line = units_[(size_t)after].line;
    r.kind = builtin ? Resolution::ShadowedBuiltin : Resolution::Forward;
    return r;
  }
  if ((first_star_unit_ >= 0 && first_star_unit_ < unit) || all_global_writes_.count(name)) {
    r.kind = Resolution::Unknown;
    r.line = first_star_unit_ >= 0 && first_star_unit_ < unit ? first_star_line_ : 0;
    return r;
  }
  if (module_dunders().count(name)) {
    r.kind = Resolution::ModuleDunder;
    return r;
  }
  if (builtin) {
    r.kind = Resolution::Builtin;
    r.dotted = "builtins." + name;
    return r;
  }
  r.kind = Resolution::Undefined;
  return r;
}

namespace {

class DefTime {
 public:
  DefTime(Analyzer& a, Unit& u) : a_(a), u_(u) {}

  bool ok() const { return !failed_; }
  Reason reason() const { return reason_; }
  // The first definition-time read of a module global that may change after
  // the import (mutable_inputs.cpp), if any.
  const std::optional<Reason>& changing() const { return changing_; }

  // Walks `e` as a value that is only taken, not looked into.
  void captured(Node e) {
    capture_ = true;
    expr(e);
    capture_ = false;
  }

  // Walks an evaluated annotation: types, whose subscripts (`Info[int]`)
  // make generic aliases rather than look into a container.
  void annotation(Node e) {
    ++annotation_;
    captured(e);
    --annotation_;
  }

  // A definition-time read of module global `name`: `contents` when the
  // unit looks into the value (iterates, indexes, calls something with it,
  // reads an attribute, operates on it) rather than taking the reference.
  void note_input(const std::string& name, const Resolution& r, int line, bool contents) {
    if (body_mode_ || changing_ || r.unit < 0 || r.unit >= u_.id) return;
    if (!contents) ++captured_[name];
    int writer = a_.global_writer(name);
    if (writer >= 0) {
      const Unit& w = a_.units_[(size_t)writer];
      std::string fn = w.binds.empty() ? std::string("a function") : w.binds[0] + "()";
      changing_ = Reason{Code::GlobalRebound, "reads " + name + " at definition time (line " + std::to_string(line) +
                                                  "), which " + fn + " (line " + std::to_string(w.line) +
                                                  ") rebinds through 'global': after the import, a first use would see the new value"};
      return;
    }
    if (contents && annotation_ == 0 && !a_.binding_immutable(r))
      changing_ = Reason{Code::MutableInput, "reads the contents of mutable global " + name + " at definition time (line " +
                                                 std::to_string(line) + "; bound at line " + std::to_string(r.line) +
                                                 "): a change after the import, before first use, would show"};
  }

  // The def_reads this walk only took as they are (Unit::captured_reads).
  Names captured_only() const {
    Names out;
    for (const auto& [n, k] : captured_) {
      auto it = looked_up_.find(n);
      if (it != looked_up_.end() && it->second == k) out.insert(n);
    }
    return out;
  }

  void fail(Code c, std::string detail) {
    if (failed_) return;
    failed_ = true;
    reason_ = {c, std::move(detail)};
  }

  // ---- names --------------------------------------------------------------

  Resolution lookup(const std::string& name) {
    for (auto s = scopes_.rbegin(); s != scopes_.rend(); ++s) {
      if (s->names.count(name)) {
        Resolution r;
        r.kind = s->is_class ? Resolution::ClassLocal : Resolution::ComprehensionLocal;
        return r;
      }
    }
    Resolution r = a_.resolve(name, u_.id);
    if (r.unit >= 0 && r.unit < u_.id) {
      u_.def_reads.insert(name);
      ++looked_up_[name];
    }
    if (guard_mode_ && r.kind == Resolution::ComprehensionLocal)
      // A name this import guard binds, read before a statement of the same
      // block bound it: the unit would find itself pending (eagerly the
      // value an earlier path left, or a NameError).
      fail(Code::ForwardReference, "reads " + name + " before the 'try' statement binds it on this path");
    return r;
  }

  // Fails on names that would not resolve as they do eagerly.
  bool check_resolution(const std::string& name, const Resolution& r, int line) {
    switch (r.kind) {
      case Resolution::Undefined:
        fail(Code::UndefinedName, "reads " + name + at_line(line) + ", which no earlier statement binds (eagerly a NameError at import)");
        return false;
      case Resolution::Forward:
        fail(Code::ForwardReference, "reads " + name + at_line(line) + " before line " + std::to_string(r.line) + " binds it");
        return false;
      case Resolution::ShadowedBuiltin:
        fail(Code::ShadowedBuiltin, "reads builtin " + name + at_line(line) + ", which line " + std::to_string(r.line) + " rebinds in this module");
        return false;
      case Resolution::Unknown:
        fail(Code::UndefinedName, "reads " + name + at_line(line) + ", which only " +
             (r.line ? "the star import at line " + std::to_string(r.line) : std::string("a 'global' write in a function")) + " may bind");
        return false;
      default: return true;
    }
  }

  // A Name/Attribute chain: its root resolution and dotted spelling with the
  // root replaced by what it stands for (a module path for imports).
  bool chain(Node e, std::string& dotted, std::string& spelled, Resolution& root, int& line) {
    if (e.kind() == K::Name) {
      std::string id = e.str("id");
      root = lookup(id);
      line = e.line();
      spelled = id;
      dotted = root.dotted.empty() ? id : root.dotted;
      return true;
    }
    if (e.kind() == K::Attribute) {
      if (!chain(e.get("value"), dotted, spelled, root, line)) return false;
      dotted += "." + e.str("attr");
      spelled += "." + e.str("attr");
      return true;
    }
    return false;
  }

  // A module's own top-level function that the knowledge base names
  // exactly, called from its own module: `@fixture(scope="session")` inside
  // _pytest.fixtures, whose entry `_pytest.fixtures.fixture` describes that
  // very function. Only when the name is bound once, by that `def`, and
  // never through `global`: then the name is that function wherever it is
  // read at top level.
  bool kb_pure_local_def(const std::string& spelled, const Resolution& root) const {
    if (root.kind != Resolution::LocalDef || spelled.find('.') != std::string::npos) return false;
    auto b = a_.binders_.find(spelled);
    if (b == a_.binders_.end() || b->second.size() != 1 || a_.all_global_writes_.count(spelled) ||
        a_.bound_in_compound_.count(spelled))
      return false;
    return a_.kb_.pure.names_exactly(a_.module_.name + "." + spelled);
  }

  bool impure_name(const std::string& dotted, const std::string& spelled, const Resolution& root, int line) {
    // (A builtin too: `_real_import = __import__` reads builtins' current one.)
    if (root.kind != Resolution::Import && root.kind != Resolution::FromImport && root.kind != Resolution::Builtin)
      return false;
    const std::string* why = a_.kb_.impure_reason(dotted);
    if (!why) return false;
    fail(Code::ImpureName, "reads " + spelled + at_line(line) + " (" + *why + ")");
    return true;
  }

  // An attribute of another module that this module replaces somewhere
  // (`builtins.__import__ = hook` in install()): a definition saving the
  // original (`_real_import = builtins.__import__`) would read the
  // replacement at first use, and the hook calling it would call itself.
  bool replaced_attribute(const std::string& dotted, const std::string& spelled, const Resolution& root, int line) {
    if (root.kind != Resolution::Import && root.kind != Resolution::FromImport && root.kind != Resolution::LocalClass)
      return false;
    int at = a_.module_attr_write(dotted);
    if (!at) return false;
    fail(Code::MutableInput, "reads " + spelled + at_line(line) + ", which this module replaces (line " +
                                 std::to_string(at) + "): a first use after that would see the replacement");
    return true;
  }

  // ---- expressions ----------------------------------------------------------

  void expr(Node e) {
    // Whether this expression's value is only taken (captured), not looked
    // into: set by captured() for this one call.
    bool capture = std::exchange(capture_, false);
    if (!e) return;
    switch (e.kind()) {
      case K::Constant: return;
      case K::Name: {
        std::string id = e.str("id");
        Resolution r = lookup(id);
        if (!check_resolution(id, r, e.line())) return;
        note_input(id, r, e.line(), !capture);
        if ((r.kind == Resolution::FromImport || r.kind == Resolution::Builtin) && impure_name(r.dotted, id, r, e.line())) return;
        if (body_mode_ && (r.kind == Resolution::LocalValue || r.kind == Resolution::FromImport) &&
            !a_.kb_.pure.contains(r.dotted) && !a_.kb_.pure_bases.contains(r.dotted) && !a_.is_own_submodule(r.dotted))
          // A function reading a module value at call time depends on state
          // that may change between definition and first use.
          fail(Code::ImpureName, "reads module value " + id + at_line(e.line()) + " at call time");
        return;
      }
      case K::Attribute: attribute(e); return;
      case K::Call: call(e, Code::ImpureCall); return;
      case K::Lambda: arguments(e.get("args"), /*annotations=*/false); return;
      case K::Tuple:
      case K::List:
      case K::Set:
        // A display holds references: its elements are captured when the
        // display itself is (bound, an element of such a display, an
        // argument kept as is), a starred one is iterated. A display that
        // is looked into (formatted, compared, passed to str or len:
        // `"%s" % (ITEMS,)`, `repr([ITEMS])`) looks into its elements.
        for (Node el : e.list("elts")) {
          if (el.kind() == K::Starred) expr(el.get("value"));
          else if (capture) captured(el);
          else expr(el);
        }
        return;
      case K::Dict: {
        std::vector<Node> keys = e.list("keys"), values = e.list("values");
        for (size_t i = 0; i < values.size(); ++i) {
          if (i < keys.size() && keys[i]) captured(keys[i]);
          if (i < keys.size() && !keys[i]) expr(values[i]);  // {**other}: read
          else if (capture) captured(values[i]);
          else expr(values[i]);
        }
        return;
      }
      case K::IfExp:
        expr(e.get("test"));
        capture_ = capture;
        expr(e.get("body"));
        capture_ = capture;
        expr(e.get("orelse"));
        return;
      case K::Compare: {
        // `x is SENTINEL` compares identities; `==`, `in`, `<` look inside.
        bool identity = true;
        for (Node op : e.list("ops"))
          if (op.kind() != K::Is && op.kind() != K::IsNot) identity = false;
        auto part = [&](Node c) {
          if (identity) captured(c);
          else expr(c);
        };
        part(e.get("left"));
        for (Node c : e.list("comparators")) part(c);
        return;
      }
      case K::ListComp:
      case K::SetComp:
      case K::GeneratorExp:
      case K::DictComp: comprehension(e); return;
      case K::NamedExpr:
        capture_ = capture;
        expr(e.get("value"));
        return;
      case K::Subscript:
        expr(e.get("value"));
        captured(e.get("slice"));  // a key (or typing's parameters) taken as is
        return;
      case K::Await:
      case K::Yield:
      case K::YieldFrom:
        fail(Code::UnknownExpression, std::string("evaluates ") + e.type_name() + at_line(e.line()));
        return;
      case K::BoolOp: case K::BinOp: case K::UnaryOp: case K::Starred:
      case K::JoinedStr: case K::FormattedValue: case K::Slice:
        for_each_child(e, [&](Node c) {
          if (c.get("lineno")) expr(c);  // operators and contexts carry no position
        });
        return;
      default:
        if (std::string(e.type_name()) == "Index") {  // pre-3.9 subscript wrapper
          expr(e.get("value"));
          return;
        }
        fail(Code::UnknownExpression, std::string("evaluates ") + e.type_name() + at_line(e.line()));
    }
  }

  void attribute(Node e) {
    std::string dotted, spelled;
    Resolution root;
    int line = e.line();
    if (!chain(e, dotted, spelled, root, line)) {
      expr(e.get("value"));  // attribute of a freshly computed pure value
      return;
    }
    if (!check_resolution(spelled.substr(0, spelled.find('.')), root, line)) return;
    if (impure_name(dotted, spelled, root, line)) return;
    if (replaced_attribute(dotted, spelled, root, line)) return;
    note_input(spelled.substr(0, spelled.find('.')), root, line, /*contents=*/true);
    switch (root.kind) {
      case Resolution::FromImport: {
        const KnowledgeBase& kb = a_.kb_;
        if (kb.pure.contains(root.dotted) || kb.pure_bases.contains(root.dotted) ||
            kb.pure_metaclasses.contains(root.dotted) || kb.pure.contains(dotted))
          return;
        if (a_.is_own_submodule(root.dotted)) return;  // a submodule's attributes
        fail(Code::ImpureAttribute, "reads " + spelled + at_line(line) + " (" + root.dotted +
             " is not known to be a module or pure class; its attributes may run code)");
        return;
      }
      case Resolution::LocalValue:
        if (a_.units_[(size_t)root.unit].lazy && !body_mode_) return;
        fail(Code::ImpureAttribute, "reads " + spelled + at_line(line) + " (an attribute of a value made by the eager statement at line " +
             std::to_string(root.line) + ")");
        return;
      default: return;
    }
  }

  void call(Node c, Code code) {
    Node f = c.get("func");
    std::string dotted, spelled;
    Resolution root;
    int line = c.line();
    std::string callee;  // for the key= rule
    // `Key[T]()`: a generic alias of a class, called as the class (typing
    // sets __orig_class__ on the instance); only a class known plain to call.
    Node alias_of = f.kind() == K::Subscript ? f.get("value") : Node();
    if (alias_of && chain(alias_of, dotted, spelled, root, line) && plain_class_callee(spelled, dotted, root)) {
      check_resolution(spelled.substr(0, spelled.find('.')), root, line);
      note_input(spelled.substr(0, spelled.find('.')), root, line, /*contents=*/true);
      captured(f.get("slice"));
      callee = dotted;
    } else if (alias_of) {
      dotted.clear();
      spelled.clear();
      expr(f);
      fail(code, "calls the result of an expression" + at_line(line) + " (not known pure)");
    } else if (chain(f, dotted, spelled, root, line)) {
      callee = dotted;
      std::string what = code == Code::ImpureDecorator ? "decorated with @" + spelled + "(...)" : "calls " + spelled + "()";
      // A known-impure callee is an impure call; the KB's reason explains it.
      if (check_resolution(spelled.substr(0, spelled.find('.')), root, line)) {
        switch (root.kind) {
          case Resolution::Builtin:
          case Resolution::Import:
          case Resolution::FromImport:
            if (applies_function(dotted, c)) break;
            if (code == Code::ImpureDecorator && a_.kb_.not_factories.contains(dotted)) {
              fail(code, what + at_line(line) + " (" + dotted +
                             " returns a function it makes: what decorating with it calls is not known pure)");
              break;
            }
            if (!a_.kb_.pure.contains(dotted)) {
              const std::string* why = a_.kb_.call_reason(dotted);
              fail(code, what + at_line(line) + (why ? " (" + *why + ")" : " (" + dotted + " is not known pure)"));
            }
            break;
          case Resolution::LocalDef:
            if (kb_pure_local_def(spelled, root)) break;
            if (code == Code::ImpureCall && spelled.find('.') == std::string::npos && local_pure_call(root.unit, 0)) break;
            fail(code, what + at_line(line) + " (module-local function, line " + std::to_string(root.line) + "; not known pure)");
            break;
          case Resolution::LocalClass:
            if (code == Code::ImpureCall && plain_class_callee(spelled, dotted, root)) break;
            fail(code, what + at_line(line) + " (module-local class, line " + std::to_string(root.line) + "; its code may have effects)");
            break;
          case Resolution::LocalValue:
            if (pure_instance(spelled, root)) break;
            fail(code, what + at_line(line) + " (a value bound at line " + std::to_string(root.line) + "; not known pure)");
            break;
          default:
            fail(code, what + at_line(line) + " (not known pure)");
        }
      }
    } else if (f.kind() == K::Attribute && f.get("value").kind() == K::Constant) {
      callee = literal_method(f);
      if (!a_.kb_.pure.contains(callee))
        fail(code, "calls method " + f.str("attr") + "() of a literal" + at_line(line) + " (not known pure)");
    } else {
      expr(f);
      fail(code, "calls the result of an expression" + at_line(line) + " (not known pure)");
    }
    // type(name, bases, namespace) creates a class as a class statement
    // does: a base's __init_subclass__ or metaclass runs then (a registry
    // filled at import), so its bases are checked as a class statement's.
    if (callee == "builtins.type" && c.list("args").size() >= 2) {
      Node bases = c.list("args")[1];
      if (bases.kind() != K::Tuple || !c.list("keywords").empty()) {
        fail(code, "calls type() with bases" + at_line(line) + " that are not a tuple of known classes");
      } else {
        ClassInfo scratch;
        for (Node b : bases.list("elts")) base(b, scratch);
      }
    }
    // A callee that only keeps or inspects the identity or type of its
    // arguments (mutable_inputs.cpp) does not look into them.
    bool keeps = a_.captures_arguments(callee);
    bool takes_key = callee == "builtins.sorted" || callee == "builtins.min" || callee == "builtins.max";
    std::vector<Node> args = c.list("args");
    for (size_t i = 0; i < args.size(); ++i) {
      Node arg = args[i];
      if (i == 0 && applies_function(callee, c)) key_function(arg, callee.substr(9) + "'s function");
      else if (keeps && arg.kind() != K::Starred) captured(arg);
      else expr(arg);
    }
    for (Node kw : c.list("keywords")) {
      Node v = kw.get("value");
      if (takes_key && kw.str("arg") == "key") key_function(v);
      else if (keeps && !kw.str("arg").empty()) captured(v);
      else expr(v);
    }
  }

  // `map(f, it, ...)` and `filter(f, it)`: builtins that only call `f` on
  // the items of their iterables (when the iterator is consumed, which may be
  // at definition time: `dict.fromkeys(map(ord, s))`). Pure when `f` passes
  // the key-function rule below (a pure callable or a lambda with a pure
  // body) and the iterables are pure expressions; `f` is the first positional
  // argument, not starred, and there are no keywords (both take none).
  static bool applies_function(const std::string& callee, Node c) {
    if (callee != "builtins.map" && callee != "builtins.filter") return false;
    std::vector<Node> args = c.list("args");
    if (args.size() < 2 || !c.list("keywords").empty()) return false;
    if (callee == "builtins.filter" && args.size() != 2) return false;
    for (Node a : args)
      if (a.kind() == K::Starred) return false;
    return true;
  }

  // `builtins.str.NAME` / `builtins.bytes.NAME` for a method `f` of a str or
  // bytes literal; empty for another constant (never KB-pure).
  static std::string literal_method(Node f) {
    PyObject* v = f.get("value").get("value").raw();
    const char* type = PyUnicode_Check(v) ? "str" : PyBytes_Check(v) ? "bytes" : nullptr;
    return type ? std::string("builtins.") + type + "." + f.str("attr") : std::string();
  }

  // A call of this module's own function, undecorated and defined by a lazy
  // unit, whose body is pure (Unit::pure_call: tokenize's `group(*choices)`
  // joining its arguments): its body runs now, at definition time, so what
  // it reads is read now. Only names that cannot change between the import
  // and first use: builtins, imported modules and names, and functions of
  // this module that pass the same check (their reads become this unit's
  // def_reads, so their units run first). A global value or class read by
  // the body keeps the call impure (its contents may change after import).
  bool local_pure_call(int unit, int depth) {
    const Unit& f = a_.units_[(size_t)unit];
    if (depth > 8 || !f.pure_call || !f.lazy || f.kind != "def" || f.binds.size() != 1) return false;
    for (const auto& n : f.call_reads) {
      if (n == f.binds[0]) continue;  // recursion: the function itself
      Resolution r = a_.resolve(n, u_.id);
      switch (r.kind) {
        case Resolution::Builtin:
        case Resolution::Import:
        case Resolution::FromImport:
          break;
        case Resolution::LocalDef:
          if (!local_pure_call(r.unit, depth + 1)) return false;
          break;
        default: return false;
      }
      if (r.unit >= 0 && r.unit < u_.id) {
        u_.def_reads.insert(n);
        ++looked_up_[n];  // read by the body it runs: looked into
      }
    }
    return true;
  }

  // sorted/min/max call their key at definition time: it must be pure too.
  void key_function(Node v, const std::string& role = "key function") {
    if (v.kind() == K::Lambda) {
      arguments(v.get("args"), false);
      Scope s;
      for (const char* f : {"posonlyargs", "args", "kwonlyargs"})
        for (Node a : v.get("args").list(f)) s.names.insert(a.str("arg"));
      scopes_.push_back(std::move(s));
      expr(v.get("body"));
      scopes_.pop_back();
      return;
    }
    std::string dotted, spelled;
    Resolution root;
    int line = v.line();
    if (chain(v, dotted, spelled, root, line) &&
        (root.kind == Resolution::Builtin || root.kind == Resolution::Import || root.kind == Resolution::FromImport) &&
        a_.kb_.pure.contains(dotted))
      return;
    fail(Code::ImpureCall, "calls " + role + " " + (spelled.empty() ? std::string("<expression>") : spelled) + at_line(line) + " (not known pure)");
  }

  void comprehension(Node e) {
    std::vector<Node> gens = e.list("generators");
    Scope s;
    std::vector<std::string> targets;
    for (Node g : gens) {
      targets.clear();
      collect_targets(g.get("target"), targets);
      for (auto& t : targets) s.names.insert(t);
    }
    if (!gens.empty()) expr(gens[0].get("iter"));  // evaluated in the enclosing scope
    scopes_.push_back(std::move(s));
    for (size_t i = 0; i < gens.size(); ++i) {
      if (i > 0) expr(gens[i].get("iter"));
      for (Node cond : gens[i].list("ifs")) expr(cond);
    }
    captured(e.get("elt"));
    captured(e.get("key"));
    captured(e.get("value"));
    scopes_.pop_back();
  }

  static void collect_targets(Node t, std::vector<std::string>& out) {
    if (t.kind() == K::Name) out.push_back(t.str("id"));
    else if (t.kind() == K::Tuple || t.kind() == K::List)
      for (Node e : t.list("elts")) collect_targets(e, out);
    else if (t.kind() == K::Starred) collect_targets(t.get("value"), out);
  }

  // ---- definitions ----------------------------------------------------------

  void arguments(Node args, bool annotations) {
    if (!args) return;
    for (Node d : args.list("defaults")) captured(d);
    for (Node d : args.list("kw_defaults")) captured(d);
    if (annotations) arguments_annotations(args);
  }

  // A class whose instances are made without running Python code: a class
  // of this module (bound once) with Unit::plain_new, or an imported one the
  // knowledge base knows pure to call and to subclass (a summary's "new").
  bool plain_class_callee(const std::string& spelled, const std::string& dotted, const Resolution& root) const {
    if (body_mode_) return false;
    switch (root.kind) {
      case Resolution::LocalClass:
        return spelled.find('.') == std::string::npos && a_.units_[(size_t)root.unit].plain_new;
      case Resolution::Import:
      case Resolution::FromImport:
        return a_.kb_.pure.contains(dotted) && a_.kb_.pure_bases.contains(dotted);
      case Resolution::Builtin: return a_.kb_.pure.contains(dotted);
      default: return false;
    }
  }

  // A module name bound once, by a lazy unit, to an instance whose call the
  // KB knows pure (Unit::pure_call of an assignment): calling it (or
  // decorating with it) runs that known call. Materializing the unit first
  // is what reading any lazy value does.
  bool pure_instance(const std::string& spelled, const Resolution& root) const {
    if (body_mode_ || spelled.find('.') != std::string::npos || root.unit < 0) return false;
    const Unit& vu = a_.units_[(size_t)root.unit];
    return vu.kind == "assign" && vu.lazy && vu.pure_call;
  }

  // What base `b` of a class whose instances may be plain is: Plain
  // (`object` or a built-in exception, unsubscripted, or typing's Generic),
  // Local (a class of this module whose instances are plain: `local`, and
  // its name in `dotted`), Foreign (another imported class, unsubscripted:
  // `dotted`), or None (anything else).
  enum class BaseKind { None, Plain, Local, Foreign };
  BaseKind plain_base(Node b, const Unit*& local, std::string& dotted) {
    bool subscripted = b.kind() == K::Subscript;
    Node v = subscripted ? b.get("value") : b;
    std::string spelled;
    Resolution root;
    int line = v.line();
    if (!chain(v, dotted, spelled, root, line)) return BaseKind::None;
    switch (root.kind) {
      case Resolution::Builtin: {
        PyObject* t = subscripted ? nullptr : PyDict_GetItemString(a_.builtins_.get(), spelled.c_str());
        bool plain = t && PyType_Check(t) &&
                     (t == (PyObject*)&PyBaseObject_Type ||
                      PyType_IsSubtype((PyTypeObject*)t, (PyTypeObject*)PyExc_BaseException));
        return plain ? BaseKind::Plain : BaseKind::None;
      }
      case Resolution::Import:
      case Resolution::FromImport:
        if (dotted == "typing.Generic" || dotted == "typing_extensions.Generic") return BaseKind::Plain;
        return subscripted ? BaseKind::None : BaseKind::Foreign;
      case Resolution::LocalClass:
        if (spelled.find('.') != std::string::npos || !a_.units_[(size_t)root.unit].plain_new) return BaseKind::None;
        local = &a_.units_[(size_t)root.unit];
        return BaseKind::Local;
      default: return BaseKind::None;
    }
  }

  // Whether calling the class `c` defines (with or without a subscript,
  // `Key[T]()`) runs no Python code but a pure __init__: it has no
  // decorator, keyword or type parameter; its body defines none of the hooks
  // making an instance calls (__new__, an __init__ whose body is not pure
  // with `self` fresh, __setattr__ for a generic alias's __orig_class__,
  // __class_getitem__, __post_init__, __attrs_post_init__); and each base is
  // `object`, a built-in exception, typing's Generic (subscripted or not),
  // an imported class the knowledge base (or a summary: "new") knows both
  // pure to call and to subclass, or a class of this module of the same
  // kind. Only classes whose other checks passed ask (Unit::plain_new).
  // An attribute the __init__ sets must not be a name the class (or a base
  // of this module) binds to what may be a data descriptor (a property's
  // setter is Python code: `self.x = 1` would run it); with an imported
  // base, whose attributes are not known here, the __init__ sets and reads
  // none and the body binds nothing but plain functions. An attribute the
  // __init__ reads must not be one bound to what may be any descriptor (a
  // property's getter). __del__, __getattr__, __getattribute__ and
  // __set_name__ are hooks too. __init__'s defaults must be known immutable. `out` gets this class's attribute sets, for subclasses of it.
  bool plain_instances(Node c, Unit& out) {
    if (!c.list("keywords").empty() || !c.list("type_params").empty()) return false;
    if (!c.list("decorator_list").empty()) return attrs_plain_instances(c, out);
    // A finalizer runs when the instance dies (at the latest at exit: an
    // instance never made never runs it); __getattr__/__getattribute__ answer
    // the __init__'s reads of self; __set_name__ runs when a class body
    // holding the instance is made (a field registering itself).
    static const std::unordered_set<std::string> hooks = {
        "__new__", "__init__", "__setattr__", "__class_getitem__", "__post_init__", "__attrs_post_init__",
        "__del__", "__getattr__", "__getattribute__", "__set_name__"};
    // What __init__ sets on self and reads from it; what the body may make a
    // data descriptor (anything but a plain function), and what __init__
    // must not read: what may be any descriptor or change after the import
    // (all but a constant, an f-string, a lambda, a tuple, a plain class or
    // a module: a class-level list read at first use would show appends).
    std::unordered_set<std::string> sets, reads, binds, descr;
    // __init__'s default values: their contents are read at each call
    // (`def __init__(self, opts=DEFAULTS): self.opts = dict(opts)`).
    std::vector<Node> defaults;
    auto no_descriptor = [](Node v) {
      switch (v ? v.kind() : K::Pass) {
        case K::Constant: case K::JoinedStr: case K::Lambda: case K::Tuple: return true;
        default: return false;
      }
    };
    std::vector<Node> work = c.list("body");
    while (!work.empty()) {
      Node st = work.back();
      work.pop_back();
      std::vector<std::string> names;
      if ((st.kind() == K::FunctionDef || st.kind() == K::AsyncFunctionDef) && st.list("decorator_list").empty()) {
        // a plain function is no data descriptor, and its getter is C's
      } else if (st.kind() != K::If) {
        std::vector<std::string> bound;
        bool maybe_descr = true;
        if (st.kind() == K::FunctionDef || st.kind() == K::AsyncFunctionDef || st.kind() == K::ClassDef) {
          bound.push_back(st.str("name"));
          maybe_descr = st.kind() != K::ClassDef || !st.list("decorator_list").empty() || !st.list("keywords").empty();
        } else if (st.kind() == K::Assign) {
          for (Node t : st.list("targets")) collect_targets(t, bound);
          maybe_descr = !no_descriptor(st.get("value"));
        } else if (st.kind() == K::AnnAssign || st.kind() == K::AugAssign) {
          collect_targets(st.get("target"), bound);
          maybe_descr = st.kind() == K::AugAssign || !no_descriptor(st.get("value"));
        } else if (st.kind() == K::Import || st.kind() == K::ImportFrom) {
          Analyzer::bound_names(st, bound);
          maybe_descr = st.kind() == K::ImportFrom;
        }
        binds.insert(bound.begin(), bound.end());
        if (maybe_descr) descr.insert(bound.begin(), bound.end());
      }
      switch (st.kind()) {
        case K::FunctionDef:
          // An __init__ that changes nothing but the new instance (`self`,
          // fresh: no __new__ or __setattr__ of its making) and its own
          // locals: pathlib's `_Flavour.__init__` (`self.join =
          // self.sep.join`). super().__init__(...) reaches a base that
          // passed the same check.
          if (st.str("name") == "__init__" && st.list("decorator_list").empty() &&
              !st.get("args").list("args").empty() && st.get("args").list("posonlyargs").empty()) {
            Unit scratch = u_;
            DefTime body(a_, scratch);
            std::string self = st.get("args").list("args")[0].str("arg");
            if (!body.pure_body(st, {self})) return false;
            for (Node d : st.get("args").list("defaults")) defaults.push_back(d);
            for (Node d : st.get("args").list("kw_defaults"))
              if (d) defaults.push_back(d);
            std::function<void(Node)> stores = [&](Node n) {
              if (n.kind() == K::Attribute && n.get("value").kind() == K::Name && n.get("value").str("id") == self)
                (n.get("ctx").kind() != K::Load ? sets : reads).insert(n.str("attr"));
              for_each_child(n, stores);
            };
            for (Node b : st.list("body")) stores(b);
            break;
          }
          names.push_back(st.str("name"));
          break;
        case K::AsyncFunctionDef:
        case K::ClassDef: names.push_back(st.str("name")); break;
        case K::Assign:
          for (Node t : st.list("targets")) collect_targets(t, names);
          break;
        case K::AnnAssign: collect_targets(st.get("target"), names); break;
        case K::If:
          for (Node b : st.list("body")) work.push_back(b);
          for (Node b : st.list("orelse")) work.push_back(b);
          break;
        case K::Import:
        case K::ImportFrom: Analyzer::bound_names(st, names); break;
        default: break;
      }
      for (const auto& n : names)
        if (hooks.count(n)) return false;
    }
    bool foreign_base = false;
    std::vector<std::string> classes = {c.str("name")};  // this class and its local bases
    for (Node b : c.list("bases")) {
      const Unit* base = nullptr;
      std::string dotted;
      switch (plain_base(b, base, dotted)) {
        case BaseKind::Plain: break;
        case BaseKind::Foreign:
          if (!a_.kb_.pure.contains(dotted) || !a_.kb_.pure_bases.contains(dotted)) return false;
          foreign_base = true;
          break;
        case BaseKind::Local:
          sets.insert(base->init_attrs.begin(), base->init_attrs.end());
          binds.insert(base->class_attrs.begin(), base->class_attrs.end());
          reads.insert(base->init_reads.begin(), base->init_reads.end());
          descr.insert(base->descr_attrs.begin(), base->descr_attrs.end());
          classes.push_back(dotted);
          break;
        default: return false;
      }
    }
    if (foreign_base && (!sets.empty() || !reads.empty() || !binds.empty())) return false;
    // A default that may change after the import (a module dict or list, or
    // a name of the class body) would be read as it is at first use: made
    // at import, the instance saw it then.
    for (Node d : defaults) {
      if (!a_.value_immutable(d, u_.id)) return false;
      bool class_name = false;
      std::function<void(Node)> names = [&](Node n) {
        if (n.kind() == K::Name && binds.count(n.str("id"))) class_name = true;
        for_each_child(n, names);
      };
      names(d);
      if (class_name) return false;
    }
    for (const auto& a : sets)
      if (binds.count(a)) return false;
    for (const auto& a : reads) {
      if (descr.count(a)) return false;
      // A class attribute a function of this module assigns (`Defaults.flag
      // = True` in configure()): read at first use, the new value.
      for (const auto& k : classes)
        if (a_.module_attr_write(k + "." + a)) return false;
    }
    out.init_attrs.assign(sets.begin(), sets.end());
    out.class_attrs.assign(binds.begin(), binds.end());
    out.init_reads.assign(reads.begin(), reads.end());
    out.descr_attrs.assign(descr.begin(), descr.end());
    return true;
  }

  // An attrs class whose generated __init__ only stores its fields: calling
  // it runs attrs' generated code, which sets each field on the new instance
  // (object.__setattr__ when frozen) and reads nothing of this module
  // (_pytest.warning_types' UnformattedWarning, whose `UnformattedWarning(
  // PytestDeprecationWarning, "...")` constants kept _pytest.deprecated's
  // units eager and built the class, about 2.8 M instructions, at every
  // pytest start). So: decorated by attrs' class decorators (KB
  // namespace_copy_decorators) with options that change nothing of the
  // __init__'s work (no `these=`, `field_transformer=`, `on_setattr=`,
  // `init=False`), and typing's `final` (sets `__final__` and returns the
  // class); no hook the instance's making calls (`__attrs_pre_init__`,
  // `__attrs_post_init__`, an own `__init__`, ...); every field a plain
  // `attr.ib()`/`attrs.field()` or an annotation, with a default known
  // immutable, no validator, converter, factory or on_setattr, and no
  // decorated method (`@x.validator`, `@x.default`); bases `object`, a
  // built-in exception, typing's Generic, or a local class of either kind.
  bool attrs_plain_instances(Node c, Unit& out) {
    static const std::unordered_set<std::string> safe_options = {
        "auto_attribs", "frozen", "slots", "eq", "order", "hash", "unsafe_hash", "repr", "str", "kw_only",
        "weakref_slot", "cache_hash", "cmp", "getstate_setstate", "match_args", "collect_by_mro", "auto_exc",
        "init"};
    static const std::unordered_set<std::string> safe_field_options = {
        "default", "type", "repr", "eq", "order", "hash", "init", "kw_only", "cmp", "alias", "metadata"};
    static const std::unordered_set<std::string> field_makers = {
        "attr.ib", "attr.attrib", "attr.attr", "attr.field", "attrs.field", "attr._make.attrib",
        "attr._next_gen.field"};
    bool attrs = false;
    for (Node d : c.list("decorator_list")) {
      Node f = d.kind() == K::Call ? d.get("func") : d;
      std::string dotted = imported_dotted(f);
      if (dotted == "typing.final" || dotted == "typing_extensions.final") {
        if (d.kind() == K::Call) return false;
        continue;
      }
      if (!a_.kb_.namespace_copy_decorators.contains(dotted)) return false;
      attrs = true;
      if (d.kind() == K::Call) {
        if (!d.list("args").empty()) return false;
        for (Node kw : d.list("keywords")) {
          std::string k = kw.str("arg");
          if (!safe_options.count(k)) return false;
          if (k == "init") {
            Node v = kw.get("value");
            if (v.kind() != K::Constant || v.get("value").raw() != Py_True) return false;
          }
        }
      }
    }
    if (!attrs) return false;
    static const std::unordered_set<std::string> hooks = {
        "__new__", "__init__", "__setattr__", "__class_getitem__", "__post_init__", "__attrs_post_init__",
        "__attrs_pre_init__", "__attrs_init__", "__del__", "__getattr__", "__getattribute__", "__set_name__",
        "__attrs_init_subclass__", "__init_subclass__"};
    std::unordered_set<std::string> fields, binds;
    // A field's default: the same object is given to every instance; one
    // that may change after the import would be seen changed.
    auto default_ok = [&](Node v) { return !v || a_.value_immutable(v, u_.id); };
    for (Node st : c.list("body")) {
      switch (st.kind()) {
        case K::FunctionDef:
        case K::AsyncFunctionDef:
          if (hooks.count(st.str("name")) || !st.list("decorator_list").empty()) return false;
          binds.insert(st.str("name"));
          break;
        case K::Expr:
          if (st.get("value").kind() != K::Constant) return false;  // a docstring
          break;
        case K::Pass: break;
        case K::Assign:
        case K::AnnAssign: {
          std::vector<std::string> names;
          if (st.kind() == K::Assign) {
            if (st.list("targets").size() != 1) return false;
            collect_targets(st.list("targets")[0], names);
          } else {
            collect_targets(st.get("target"), names);
          }
          if (names.size() != 1 || (st.kind() == K::Assign && st.list("targets")[0].kind() != K::Name) ||
              (st.kind() == K::AnnAssign && st.get("target").kind() != K::Name))
            return false;
          if (hooks.count(names[0])) return false;
          Node v = st.get("value");
          if (v && v.kind() == K::Call && field_makers.count(imported_dotted(v.get("func")))) {
            if (!v.list("args").empty()) return false;
            for (Node kw : v.list("keywords")) {
              std::string k = kw.str("arg");
              if (!safe_field_options.count(k)) return false;
              if (k == "default" && !default_ok(kw.get("value"))) return false;
            }
            fields.insert(names[0]);
          } else if (st.kind() == K::AnnAssign) {
            // auto_attribs: an annotated name is a field; its value the default.
            if (!default_ok(v)) return false;
            fields.insert(names[0]);
          } else {
            if (!default_ok(v)) return false;  // a plain class attribute
            binds.insert(names[0]);
          }
          break;
        }
        default: return false;
      }
    }
    for (Node b : c.list("bases")) {
      const Unit* base = nullptr;
      std::string dotted;
      BaseKind kind = plain_base(b, base, dotted);
      if (kind == BaseKind::Plain) continue;
      if (kind != BaseKind::Local) return false;
      // A base's data descriptors would run when a field is stored.
      for (const auto& f : fields)
        if (std::find(base->descr_attrs.begin(), base->descr_attrs.end(), f) != base->descr_attrs.end()) return false;
      fields.insert(base->init_attrs.begin(), base->init_attrs.end());
      binds.insert(base->class_attrs.begin(), base->class_attrs.end());
    }
    for (const auto& f : fields)
      if (binds.count(f)) return false;
    out.init_attrs.assign(fields.begin(), fields.end());
    out.class_attrs.assign(binds.begin(), binds.end());
    out.init_reads.clear();
    out.descr_attrs.clear();
    return true;
  }

  // Unit::own_views: whether class `c`'s namespace copy may take the names
  // bound so far as they are; adds what the copy is read for to def_reads.
  bool own_namespace_views(Node c) {
    std::set<std::string> names;
    if (body_mode_ || !class_fields_mentions(c, names, 0)) return false;
    // Module names the generated __init__ may read from the copy instead of
    // what attrs puts there or builtins: attrs' own globals (`_config`,
    // `attr_dict`, `NOTHING`, `_cached_setattr_get`, `__attr_validator_x`,
    // `__attr_converter_x`, `__attr_factory_x`, `__attr_x`; attrs 22-26)
    // and builtins (`BaseException.__init__` of an auto_exc class).
    static const std::set<std::string> attrs_globals = {"_config", "attr_dict", "NOTHING", "_cached_setattr_get",
                                                        "_setattr", "_inst_dict", "_cls"};
    for (const auto& [n, units] : a_.binders_) {
      if (attrs_globals.count(n) || n.rfind("__attr_", 0) == 0 || PyDict_GetItemString(a_.builtins_.get(), n.c_str()))
        names.insert(n);
    }
    for (const auto& n : names) {
      Resolution r = a_.resolve(n, u_.id);
      if (r.unit >= 0 && r.unit < u_.id) u_.def_reads.insert(n);
    }
    return true;
  }

 private:
  // The dotted name a decorator's callee stands for (`attr.s`, `attrs.define`),
  // resolved without noting a read; empty when it is not an imported name.
  std::string imported_dotted(Node f) const {
    std::vector<std::string> attrs;
    while (f.kind() == K::Attribute) {
      attrs.push_back(f.str("attr"));
      f = f.get("value");
    }
    if (f.kind() != K::Name) return {};
    Resolution r = a_.resolve(f.str("id"), u_.id);
    if (r.kind != Resolution::Import && r.kind != Resolution::FromImport) return {};
    std::string dotted = r.dotted;
    for (auto a = attrs.rbegin(); a != attrs.rend(); ++a) dotted += "." + *a;
    // Another module's name for a known one (KnowledgeBase::aliases).
    auto alias = a_.kb_.aliases.find(dotted);
    return alias == a_.kb_.aliases.end() ? dotted : alias->second;
  }

  // Every identifier a string annotation may name (a superset: attribute
  // names too); false for text with non-ASCII characters.
  static bool identifiers_in(const std::string& text, std::set<std::string>& out) {
    std::string word;
    for (size_t i = 0; i <= text.size(); ++i) {
      unsigned char ch = i < text.size() ? (unsigned char)text[i] : ' ';
      if (ch >= 0x80) return false;
      if (std::isalnum(ch) || ch == '_') {
        word += (char)ch;
        continue;
      }
      if (!word.empty() && !std::isdigit((unsigned char)word[0])) out.insert(word);
      word.clear();
    }
    return true;
  }

  // The names expression `e` mentions, string constants' identifiers too.
  static bool mentions_of(Node e, std::set<std::string>& out) {
    bool ok = true;
    std::function<void(Node)> walk = [&](Node n) {
      if (n.kind() == K::Name) out.insert(n.str("id"));
      if (n.kind() == K::Constant && PyUnicode_Check(n.get("value").raw())) {
        const char* text = PyUnicode_AsUTF8(n.get("value").raw());
        if (!text) {
          PyErr_Clear();
          ok = false;
        } else if (!identifiers_in(text, out)) {
          ok = false;
        }
      }
      for_each_child(n, walk);
    };
    if (e) walk(e);
    return ok;
  }

  // A field's `converter=`: attrs copies its parameters' annotations into
  // __init__'s (resolved in this module's namespace by get_type_hints). Known
  // only for an undecorated function of this module bound once
  // (pytest's `_params_converter`): collects what its annotations mention.
  bool converter_mentions(Node v, std::set<std::string>& names) {
    if (v.kind() != K::Name) return false;
    std::string id = v.str("id");
    Resolution r = a_.resolve(id, u_.id);
    auto b = a_.binders_.find(id);
    if (r.kind != Resolution::LocalDef || r.unit < 0 || b == a_.binders_.end() || b->second.size() != 1) return false;
    Node f = a_.unit_nodes_[(size_t)r.unit];
    if (f.kind() != K::FunctionDef || !f.list("decorator_list").empty()) return false;
    Node args = f.get("args");
    bool ok = mentions_of(f.get("returns"), names);
    for (const char* field : {"posonlyargs", "args", "kwonlyargs"})
      for (Node a : args.list(field)) ok = mentions_of(a.get("annotation"), names) && ok;
    for (const char* field : {"vararg", "kwarg"})
      if (Node a = args.get(field)) ok = mentions_of(a.get("annotation"), names) && ok;
    return ok;
  }

  // Whether class `c` is decorated by a namespace-copying decorator and the
  // annotations its generated __init__ gets are those of its own fields and
  // of bases of this module that pass the same check (or add no fields):
  // collects the names they mention.
  bool class_fields_mentions(Node c, std::set<std::string>& names, int depth) {
    if (depth > 8 || !c.list("keywords").empty()) return false;
    bool copies = false;
    for (Node d : c.list("decorator_list")) {
      Node f = d.kind() == K::Call ? d.get("func") : d;
      if (!a_.kb_.namespace_copy_decorators.contains(imported_dotted(f))) continue;
      copies = true;
      if (d.kind() == K::Call)
        for (Node kw : d.list("keywords")) {
          std::string k = kw.str("arg");
          // `these=` takes the fields from elsewhere; a field transformer
          // may give them any type.
          if (k.empty() || k == "these" || k == "field_transformer") return false;
        }
    }
    if (!copies) return false;
    for (Node b : c.list("bases")) {
      Node v = b.kind() == K::Subscript ? b.get("value") : b;
      if (v.kind() == K::Name) {
        Resolution r = a_.resolve(v.str("id"), u_.id);
        if (r.kind == Resolution::Builtin) continue;  // object, an exception: no fields
        if (r.kind == Resolution::LocalClass && r.unit >= 0) {
          Node base = a_.unit_nodes_[(size_t)r.unit];
          if (base.kind() != K::ClassDef) return false;
          if (base.list("decorator_list").empty() && base.list("keywords").empty() && base.list("bases").empty())
            continue;  // a plain class of its own: no fields
          if (!class_fields_mentions(base, names, depth + 1)) return false;
          continue;
        }
      }
      std::string dotted = imported_dotted(v);
      if (dotted == "typing.Generic" || dotted == "typing_extensions.Generic") continue;
      return false;
    }
    bool ok = true;
    std::vector<Node> work = c.list("body");
    while (!work.empty() && ok) {
      Node st = work.back();
      work.pop_back();
      switch (st.kind()) {
        case K::If:
          for (Node b : st.list("body")) work.push_back(b);
          for (Node b : st.list("orelse")) work.push_back(b);
          break;
        case K::FunctionDef:
        case K::AsyncFunctionDef:
        case K::ClassDef: break;  // their annotations are not the fields'
        default: {
          if (st.kind() == K::AnnAssign && !mentions_of(st.get("annotation"), names)) ok = false;
          // A converter's annotation is copied into __init__'s (resolved in
          // this module's namespace); `type=` may be a string.
          std::function<void(Node)> calls = [&](Node n) {
            if (n.kind() == K::Call)
              for (Node kw : n.list("keywords")) {
                std::string k = kw.str("arg");
                if (k.empty() || (k == "converter" && !converter_mentions(kw.get("value"), names))) ok = false;
                if (k == "type" && !mentions_of(kw.get("value"), names)) ok = false;
              }
            for_each_child(n, calls);
          };
          calls(st);
        }
      }
    }
    return ok;
  }

 public:
  void decorator(Node d) {
    if (d.kind() == K::Call) {
      call(d, Code::ImpureDecorator);  // a pure factory makes a pure decorator
      return;
    }
    std::string dotted, spelled;
    Resolution root;
    int line = d.line();
    if (!chain(d, dotted, spelled, root, line)) {
      expr(d);
      fail(Code::ImpureDecorator, "decorated with an expression" + at_line(line) + " (not known pure)");
      return;
    }
    if (!check_resolution(spelled.substr(0, spelled.find('.')), root, line)) return;
    switch (root.kind) {
      case Resolution::Builtin:
      case Resolution::Import:
      case Resolution::FromImport:
        if (a_.kb_.pure.contains(dotted)) return;
        break;
      case Resolution::LocalDef:
        if (kb_pure_local_def(spelled, root)) return;
        break;
      case Resolution::ClassLocal: {
        // @prop.setter / .getter / .deleter on a property of the same class body
        auto dot = spelled.rfind('.');
        std::string attr = dot == std::string::npos ? "" : spelled.substr(dot + 1);
        if (attr == "setter" || attr == "getter" || attr == "deleter") return;
        break;
      }
      case Resolution::LocalValue:
        if (pure_instance(spelled, root)) return;
        break;
      default: break;
    }
    const std::string* why = a_.kb_.call_reason(dotted);
    fail(Code::ImpureDecorator, "decorated with @" + spelled + at_line(line) +
         (why ? " (" + *why + ")" : " (not known pure; it may register the definition)"));
  }

  void function(Node f) {
    for (Node d : f.list("decorator_list")) decorator(d);
    // PEP 695: defaults are evaluated outside the type-parameter scope,
    // annotations inside it.
    arguments(f.get("args"), false);
    bool generic = push_type_params(f);
    arguments_annotations(f.get("args"));
    if (!a_.future_annotations_) annotation(f.get("returns"));
    if (generic) scopes_.pop_back();
  }

  // An import guard (Analyzer::is_import_guard): the statements of each
  // block run in order in the unit's own namespace, so a name an earlier
  // statement of the same block bound is read from there (a local scope
  // here); any other name resolves as at the statement. Imports of another
  // top-level package only, and never a relative one: a `from m import x`
  // that fails because m is half initialised (a circular import within a
  // package, met at first use instead of at import) would be swallowed by
  // the handler and bind the fallback.
  void import_guard(Node t, Names bound) {
    guard_mode_ = true;
    Names after_body = block(t.list("body"), bound);
    for (Node h : t.list("handlers")) {
      Node type = h.get("type");
      std::vector<Node> names = type.kind() == K::Tuple ? type.list("elts") : std::vector<Node>{type};
      for (Node n : names) {
        Resolution r = lookup(n.str("id"));
        if (r.kind != Resolution::Builtin)
          fail(Code::ShadowedBuiltin, "catches " + n.str("id") + at_line(n.line()) + ", which this module rebinds");
      }
      block(h.list("body"), bound);
    }
    block(t.list("orelse"), after_body);
  }

  Names block(const std::vector<Node>& stmts, Names bound) {
    std::string own_top = a_.module_.name.substr(0, a_.module_.name.find('.'));
    for (Node s : stmts) {
      Scope local;
      local.names.insert(bound.begin(), bound.end());
      switch (s.kind()) {
        case K::Import:
          for (Node al : s.list("names")) {
            std::string name = al.str("name"), as = al.str("asname");
            std::string b = as.empty() ? name.substr(0, name.find('.')) : as;
            u_.imports.push_back(name);
            a_.guard_imports_[u_.id].insert(b);
            bound.insert(b);
          }
          break;
        case K::ImportFrom: {
          int level = (int)s.num("level");
          std::string mod = s.str("module");
          std::string top = mod.substr(0, mod.find('.'));
          if (level > 0 || own_top.empty() || top == own_top)
            fail(Code::CompoundStatement, "'try' statement at line " + std::to_string(s.line()) +
                 " imports from its own package or relatively, or its module's name is unknown (a circular import's failure would pick the fallback)");
          for (Node al : s.list("names")) {
            std::string name = al.str("name"), as = al.str("asname");
            u_.imports.push_back(mod);
            u_.imports.push_back(mod + "." + name);
            a_.guard_imports_[u_.id].insert(as.empty() ? name : as);
            bound.insert(as.empty() ? name : as);
          }
          break;
        }
        case K::Assign: {
          scopes_.push_back(local);
          captured(s.get("value"));
          scopes_.pop_back();
          std::vector<std::string> names;
          for (Node t : s.list("targets")) collect_targets(t, names);
          bound.insert(names.begin(), names.end());
          break;
        }
        case K::FunctionDef:
          scopes_.push_back(local);
          function(s);
          scopes_.pop_back();
          bound.insert(s.str("name"));
          break;
        case K::Try: import_guard(s, bound); break;  // what it binds depends on its path
        case K::Delete:
          for (Node tg : s.list("targets")) {
            std::string n = tg.str("id");
            if (!bound.count(n))
              fail(Code::ForwardReference, "deletes " + n + " at line " + std::to_string(s.line()) +
                   ", which this block did not bind");
            bound.erase(n);
          }
          break;
        default: break;  // pass
      }
    }
    return bound;
  }

  // Pushes a scope holding a generic definition's type parameters (3.12+).
  bool push_type_params(Node def) {
    std::vector<Node> params = def.list("type_params");
    if (params.empty()) return false;
    Scope s;
    for (Node p : params) s.names.insert(p.str("name"));
    scopes_.push_back(std::move(s));
    return true;
  }

  // A class-body annotation left unevaluated: the module globals it names,
  // bound before this unit, become annotation_reads (see unit.h).
  void postponed_annotation(Node n) {
    if (!n) return;
    if (n.kind() == K::Name) {
      std::string name = n.str("id");
      bool local = false;
      for (const auto& s : scopes_)
        if (s.names.count(name)) local = true;
      Resolution r = a_.resolve(name, u_.id);
      if (!local && r.unit >= 0 && r.unit < u_.id) u_.annotation_reads.insert(name);
    } else if (n.kind() == K::Constant && PyUnicode_Check(n.get("value").raw())) {
      // "Name" or "Name[...]" / "mod.Name": the leading identifier.
      std::string text = py::utf8(n.get("value").raw());
      size_t end = 0;
      while (end < text.size() && (std::isalnum((unsigned char)text[end]) || text[end] == '_')) ++end;
      if (end > 0 && !std::isdigit((unsigned char)text[0])) {
        Resolution r = a_.resolve(text.substr(0, end), u_.id);
        if (r.unit >= 0 && r.unit < u_.id) u_.annotation_reads.insert(text.substr(0, end));
      }
    }
    for_each_child(n, [&](Node c) { postponed_annotation(c); });
  }

  void arguments_annotations(Node args) {
    if (!args || a_.future_annotations_) return;
    for (const char* f : {"posonlyargs", "args", "kwonlyargs"})
      for (Node a : args.list(f)) annotation(a.get("annotation"));
    for (const char* f : {"vararg", "kwarg"}) annotation(args.get(f).get("annotation"));
  }

  // Rule 3. Fills `info` for later subclasses; `header_pure`: whether the
  // decorators, bases and keywords passed (before the body is walked).
  void class_def(Node c, ClassInfo& info, bool* header_pure = nullptr) {
    for (Node d : c.list("decorator_list")) decorator(d);
    bool generic = push_type_params(c);  // bases, keywords and body see them
    for (Node b : c.list("bases")) base(b, info);
    for (Node kw : c.list("keywords")) {
      if (kw.str("arg") == "metaclass") metaclass(kw.get("value"), info);
      else expr(kw.get("value"));
    }
    if (header_pure) *header_pure = ok();
    Scope s;
    s.is_class = true;
    scopes_.push_back(std::move(s));
    for (Node st : c.list("body")) class_statement(st, info);
    scopes_.pop_back();
    if (generic) scopes_.pop_back();
  }

  void base(Node b, ClassInfo& info) {
    std::string dotted, spelled;
    Resolution root;
    int line = b.line();
    if (b.kind() == K::Subscript) {  // Generic[T], dict[str, int]
      base(b.get("value"), info);
      expr(b.get("slice"));
      return;
    }
    if (b.kind() == K::Call) {  // namedtuple("P", "x y") as a base
      call(b, Code::ImpureBase);
      return;
    }
    if (!chain(b, dotted, spelled, root, line)) {
      expr(b);
      fail(Code::ImpureBase, "base expression" + at_line(line) + " is not a known class");
      return;
    }
    if (!check_resolution(spelled.substr(0, spelled.find('.')), root, line)) return;
    switch (root.kind) {
      case Resolution::Builtin: {
        PyObject* v = PyDict_GetItemString(a_.builtins_.get(), spelled.c_str());
        if (v && PyType_Check(v)) {
          subclasses_read(spelled, line);
          return;
        }
        break;
      }
      case Resolution::Import:
      case Resolution::FromImport:
        if (a_.kb_.pure_bases.contains(dotted) || a_.kb_.safe_bases.contains(dotted)) {
          subclasses_read(spelled, line);
          return;
        }
        fail(Code::ImpureBase, "base " + spelled + at_line(line) + " (" + dotted + ") is not known pure; it may register subclasses");
        return;
      case Resolution::LocalClass: {
        const Unit& bu = a_.units_[(size_t)root.unit];
        const ClassInfo& bi = a_.classes_[root.unit];
        info.local_bases.push_back(root.unit);
        info.metaclass_units.insert(info.metaclass_units.end(), bi.metaclass_units.begin(), bi.metaclass_units.end());
        if (bi.defines_init_subclass || bi.registers_subclasses) {
          info.registers_subclasses = true;
          if (!bi.metaclass_note.empty()) {
            info.metaclass_note = bi.metaclass_note;
            fail(Code::ImpureMetaclass, "base " + spelled + at_line(line) + " brings " + bi.metaclass_note);
          } else {
            fail(Code::InitSubclass, "base " + spelled + " (line " + std::to_string(bu.line) + ") has __init_subclass__, which runs when this class is created");
          }
          return;
        }
        if (bi.is_side_effect_metaclass) info.is_side_effect_metaclass = true;
        if (bi.subclasses_read || a_.subclasses_read_any_) {
          if (bi.subclasses_read)
            fail(Code::SubclassesRead, "base " + spelled + at_line(line) + " has its subclasses listed at line " +
                                           std::to_string(bi.subclasses_read) + ", where this class must be present");
          else
            fail(Code::SubclassesRead, "base " + spelled + at_line(line) + " may be the class whose subclasses line " +
                                           std::to_string(a_.subclasses_read_any_) + " lists (x.__subclasses__())");
          return;
        }
        if (spelled.find('.') == std::string::npos && !bu.lazy) {
          fail(Code::ImpureBase, "base " + spelled + " is defined by the eager statement at line " + std::to_string(bu.line));
        }
        return;
      }
      case Resolution::LocalValue:
        // Subclassing takes the reference: attribute lookups through the
        // base stay dynamic, as eagerly (what creating the class runs is
        // rule 3's). A rebinding still matters.
        note_input(spelled.substr(0, spelled.find('.')), root, line, /*contents=*/spelled.find('.') != std::string::npos);
        if (a_.units_[(size_t)root.unit].lazy) return;
        fail(Code::ImpureBase, "base " + spelled + " is made by the eager statement at line " + std::to_string(root.line));
        return;
      case Resolution::ClassLocal:
        return;
      default: break;
    }
    fail(Code::ImpureBase, "base " + spelled + at_line(line) + " is not known pure");
  }

  // A base whose subclasses the module lists (`Exception.__subclasses__()`,
  // `mod.Base.__subclasses__()`): creating this class is seen there.
  void subclasses_read(const std::string& spelled, int line) {
    auto it = a_.subclasses_read_.find(spelled);
    if (it == a_.subclasses_read_.end()) return;
    fail(Code::SubclassesRead, "base " + spelled + at_line(line) + " has its subclasses listed at line " +
                                   std::to_string(it->second) + ", where this class must be present");
  }

  void metaclass(Node m, ClassInfo& info) {
    std::string dotted, spelled;
    Resolution root;
    int line = m.line();
    if (chain(m, dotted, spelled, root, line) && check_resolution(spelled.substr(0, spelled.find('.')), root, line)) {
      switch (root.kind) {
        case Resolution::Builtin:
          if (spelled == "type") return;
          break;
        case Resolution::Import:
        case Resolution::FromImport:
          if (a_.kb_.pure_metaclasses.contains(dotted)) return;
          break;
        case Resolution::LocalClass: {
          const ClassInfo& mi = a_.classes_[root.unit];
          if (!mi.is_side_effect_metaclass && a_.units_[(size_t)root.unit].lazy) {
            // Its (and its local bases') __new__/__init__ run now.
            std::vector<int> work = {root.unit};
            while (!work.empty()) {
              int m = work.back();
              work.pop_back();
              info.metaclass_units.push_back(m);
              for (int b : a_.classes_[m].local_bases) work.push_back(b);
            }
            return;
          }
          break;
        }
        default: break;
      }
    } else if (!ok()) {
      return;
    }
    info.registers_subclasses = true;
    info.metaclass_note = "metaclass " + (spelled.empty() ? std::string("<expression>") : spelled);
    fail(Code::ImpureMetaclass, "metaclass " + (spelled.empty() ? std::string("<expression>") : spelled) + at_line(line) +
         " may have side effects when classes are created");
  }

  void class_statement(Node s, ClassInfo& info) {
    // Re-fetched at each use: nested class bodies push scopes and may reallocate.
    auto scope_names = [this]() -> std::unordered_set<std::string>& { return scopes_.back().names; };
    std::vector<std::string> bound;
    switch (s.kind()) {
      case K::Pass: return;
      case K::Expr:
        if (s.get("value").kind() == K::Constant) return;  // docstring
        break;
      case K::Assign: {
        bool simple = true;
        for (Node t : s.list("targets")) {
          if (t.kind() != K::Name && t.kind() != K::Tuple && t.kind() != K::List) simple = false;
          collect_targets(t, bound);
        }
        if (!simple) break;
        captured(s.get("value"));
        for (auto& n : bound) scope_names().insert(n);
        return;
      }
      case K::AnnAssign: {
        if (s.get("target").kind() != K::Name) break;
        if (!a_.future_annotations_) annotation(s.get("annotation"));
        postponed_annotation(s.get("annotation"));  // names in it left for later evaluation
        // A bare annotation (`attributes: Dict[str, Any]`) binds nothing:
        // the body's later reads of the name are the module global's
        // (SQLAlchemy's UOWTransaction reads `attributes.PASSIVE_...` in a
        // default below one).
        if (Node value = s.get("value")) {
          captured(value);
          scope_names().insert(s.get("target").str("id"));
        }
        return;
      }
      case K::AugAssign:
        if (s.get("target").kind() != K::Name) break;
        expr(s.get("value"));
        return;
      case K::FunctionDef:
      case K::AsyncFunctionDef: {
        std::string name = s.str("name");
        function(s);
        // attrs' decorators call a base's __attrs_init_subclass__ (attrs
        // 24.1+) on each new subclass: a hook like __init_subclass__.
        if (name == "__init_subclass__" || name == "__attrs_init_subclass__") info.defines_init_subclass = true;
        // Matters only if the class is used as a metaclass: creating a class
        // runs its __prepare__, __new__ and __init__ (its __call__ runs
        // when those classes are called, not when they are created). One
        // whose body changes nothing but the fresh namespace is pure.
        if (name == "__prepare__") info.is_side_effect_metaclass = true;
        if (name == "__new__" || name == "__init__") {
          // (mcs | cls, name, bases, namespace): the namespace is made for
          // this class, and so is __init__'s cls; __new__'s mcs is shared.
          Unit scratch = u_;
          DefTime body(a_, scratch);
          std::vector<Node> ps = s.get("args").list("args");
          std::vector<std::string> fresh;
          if (ps.size() == 4 && s.get("args").list("posonlyargs").empty()) {
            fresh.push_back(ps[3].str("arg"));
            if (name == "__init__") fresh.push_back(ps[0].str("arg"));
          }
          if (fresh.empty() || !s.list("decorator_list").empty() || !body.pure_body(s, fresh))
            info.is_side_effect_metaclass = true;
        }
        scope_names().insert(name);
        return;
      }
      case K::ClassDef: {
        ClassInfo nested;
        class_def(s, nested);
        scope_names().insert(s.str("name"));
        return;
      }
      case K::If: {
        expr(s.get("test"));
        // `if TYPE_CHECKING:` in a class body (attribute annotations for
        // type checkers naming classes that exist only for them): decided
        // as at top level, unless a class body in scope binds one of the
        // names a decision reads; the branch not taken never runs.
        bool shadowed = false;
        for (const auto& sc : scopes_)
          for (const char* n : {"TYPE_CHECKING", "typing", "sys"}) shadowed = shadowed || sc.names.count(n);
        if (auto d = shadowed ? std::nullopt : a_.decide(s.get("test"))) {
          for (Node b : s.list(*d ? "body" : "orelse")) class_statement(b, info);
          return;
        }
        for (Node b : s.list("body")) class_statement(b, info);
        for (Node b : s.list("orelse")) class_statement(b, info);
        return;
      }
      case K::Import:
      case K::ImportFrom:
        Analyzer::bound_names(s, bound);
        for (auto& n : bound) scope_names().insert(n);
        return;
      case K::Delete:
        return;
      case K::TypeAlias:
        scope_names().insert(s.get("name").str("id"));
        return;
      default: break;
    }
    fail(Code::ImpureClassBody, std::string("class body runs a ") + s.type_name() + " statement at line " + std::to_string(s.line()));
    record_reads(s);
  }

  // ---- function bodies (function summaries) ---------------------------------
  //
  // Whether calling function `f` changes nothing but its own locals (and,
  // for a metaclass's __new__/__init__/__prepare__, the class namespace it
  // is given, which is fresh for every class): pure-to-call, the fact
  // importers read (analyze/summaries.py) and the metaclass rule uses.
  // Statements: docstrings, pass, assignments to local names (or to items of
  // `fresh_param`, the namespace; or to attributes/items of a local bound in
  // this body by a nested def or a display), augmented assignments to
  // locals, if, for over a pure iterable, return, nested defs with pure
  // decorators and defaults. Expressions follow rule 4 with parameters and
  // locals as pure names; calls: KB-pure callables, `type.__new__(...)`,
  // `super().__new__/__init__(...)`, and dict/list methods of the namespace
  // or a fresh local. Call on a fresh DefTime (its own failure state).
  bool pure_body(Node f, const std::vector<std::string>& fresh_params = {}) {
    body_mode_ = true;
    Scope s;
    Node args = f.get("args");
    std::vector<std::string> params;
    for (const char* field : {"posonlyargs", "args", "kwonlyargs"})
      for (Node a : args.list(field)) params.push_back(a.str("arg"));
    for (const char* field : {"vararg", "kwarg"})
      if (Node a = args.get(field)) params.push_back(a.str("arg"));
    for (auto& p : params) s.names.insert(p);
    std::vector<std::string> bound;
    local_bindings(f.list("body"), bound);
    for (auto& b : bound) s.names.insert(b);
    for (auto& p : fresh_params)
      if (!p.empty()) fresh_.insert(p);
    scopes_.push_back(std::move(s));
    for (Node st : f.list("body")) body_statement(st);
    scopes_.pop_back();
    return ok();
  }

 private:
  std::unordered_set<std::string> fresh_;  // locals holding objects made in the body (or the namespace)
  bool body_mode_ = false;                 // judging a function body (pure_body)

  static void local_bindings(const std::vector<Node>& body, std::vector<std::string>& out) {
    for (Node st : body) {
      switch (st.kind()) {
        case K::Assign:
          for (Node t : st.list("targets")) collect_targets(t, out);
          break;
        case K::AugAssign:
        case K::AnnAssign: collect_targets(st.get("target"), out); break;
        case K::FunctionDef:
        case K::AsyncFunctionDef:
        case K::ClassDef: out.push_back(st.str("name")); break;
        case K::For: collect_targets(st.get("target"), out); local_bindings(st.list("body"), out); break;
        case K::If:
          local_bindings(st.list("body"), out);
          local_bindings(st.list("orelse"), out);
          break;
        default: break;
      }
    }
  }

  static bool makes_fresh(Node v) {
    switch (v.kind()) {
      case K::Dict: case K::List: case K::Set: case K::ListComp: case K::DictComp: case K::SetComp: return true;
      default: return false;
    }
  }

  bool is_fresh_name(Node n) const { return n.kind() == K::Name && fresh_.count(n.str("id")); }

  // type.__new__(mcs, ...), super().__new__(...), super(C, mcs).__init__(...)
  bool chains_to_type(Node call) {
    Node f = call.get("func");
    if (f.kind() != K::Attribute) return false;
    std::string attr = f.str("attr");
    if (attr != "__new__" && attr != "__init__" && attr != "__prepare__") return false;
    Node v = f.get("value");
    bool to_type = v.kind() == K::Name && v.str("id") == "type" && lookup("type").kind == Resolution::Builtin;
    bool to_super = v.kind() == K::Call && v.get("func").kind() == K::Name && v.get("func").str("id") == "super" &&
                    lookup("super").kind == Resolution::Builtin;
    if (!to_type && !to_super) return false;
    if (to_super)
      for (Node a : v.list("args")) expr(a);
    for (Node a : call.list("args")) expr(a);
    for (Node kw : call.list("keywords")) expr(kw.get("value"));
    return true;
  }

  // A method of the namespace or of a fresh local (dict/list methods).
  bool fresh_method(Node call) {
    static const std::unordered_set<std::string> methods = {
        "get", "setdefault", "update", "pop", "items", "keys", "values", "copy", "append", "extend", "insert"};
    Node f = call.get("func");
    if (f.kind() != K::Attribute || !is_fresh_name(f.get("value")) || !methods.count(f.str("attr"))) return false;
    for (Node a : call.list("args")) body_expr(a);
    for (Node kw : call.list("keywords")) body_expr(kw.get("value"));
    return true;
  }

  void body_expr(Node e) {
    if (!e) return;
    if (e.kind() == K::Call && (chains_to_type(e) || fresh_method(e))) return;
    if (e.kind() == K::Call) {
      // Arguments may themselves be such calls.
      Node f = e.get("func");
      std::string dotted, spelled;
      Resolution root;
      int line = e.line();
      if (f.kind() == K::Attribute && f.get("value").kind() == K::Constant) {
        // A method of a str or bytes literal the KB lists (`'|'.join(parts)`).
        if (!a_.kb_.pure.contains(literal_method(f))) {
          fail(Code::ImpureCall, "calls method " + f.str("attr") + "() of a literal" + at_line(line));
          return;
        }
      } else if (!chain(f, dotted, spelled, root, line) ||
          !(root.kind == Resolution::Builtin || root.kind == Resolution::Import || root.kind == Resolution::FromImport ||
            (root.kind == Resolution::LocalDef && spelled.find('.') == std::string::npos && local_pure_call(root.unit, 1))) ||
          (root.kind != Resolution::LocalDef && !a_.kb_.pure.contains(dotted))) {
        fail(Code::ImpureCall, "calls " + (spelled.empty() ? std::string("an expression") : spelled) + at_line(line));
        return;
      }
      for (Node a : e.list("args")) body_expr(a);
      for (Node kw : e.list("keywords")) body_expr(kw.get("value"));
      return;
    }
    switch (e.kind()) {
      case K::BoolOp: case K::BinOp: case K::UnaryOp: case K::Compare: case K::IfExp:
      case K::Dict: case K::Set: case K::List: case K::Tuple: case K::Starred:
      case K::JoinedStr: case K::FormattedValue: case K::Slice: case K::Subscript:
        for_each_child(e, [&](Node c) {
          if (c.get("lineno")) body_expr(c);
        });
        return;
      default: expr(e);
    }
  }

  void body_statement(Node st) {
    if (!ok()) return;
    switch (st.kind()) {
      case K::Pass: return;
      case K::Expr: {
        Node v = st.get("value");
        if (v.kind() == K::Constant) return;
        if (v.kind() == K::Call && (chains_to_type(v) || fresh_method(v))) return;  // super().__init__(...), ns.update(...)
        break;
      }
      case K::Return: body_expr(st.get("value")); return;
      case K::Assign: {
        Node v = st.get("value");
        body_expr(v);
        for (Node t : st.list("targets")) {
          if (t.kind() == K::Name) {
            if (makes_fresh(v)) fresh_.insert(t.str("id"));
            else fresh_.erase(t.str("id"));
            continue;
          }
          if ((t.kind() == K::Subscript || t.kind() == K::Attribute) && is_fresh_name(t.get("value"))) {
            if (t.kind() == K::Subscript) body_expr(t.get("slice"));
            continue;
          }
          fail(Code::UnknownExpression, std::string("assigns to a ") + t.type_name() + at_line(st.line()));
          return;
        }
        return;
      }
      case K::AugAssign:
        if (st.get("target").kind() != K::Name) break;
        body_expr(st.get("value"));
        return;
      case K::If:
        body_expr(st.get("test"));
        for (Node b : st.list("body")) body_statement(b);
        for (Node b : st.list("orelse")) body_statement(b);
        return;
      case K::For:
        if (!st.list("orelse").empty()) break;
        body_expr(st.get("iter"));
        for (Node b : st.list("body")) body_statement(b);
        return;
      case K::FunctionDef:
        for (Node d : st.list("decorator_list")) decorator(d);
        arguments(st.get("args"), false);
        fresh_.insert(st.str("name"));
        return;
      default: break;
    }
    fail(Code::UnknownExpression, std::string("runs a ") + st.type_name() + " statement" + at_line(st.line()));
  }

 public:
  // Records every module global a statement may read while the class body
  // runs, without judging purity: eager class bodies read globals directly
  // (LOAD_NAME), so the compile stage forces the lazy units behind them.
  void record_reads(Node n) {
    if (!n) return;
    K k = n.kind();
    if (k == K::Name) {
      lookup(n.str("id"));
      return;
    }
    if (k == K::FunctionDef || k == K::AsyncFunctionDef || k == K::Lambda) {
      for (Node d : n.list("decorator_list")) record_reads(d);
      Node args = n.get("args");
      for (Node d : args.list("defaults")) record_reads(d);
      for (Node d : args.list("kw_defaults")) record_reads(d);
      return;  // bodies run later
    }
    for_each_child(n, [&](Node c) { record_reads(c); });
  }

 private:
  struct Scope {
    std::unordered_set<std::string> names;
    bool is_class = false;
  };
  bool capture_ = false;             // see expr()
  // Per def_read: lookups of it, and those only taken as they are
  // (note_input without contents): equal counts make a captured read.
  std::unordered_map<std::string, int> looked_up_, captured_;
  int annotation_ = 0;               // inside an evaluated annotation
  std::optional<Reason> changing_;   // the first read of an input that may change after the import
  Analyzer& a_;
  Unit& u_;
  std::vector<Scope> scopes_;
  bool guard_mode_ = false;
  bool failed_ = false;
  Reason reason_;
};

bool simple_targets(Node t) {
  switch (t.kind()) {
    case K::Name: return true;
    case K::Tuple:
    case K::List:
      for (Node e : t.list("elts"))
        if (!simple_targets(e)) return false;
      return true;
    case K::Starred: return t.get("value").kind() == K::Name;
    default: return false;
  }
}

std::string lines_of(const std::vector<int>& ids, const std::vector<Unit>& units) {
  std::string out;
  for (int id : ids) {
    if (!out.empty()) out += ", ";
    out += std::to_string(units[(size_t)id].line);
  }
  return out;
}

// The shape of an import guard: `try:` of imports (and plain bindings) whose
// every handler catches only ImportError / ModuleNotFoundError, by name and
// without `as`, and falls back to imports, plain assignments, undecorated
// functions or another such guard; an `else:` of the same; no `finally:`.
// Deferred as one unit, it runs the same statements at first use: the
// imports' own side effects wait, as for any deferred import (rule 7).
// The names a guard's block leaves bound: what its statements bind, less
// what a `del` removes again.
void guard_names(const std::vector<Node>& stmts, std::set<std::string>& out) {
  for (Node s : stmts) {
    std::vector<std::string> v;
    Analyzer::bound_names(s, v);
    if (s.kind() == K::Delete)
      for (const auto& n : v) out.erase(n);
    else
      out.insert(v.begin(), v.end());
  }
}

bool is_import_guard(Node t, bool top = true) {
  if (t.kind() != K::Try || !t.list("finalbody").empty() || t.list("handlers").empty()) return false;
  auto plain = [top](const std::vector<Node>& stmts) {
    for (size_t i = 0; i < stmts.size(); ++i) {
      Node s = stmts[i];
      switch (s.kind()) {
        case K::Import: case K::Pass: break;
        case K::ImportFrom:
          if (s.str("module") == "__future__") return false;
          for (Node a : s.list("names"))
            if (a.str("name") == "*") return false;
          break;
        case K::Assign:
          for (Node tg : s.list("targets"))
            if (!simple_targets(tg)) return false;
          break;
        case K::FunctionDef:
          if (!s.list("decorator_list").empty()) return false;
          break;
        case K::Try:
          if (!is_import_guard(s, false)) return false;
          break;
        case K::Delete: {  // `import zlib; del zlib` (shutil): an availability probe
          if (!top) return false;  // (a nested guard's names are counted whole)
          // Only a name an earlier statement of the same block bound: the
          // guard must not unbind what another statement of the module bound.
          std::set<std::string> before;
          guard_names(std::vector<Node>(stmts.begin(), stmts.begin() + (long)i), before);
          for (Node tg : s.list("targets"))
            if (tg.kind() != K::Name || !before.count(tg.str("id"))) return false;
          break;
        }
        default: return false;
      }
    }
    return true;
  };
  for (Node h : t.list("handlers")) {
    Node type = h.get("type");
    if (!type || !h.str("name").empty()) return false;
    std::vector<Node> names = type.kind() == K::Tuple ? type.list("elts") : std::vector<Node>{type};
    for (Node n : names)
      if (n.kind() != K::Name || (n.str("id") != "ImportError" && n.str("id") != "ModuleNotFoundError")) return false;
    if (!plain(h.list("body"))) return false;
  }
  std::vector<Node> body = t.list("body");
  bool imports = false;
  for (Node s : body) imports = imports || s.kind() == K::Import || s.kind() == K::ImportFrom;
  if (!(imports || !top) || !plain(body) || !plain(t.list("orelse"))) return false;
  // A fallback binds no name the imports' path does not: the unit's names
  // are that path's. It may bind fewer (`except ImportError: pass`, or
  // pylint's `import multiprocessing; from multiprocessing import
  // synchronize` probe with `multiprocessing = None` as its fallback): a
  // name the failing path leaves unbound is then unbound after the unit ran,
  // as eagerly (first use raises NameError / AttributeError, hasattr is
  // False, `from m import name` fails); only dir() listed it while pending
  // (docs/differences.md). A nested guard's paths bind the same names (its
  // names are counted whole by the enclosing one).
  auto names_of = [](const std::vector<Node>& stmts, std::set<std::string>& out) { guard_names(stmts, out); };
  std::set<std::string> success;
  names_of(body, success);
  names_of(t.list("orelse"), success);
  for (Node h : t.list("handlers")) {
    std::set<std::string> fallback;
    names_of(h.list("body"), fallback);
    if (top ? !std::includes(success.begin(), success.end(), fallback.begin(), fallback.end()) : fallback != success)
      return false;
  }
  return true;
}

}  // namespace

namespace {

std::string kept_eager_in(const std::string& importer, const std::string& m) {
  return "imports " + m + ", an import the knowledge base keeps eager in " + importer +
         " (code relies on a side effect of it: eager_imports_in)";
}

}  // namespace

// A pure-Python definition that a later import guard replaces when the
// accelerator is there: `class partial: ...` then `try: from _functools
// import partial` / `except ImportError: pass` (functools' partial,
// cmp_to_key, reduce; collections' OrderedDict). `name` is bound by `u` (a
// top-level `def` or `class`) and by that eager `try` only, whose fallback
// leaves it alone. The definition may then be deferred on its own merits:
// when the import succeeds, the eager `try` binds the accelerator over the
// pending definition (a binding is published only while the name is absent,
// so it never shows again); when it fails, the definition runs at first
// use, as the value eager execution left. A lazy unit reading the name at
// definition time before the `try` is forced first by the stable-inputs
// plan (the `try` rebinds it), so it sees the Python definition, as
// eagerly. The `try` itself stays eager (the name is bound twice).
bool Analyzer::replaced_by_accelerator(const Unit& u, const std::string& name) const {
  if ((u.kind != "def" && u.kind != "class") || u.depth != 0 || all_global_writes_.count(name)) return false;
  auto b = binders_.find(name);
  if (b == binders_.end() || b->second.size() != 2 || b->second[0] != u.id) return false;
  const Unit& g = units_[(size_t)b->second[1]];
  if (g.kind != "try" || g.depth != 0 || g.stmts.size() != 1) return false;
  if (auto c = bound_in_compound_.find(name); c == bound_in_compound_.end() || c->second != g.line) return false;
  Node t = unit_nodes_[(size_t)g.id];
  if (!is_import_guard(t)) return false;
  // Bound by the imports' path (body or else), not by a fallback.
  std::set<std::string> success;
  guard_names(t.list("body"), success);
  guard_names(t.list("orelse"), success);
  if (!success.count(name)) return false;
  for (Node h : t.list("handlers")) {
    std::set<std::string> fallback;
    guard_names(h.list("body"), fallback);
    if (fallback.count(name)) return false;
  }
  return true;
}

void Analyzer::decide_unit(Unit& u) {
  Node s = unit_nodes_[(size_t)u.id];
  const std::string& kind = u.kind;
  auto eager = [&](Code c, std::string detail = {}) {
    u.lazy = false;
    u.reason = {c, std::move(detail)};
  };

  if (kind == "future-import") return eager(Code::FutureImport);
  if (kind == "star-import") return eager(Code::StarImport, "star import from " + u.imports[0] + " at line " + std::to_string(u.line) + " binds names that cannot be known in advance");
  if (kind == "expression") {
    bool doc = u.stmts[0] == 0 && s.get("value").kind() == K::Constant && PyUnicode_Check(s.get("value").get("value").raw());
    return eager(doc ? Code::Docstring : Code::ExpressionStatement);
  }
  if (kind == "if") {
    if (u.stmts[0] + 1 < (int)stmts_.size() && stmts_[(size_t)u.stmts[0] + 1].depth > u.depth)
      return eager(Code::DecidedBranch);
    if (auto d = decide(s.get("test")))
      return eager(Code::DecidedBranch, "condition at line " + std::to_string(u.line) + " is decided (" + (*d ? "true" : "false") + ") and its taken branch is empty");
    return eager(Code::CompoundStatement, "'if' at line " + std::to_string(u.line) + " is not split into units (its condition is not a constant, version, platform or TYPE_CHECKING test)");
  }
  // (The compile stage checks at import whether a guard's module is blocked
  // with code calling `__import__` and catching NameError: a module binding
  // either name keeps its guards eager.)
  if (kind == "try" && is_import_guard(s) && !binders_.count("__import__") && !binders_.count("NameError")) {
    for (const auto& n : u.binds) {
      if (is_dunder(n) && !metadata_dunder(n)) return eager(Code::DunderName, "binds " + n + ", which the import system and tools read directly");
      if (is_marker(n)) return eager(Code::MarkerName, "binds " + n + ", a marker tools read from frame globals");
      if (auto b = binders_.find(n); b != binders_.end() && b->second.size() > 1)
        return eager(Code::Rebound, n + " is bound more than once at top level (lines " + lines_of(b->second, units_) + ")");
      if (auto c = bound_in_compound_.find(n); c != bound_in_compound_.end() && c->second != u.line)
        return eager(Code::BoundInCompound, n + " is also bound inside the eager compound statement at line " + std::to_string(c->second));
    }
    // A name the imports' path binds and a fallback does not stays pending
    // until the guard runs, and `"name" in globals()` answers True for a
    // pending name without running its unit (lazy_globals.cpp, contains):
    // where the module tests such a name that way (in a function: a test at
    // top level keeps the whole module eager), the guard stays eager, or
    // the test would say the optional import is there when it failed.
    {
      std::set<std::string> success, maybe_unbound;
      guard_names(s.list("body"), success);
      guard_names(s.list("orelse"), success);
      for (Node h : s.list("handlers")) {
        std::set<std::string> fallback;
        guard_names(h.list("body"), fallback);
        for (const auto& n : success)
          if (!fallback.count(n)) maybe_unbound.insert(n);
      }
      for (const auto& n : maybe_unbound)
        if (membership_tested_.count(n))
          return eager(Code::CompoundStatement, "'try' statement at line " + std::to_string(u.line) + " may leave " + n +
                                                    " unbound (its fallback does not bind it), and the module tests \"" + n +
                                                    "\" in globals(), which a pending name answers True");
    }
    DefTime walk(*this, u);
    walk.import_guard(s, {});
    for (const auto& m : u.imports)
      if (kb_.module_never_lazy(m, /*importing=*/true)) {
        walk.fail(Code::NeverLazyImport, "imports " + m + ", which is kept eager for its import-time side effects");
        break;
      } else if (kb_.import_kept_eager(module_.name, m)) {
        walk.fail(Code::NeverLazyImport, kept_eager_in(module_.name, m));
        break;
      }
    if (!walk.ok()) return eager(walk.reason().code, walk.reason().detail);
    if (walk.changing()) return eager(walk.changing()->code, walk.changing()->detail);
    // What it leaves bound (every way through alike): a name it deletes
    // again is never bound, nor listed as pending.
    std::set<std::string> left;
    guard_names(s.list("body"), left);
    guard_names(s.list("orelse"), left);
    std::vector<std::string> binds;
    for (const auto& n : u.binds)
      if (left.count(n) && std::find(binds.begin(), binds.end(), n) == binds.end()) binds.push_back(n);
    if (binds.empty()) return eager(Code::CompoundStatement, "'try' statement at line " + std::to_string(u.line) + " binds nothing");
    u.binds = std::move(binds);
    u.lazy = true;
    u.reason = {Code::LazyImportGuard, {}};
    return;
  }
  static const std::unordered_set<std::string> compound = {"for", "while", "with", "try", "match"};
  if (compound.count(kind)) return eager(Code::CompoundStatement, "'" + kind + "' statement at line " + std::to_string(u.line) + " is not split into units");
  if (kind == "del") return eager(Code::DelStatement);
  if (kind == "global" || kind == "nonlocal") return eager(Code::GlobalStatement);
  if (kind == "augmented-assign") return eager(Code::AugmentedAssignment);
  static const std::unordered_set<std::string> deferrable = {"import", "from-import", "def", "class", "assign", "type-alias"};
  if (!deferrable.count(kind)) return eager(Code::OtherStatement, "'" + kind + "' statement at line " + std::to_string(u.line));

  // The statement's shape must be a plain binding.
  std::optional<Reason> shape;
  if (s.kind() == K::Assign) {
    for (Node t : s.list("targets"))
      if (!simple_targets(t) && !shape) shape = Reason{Code::ComplexTarget, "assigns to " + std::string(t.type_name()) + " target at line " + std::to_string(u.line)};
  } else if (s.kind() == K::AnnAssign) {
    if (!s.get("value")) shape = Reason{Code::AnnotationOnly};
    else if (s.get("target").kind() != K::Name) shape = Reason{Code::ComplexTarget, "annotated assignment to a non-name target at line " + std::to_string(u.line)};
  }

  // Binding rules.
  std::optional<Reason> binding;
  for (const auto& n : u.binds) {
    if (binding) break;
    if (is_dunder(n) && !metadata_dunder(n)) binding = Reason{Code::DunderName, "binds " + n + ", which the import system and tools read directly"};
    // Markers (`__unittest = True`) are flags tools look up in frame
    // globals; an import bound to a private `__name` (pytest's
    // `import ... as __pytestPDB`) is no flag.
    else if (is_marker(n) && kind != "import" && kind != "from-import")
      binding = Reason{Code::MarkerName, "binds " + n + ", a marker tools read from frame globals"};
    else if (replaced_by_accelerator(u, n))
      continue;
    else if (auto c = bound_in_compound_.find(n); c != bound_in_compound_.end())
      binding = Reason{Code::BoundInCompound, n + " is also bound inside the eager compound statement at line " + std::to_string(c->second)};
    else if (auto b = binders_.find(n); b != binders_.end() && b->second.size() > 1)
      binding = Reason{Code::Rebound, n + " is bound more than once at top level (lines " + lines_of(b->second, units_) + ")"};
  }

  DefTime walk(*this, u);
  ClassInfo info;
  if (kind == "import" || kind == "from-import") {
    for (const auto& m : u.imports) {
      if (kb_.module_never_lazy(m, /*importing=*/true)) {
        walk.fail(Code::NeverLazyImport, "imports " + m + ", which is kept eager for its import-time side effects");
        break;
      }
      if (kb_.import_kept_eager(module_.name, m)) {
        walk.fail(Code::NeverLazyImport, kept_eager_in(module_.name, m));
        break;
      }
    }
    // `from builtins import __import__ as _real` where this module replaces
    // builtins.__import__: bound at first use, it would be the replacement.
    if (kind == "from-import")
      for (const auto& n : u.binds) {
        Resolution r = resolve(n, u.id + 1);
        if (r.kind != Resolution::FromImport || r.unit != u.id) continue;
        if (int at = module_attr_write(r.dotted))
          walk.fail(Code::MutableInput, "imports " + r.dotted + ", which this module replaces (line " + std::to_string(at) +
                                            "): a first use after that would bind the replacement");
      }
  } else if (kind == "def") {
    // A run of `@overload` stubs before the definition (joins_overloads):
    // their decorators, defaults and annotations run first, in order.
    for (size_t k = 0; k + 1 < u.stmts.size(); ++k) walk.function(stmts_[(size_t)u.stmts[k]].node);
    walk.function(s);
    if (s.kind() == K::FunctionDef && s.list("decorator_list").empty() && u.stmts.size() == 1 && !binding && !shape) {
      Unit scratch = u;
      DefTime body(*this, scratch);
      u.pure_call = body.pure_body(s);
      if (u.pure_call) {
        // What it returns, called by `@f(...)`: see Unit::may_return_callable.
        std::function<void(Node)> walk_body = [&](Node n) {
          K k = n.kind();
          if (k == K::FunctionDef || k == K::AsyncFunctionDef || k == K::Lambda || k == K::ClassDef) {
            u.may_return_callable = true;
            return;
          }
          if (k == K::Return && n.get("value")) {
            switch (n.get("value").kind()) {
              case K::Constant: case K::JoinedStr: case K::BinOp: case K::UnaryOp: case K::Compare:
              case K::Dict: case K::List: case K::Set: case K::Tuple:
              case K::ListComp: case K::DictComp: case K::SetComp: case K::GeneratorExp: break;
              default: u.may_return_callable = true; return;
            }
          }
          for_each_child(n, walk_body);
        };
        for (Node st : s.list("body")) walk_body(st);
      }
    }
  } else if (kind == "class") {
    bool header_pure = false;
    walk.class_def(s, info, &header_pure);
    if (s.kind() == K::ClassDef) {
      auto read = subclasses_read_.find(s.str("name"));
      if (read != subclasses_read_.end()) info.subclasses_read = read->second;
    }
    u.safe_base = header_pure && !binding && !shape && !info.registers_subclasses && !info.defines_init_subclass;
    u.plain_new = u.safe_base && walk.ok() && walk.plain_instances(s, u);
    u.own_views = walk.ok() && walk.own_namespace_views(s);
  } else if (kind == "assign") {
    if (s.kind() == K::AnnAssign && !future_annotations_) walk.annotation(s.get("annotation"));
    walk.captured(s.get("value"));  // `ALIAS = CONFIG` takes the object as it is
    // `X = C(...)` where C is an imported class the KB lists as "C.__call__"
    // too: its instances are pure to call (pluggy's HookimplMarker).
    if (s.kind() == K::Assign && s.list("targets").size() == 1 && s.list("targets")[0].kind() == K::Name &&
        s.get("value").kind() == K::Call && !binding && !shape && walk.ok()) {
      Node f = s.get("value").get("func");
      std::vector<std::string> attrs;
      while (f.kind() == K::Attribute) {
        attrs.push_back(f.str("attr"));
        f = f.get("value");
      }
      if (f.kind() == K::Name) {
        Resolution r = resolve(f.str("id"), u.id);
        if (r.kind == Resolution::Import || r.kind == Resolution::FromImport) {
          std::string dotted = r.dotted;
          for (auto a = attrs.rbegin(); a != attrs.rend(); ++a) dotted += "." + *a;
          u.pure_call = kb_.pure.contains(dotted) && kb_.pure.contains(dotted + ".__call__");
        }
      }
    }
  }
  for (const auto& n : walk.captured_only())
    if (u.def_reads.count(n)) u.captured_reads.insert(n);
  if (kind == "class") {
    // A local metaclass's methods run while this class is created: the
    // module globals they read are definition-time reads (bound first, also
    // after the module has settled and its dict no longer traps).
    for (int m : info.metaclass_units)
      for (const auto& n : units_[(size_t)m].call_reads) {
        Resolution r = resolve(n, u.id);
        if (r.unit >= 0 && r.unit < u.id) {
          u.def_reads.insert(n);
          u.captured_reads.erase(n);
        }
      }
    classes_[u.id] = info;
  }

  if (shape) return eager(shape->code, shape->detail);
  if (binding) return eager(binding->code, binding->detail);
  if (!walk.ok()) return eager(walk.reason().code, walk.reason().detail);
  // Rule 4 after the import (mutable_inputs.cpp).
  if (walk.changing()) return eager(walk.changing()->code, walk.changing()->detail);
  u.lazy = true;
  static const std::unordered_map<std::string, Code> lazy_codes = {
      {"import", Code::LazyImport}, {"from-import", Code::LazyImport}, {"def", Code::LazyDef},
      {"class", Code::LazyClass}, {"assign", Code::LazyAssign}, {"type-alias", Code::LazyTypeAlias}};
  u.reason = {lazy_codes.at(kind), {}};
}

}  // namespace lazyexec::analyze
