// The extension module `lazyexec._lazyexec`: the public face of the C++ core.
// Only conversion lives here; every decision is made in the rooms below.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#if defined(__linux__)
#include <link.h>
#include <sys/mman.h>
#endif
#include <sys/stat.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <tuple>
#include <unordered_map>

#include "analyze/analyzer.h"
#include "compile/compiler.h"
#include "image/image_object.h"
#include "compile/unit_value.h"
#include "importer/artifact.h"
#include "importer/boot.h"
#include "importer/file.h"
#include "importer/finder.h"
#include "importer/loader.h"
#include "importer/policy.h"
#include "importer/toml.h"
#include "runtime/lazy_globals.h"
#include "runtime/loggers.h"
#include "runtime/patterns.h"
#include "runtime/module_hooks.h"
#include "runtime/module_state.h"

// The str hash of an ASCII name from its bytes (install_table). 3.13 moved
// _Py_HashBytes to the internal headers (pycore_pyhash.h) but still exports
// it; 3.14 has it public as Py_HashBuffer.
#if PY_VERSION_HEX >= 0x030E0000
#define LAZYEXEC_HASH_BYTES Py_HashBuffer
#else
#if PY_VERSION_HEX >= 0x030D0000
extern "C" PyAPI_FUNC(Py_hash_t) _Py_HashBytes(const void*, Py_ssize_t);
#endif
#define LAZYEXEC_HASH_BYTES _Py_HashBytes
#endif
#include "py/handle.h"

namespace lazyexec {
namespace {

using py::Ref;

constexpr const char* kKnowledgeCapsule = "lazyexec.KnowledgeBase";

Ref names_list(const analyze::Names& names) {
  Ref l = py::check(PyList_New(0));
  for (const auto& n : names)
    if (PyList_Append(l.get(), py::str(n).get()) < 0) throw py::PyError{};
  return l;
}

template <class Seq, class Fn>
Ref list_of(const Seq& seq, Fn fn) {
  Ref l = py::check(PyList_New(0));
  for (const auto& v : seq)
    if (PyList_Append(l.get(), fn(v).get()) < 0) throw py::PyError{};
  return l;
}

void set(PyObject* d, const char* key, Ref value) {
  if (PyDict_SetItemString(d, key, value.get()) < 0) throw py::PyError{};
}

Ref to_python(const analyze::ModuleAnalysis& m) {
  Ref units = list_of(m.units, [](const analyze::Unit& u) {
    Ref d = py::check(PyDict_New());
    set(d.get(), "id", py::check(PyLong_FromLong(u.id)));
    set(d.get(), "kind", py::str(u.kind));
    set(d.get(), "line", py::check(PyLong_FromLong(u.line)));
    set(d.get(), "end_line", py::check(PyLong_FromLong(u.end_line)));
    set(d.get(), "col", py::check(PyLong_FromLong(u.col)));
    set(d.get(), "lines", list_of(u.lines, [](int l) { return py::check(PyLong_FromLong(l)); }));
    set(d.get(), "statements", list_of(u.stmts, [](int s) { return py::check(PyLong_FromLong(s)); }));
    set(d.get(), "part", u.part < 0 ? Ref::borrow(Py_None) : py::check(PyLong_FromLong(u.part)));
    set(d.get(), "depth", py::check(PyLong_FromLong(u.depth)));
    set(d.get(), "binds", list_of(u.binds, [](const std::string& s) { return py::str(s); }));
    set(d.get(), "imports", list_of(u.imports, [](const std::string& s) { return py::str(s); }));
    set(d.get(), "def_reads", names_list(u.def_reads));
    set(d.get(), "call_reads", names_list(u.call_reads));
    set(d.get(), "annotation_reads", names_list(u.annotation_reads));
    set(d.get(), "name_reads", names_list(u.name_reads));
    set(d.get(), "global_writes", names_list(u.global_writes));
    set(d.get(), "verdict", py::str(u.lazy ? "lazy" : "eager"));
    set(d.get(), "reason", py::str(analyze::short_code(u.reason.code)));
    set(d.get(), "message", py::str(u.reason.text()));
    if (u.kind == "class") set(d.get(), "safe_base", Ref::borrow(u.safe_base ? Py_True : Py_False));
    if (u.kind == "class") set(d.get(), "plain_new", Ref::borrow(u.plain_new ? Py_True : Py_False));
    if (u.kind == "class") set(d.get(), "own_views", Ref::borrow(u.own_views ? Py_True : Py_False));
    if (u.kind == "def" || u.kind == "assign") set(d.get(), "pure_call", Ref::borrow(u.pure_call ? Py_True : Py_False));
    if (u.kind == "def") set(d.get(), "may_return_callable", Ref::borrow(u.may_return_callable ? Py_True : Py_False));
    set(d.get(), "lists_subclasses", Ref::borrow(u.lists_subclasses ? Py_True : Py_False));
    return d;
  });
  Ref forces = list_of(m.forces, [](const analyze::Force& f) {
    Ref d = py::check(PyDict_New());
    set(d.get(), "before", py::check(PyLong_FromLong(f.before)));
    set(d.get(), "units", list_of(f.units, [](int id) { return py::check(PyLong_FromLong(id)); }));
    return d;
  });
  Ref out = py::check(PyDict_New());
  set(out.get(), "units", units);
  set(out.get(), "forces", forces);
  set(out.get(), "statements", py::check(PyLong_FromLong(m.statements)));
  set(out.get(), "top_level_statements", py::check(PyLong_FromLong(m.top_level_statements)));
  set(out.get(), "lazy_marker", py::str(m.lazy_marker));
  set(out.get(), "lazy_modules", list_of(m.lazy_modules, [](const std::string& s) { return py::str(s); }));
  set(out.get(), "future_annotations", Ref::borrow(m.future_annotations ? Py_True : Py_False));
  set(out.get(), "module_annotations", Ref::borrow(m.module_annotations ? Py_True : Py_False));
  set(out.get(), "module_eager", Ref::borrow(m.module_eager ? Py_True : Py_False));
  set(out.get(), "module_reason",
      m.module_eager ? py::str(analyze::short_code(m.module_reason.code)) : Ref::borrow(Py_None));
  set(out.get(), "module_message", m.module_eager ? py::str(m.module_reason.text()) : Ref::borrow(Py_None));
  return out;
}

void destroy_knowledge(PyObject* capsule) {
  delete static_cast<analyze::KnowledgeBase*>(PyCapsule_GetPointer(capsule, kKnowledgeCapsule));
}

void fill(analyze::NameSet& set, PyObject* iterable, const char* what) {
  if (iterable == nullptr || iterable == Py_None) return;
  Ref it = Ref::steal(PyObject_GetIter(iterable));
  if (!it) throw py::PyError{};
  while (Ref item = Ref::steal(PyIter_Next(it.get()))) {
    if (!PyUnicode_Check(item.get())) {
      PyErr_Format(PyExc_TypeError, "knowledge base: %s entries must be str, not %.100s", what, Py_TYPE(item.get())->tp_name);
      throw py::PyError{};
    }
    set.add(py::utf8(item.get()));
  }
  if (PyErr_Occurred()) throw py::PyError{};
}

PyObject* knowledge(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"pure", "pure_bases", "pure_metaclasses", "never_lazy", "impure", "imports_only",
                                 "effect_free", "safe_bases", "effects", "eager_imports_in",
                                 "namespace_copy_decorators", "abc_registries", "aliases", "subclass_listers",
                                 "not_factories", nullptr};
  PyObject *pure = nullptr, *bases = nullptr, *metas = nullptr, *never = nullptr, *impure = nullptr;
  PyObject *effect_free = nullptr, *safe_bases = nullptr, *effects = nullptr, *eager_in = nullptr, *copies = nullptr;
  PyObject *registries = nullptr, *aliases = nullptr, *listers = nullptr, *not_factories = nullptr;
  int imports_only = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOOOOpOOOOOOOOO", const_cast<char**>(kwlist), &pure, &bases, &metas, &never,
                                   &impure, &imports_only, &effect_free, &safe_bases, &effects, &eager_in, &copies,
                                   &registries, &aliases, &listers, &not_factories))
    return nullptr;
  auto kb = std::make_unique<analyze::KnowledgeBase>();
  kb->imports_only = imports_only != 0;
  try {
    fill(kb->pure, pure, "pure");
    fill(kb->pure_bases, bases, "pure_bases");
    fill(kb->pure_metaclasses, metas, "pure_metaclasses");
    fill(kb->never_lazy, never, "never_lazy");
    fill(kb->effect_free, effect_free, "effect_free");
    fill(kb->safe_bases, safe_bases, "safe_bases");
    fill(kb->namespace_copy_decorators, copies, "namespace_copy_decorators");
    fill(kb->abc_registries, registries, "abc_registries");
    fill(kb->subclass_listers, listers, "subclass_listers");
    fill(kb->not_factories, not_factories, "not_factories");
    for (auto [table, into, what] : {std::tuple{impure, &kb->impure, "impure"}, std::tuple{effects, &kb->effects, "effects"},
                                     std::tuple{aliases, &kb->aliases, "aliases"}}) {
      if (!table || table == Py_None) continue;
      if (!PyDict_Check(table)) {
        PyErr_Format(PyExc_TypeError, "knowledge base: %s must be a dict of name -> str", what);
        return nullptr;
      }
      PyObject *k, *v;
      Py_ssize_t pos = 0;
      while (PyDict_Next(table, &pos, &k, &v)) {
        if (!PyUnicode_Check(k) || !PyUnicode_Check(v)) {
          PyErr_Format(PyExc_TypeError, "knowledge base: %s entries must be str -> str", what);
          return nullptr;
        }
        (*into)[py::utf8(k)] = py::utf8(v);
      }
    }
    if (eager_in && eager_in != Py_None) {
      if (!PyDict_Check(eager_in)) {
        PyErr_SetString(PyExc_TypeError, "knowledge base: eager_imports_in must be a dict of module -> list of modules");
        return nullptr;
      }
      PyObject *k, *v;
      Py_ssize_t pos = 0;
      while (PyDict_Next(eager_in, &pos, &k, &v)) {
        if (!PyUnicode_Check(k) || PyUnicode_Check(v)) {
          PyErr_SetString(PyExc_TypeError, "knowledge base: eager_imports_in must map module names to lists of module names");
          return nullptr;
        }
        fill(kb->eager_imports_in[py::utf8(k)], v, "eager_imports_in");
      }
    }
  } catch (const py::PyError&) {
    return nullptr;
  }
  PyObject* capsule = PyCapsule_New(kb.get(), kKnowledgeCapsule, destroy_knowledge);
  if (capsule) kb.release();
  return capsule;
}

PyObject* analyze_source(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"source", "filename", "knowledge", "module", "is_package", nullptr};
  PyObject *source, *filename, *capsule;
  const char* module = "";
  int is_package = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|zp", const_cast<char**>(kwlist), &source, &filename, &capsule,
                                   &module, &is_package))
    return nullptr;
  if (!PyBytes_Check(source) && !PyUnicode_Check(source)) {
    PyErr_Format(PyExc_TypeError, "source must be bytes or str, not %.100s", Py_TYPE(source)->tp_name);
    return nullptr;
  }
  auto* kb = static_cast<analyze::KnowledgeBase*>(PyCapsule_GetPointer(capsule, kKnowledgeCapsule));
  if (!kb) return nullptr;
  try {
    analyze::ModuleInfo info{module ? module : "", is_package != 0};
    return to_python(analyze::analyze(source, filename, *kb, info)).release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// compile(source, filename, knowledge, module=None, is_package=False):
// the analysis plus code objects: "code" per unit (None when eager) and
// "steps", the eager part as ("run", code) and ("force", [unit ids]).
PyObject* compile_source(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"source", "filename", "knowledge", "module", "is_package", "pep810_only", nullptr};
  PyObject *source, *filename, *capsule;
  const char* module = "";
  int is_package = 0, pep810_only = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|zpp", const_cast<char**>(kwlist), &source, &filename, &capsule,
                                   &module, &is_package, &pep810_only))
    return nullptr;
  auto* kb = static_cast<analyze::KnowledgeBase*>(PyCapsule_GetPointer(capsule, kKnowledgeCapsule));
  if (!kb) return nullptr;
  try {
    analyze::ModuleInfo info{module ? module : "", is_package != 0};
    analyze::ModuleAnalysis m = analyze::analyze(source, filename, *kb, info);
    if (pep810_only) analyze::restrict_to_lazy_modules(m);
    compile::CompiledModule c = compile::compile_module(m, filename);
    Ref out = to_python(m);
    Ref codes = list_of(c.unit_code, [](const Ref& code) { return code ? code : Ref::borrow(Py_None); });
    set(out.get(), "code", codes);
    Ref steps = list_of(c.steps, [](const compile::Step& st) {
      if (st.kind == compile::Step::Run) return py::check(Py_BuildValue("(sOi)", "run", st.code.get(), st.end));
      Ref ids = list_of(st.units, [](int id) { return py::check(PyLong_FromLong(id)); });
      return py::check(Py_BuildValue("(sOi)", "force", ids.get(), 0));
    });
    set(out.get(), "steps", steps);
    set(out.get(), "flags", py::check(PyLong_FromLong(c.flags)));
    return out.release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

runtime::ModuleState* state_arg(PyObject* globals) {
  runtime::ModuleState* st = PyDict_Check(globals) ? runtime::state_of(globals) : nullptr;
  if (!st) PyErr_SetString(PyExc_ValueError, "lazyexec: not the namespace of a lazily loaded module");
  return st;
}

// Sets unit record `r`'s code from a unit's code field (a plan's
// units[i][0]): 0 for an eager unit (None), 1 for a deferred one, -1 with
// TypeError or ValueError set when the field is malformed. `nbinds`: the
// names the unit binds (a constant's, a function's or a class's unit binds one).
int set_unit_code(runtime::UnitRecord& r, PyObject* code, Py_ssize_t nbinds) {
  if (code == Py_None) return 0;
  // A constant's unit holds (marshal bytes of its value,) instead of
  // code; a plain function's ("function", marshal bytes of its code).
  bool value_unit = PyTuple_Check(code) && PyTuple_GET_SIZE(code) == 1 && PyBytes_Check(PyTuple_GET_ITEM(code, 0));
  bool function_unit = PyTuple_Check(code) && PyTuple_GET_SIZE(code) == 2 &&
                       PyUnicode_Check(PyTuple_GET_ITEM(code, 0)) &&
                       PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(code, 0), "function") == 0 &&
                       PyObject_CheckBuffer(PyTuple_GET_ITEM(code, 1));  // bytes, or an image's buffer
  // Marshal bytes: any read-only buffer (an image's unit code, in its mapping).
  // A plain class's ("class", marshal bytes of its body's code, (base names)).
  bool class_unit = PyTuple_Check(code) && PyTuple_GET_SIZE(code) == 3 &&
                    PyUnicode_Check(PyTuple_GET_ITEM(code, 0)) &&
                    PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(code, 0), "class") == 0 &&
                    PyObject_CheckBuffer(PyTuple_GET_ITEM(code, 1)) && PyTuple_Check(PyTuple_GET_ITEM(code, 2));
  if (class_unit)
    for (Py_ssize_t b = 0; b < PyTuple_GET_SIZE(PyTuple_GET_ITEM(code, 2)); ++b)
      if (!PyUnicode_Check(PyTuple_GET_ITEM(PyTuple_GET_ITEM(code, 2), b))) class_unit = false;
  // A member of the stream of units the import runs: ("group", marshalled
  // tuple of code objects, index, "function" | "class" | "code", bases or None).
  bool group_unit = PyTuple_Check(code) && PyTuple_GET_SIZE(code) == 5 &&
                    PyUnicode_Check(PyTuple_GET_ITEM(code, 0)) &&
                    PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(code, 0), "group") == 0 &&
                    PyObject_CheckBuffer(PyTuple_GET_ITEM(code, 1)) && PyLong_Check(PyTuple_GET_ITEM(code, 2)) &&
                    PyUnicode_Check(PyTuple_GET_ITEM(code, 3));
  runtime::UnitRecord::Kind group_kind = runtime::UnitRecord::Code;
  long group_index = -1;
  if (group_unit) {
    PyObject* kind = PyTuple_GET_ITEM(code, 3);
    PyObject* bases = PyTuple_GET_ITEM(code, 4);
    group_index = PyLong_AsLong(PyTuple_GET_ITEM(code, 2));
    if (group_index < 0 || group_index > INT32_MAX) {
      PyErr_Clear();
      group_unit = false;
    } else if (PyUnicode_CompareWithASCIIString(kind, "function") == 0) {
      group_kind = runtime::UnitRecord::Function;
    } else if (PyUnicode_CompareWithASCIIString(kind, "class") == 0 && PyTuple_Check(bases)) {
      group_kind = runtime::UnitRecord::Class;
      for (Py_ssize_t b = 0; b < PyTuple_GET_SIZE(bases); ++b)
        if (!PyUnicode_Check(PyTuple_GET_ITEM(bases, b))) group_unit = false;
    } else if (PyUnicode_CompareWithASCIIString(kind, "code") != 0) {
      group_unit = false;
    }
  }
  if (code != Py_None && !PyCode_Check(code) && !PyObject_CheckBuffer(code) && !value_unit && !function_unit &&
      !class_unit && !group_unit) {
    PyErr_SetString(PyExc_TypeError,
                    "lazyexec: unit code must be a code object, its marshal bytes, (marshalled value,), "
                    "(\"function\", marshalled code), (\"class\", marshalled body, bases), "
                    "(\"group\", marshalled codes, index, kind, bases) or None");
    return -1;
  }
  if (group_unit && group_kind != runtime::UnitRecord::Code && nbinds != 1) {
    PyErr_SetString(PyExc_ValueError, "lazyexec: a function's or a class's unit binds one name");
    return -1;
  }
  if ((value_unit || function_unit || class_unit) && nbinds != 1) {
    PyErr_SetString(PyExc_ValueError, "lazyexec: a constant's or a function's unit binds one name");
    return -1;
  }
  r.code = Ref::borrow(function_unit || class_unit || group_unit ? PyTuple_GET_ITEM(code, 1) : code);
  r.kind = value_unit      ? runtime::UnitRecord::Value
           : function_unit ? runtime::UnitRecord::Function
           : class_unit    ? runtime::UnitRecord::Class
           : group_unit    ? group_kind
                           : runtime::UnitRecord::Code;
  if (class_unit) r.bases = Ref::borrow(PyTuple_GET_ITEM(code, 2));
  if (group_unit && group_kind == runtime::UnitRecord::Class) r.bases = Ref::borrow(PyTuple_GET_ITEM(code, 4));
  if (group_unit) r.group_index = (int32_t)group_index;
  // Its size, for the usage profile's cost model (an image's buffer is
  // not opened for it: unknown counts as small).
  if (PyBytes_Check(r.code.get())) r.size = (uint32_t)PyBytes_GET_SIZE(r.code.get());
  else if (value_unit) r.size = (uint32_t)PyBytes_GET_SIZE(PyTuple_GET_ITEM(code, 0));
  return 1;
}

// The names a unit binds may still be in `globals` (importlib.reload runs a
// module again in the same namespace: eagerly every binding is redone, so
// the names lazy units bind become pending again instead of keeping their
// old values): they go. A fresh module holds only its few dunders: its keys
// are looked up among the pending names (a look per key), not each pending
// name in it (a look per name).
void drop_pending_present(runtime::ModuleState& st, PyObject* globals) {
  if ((size_t)PyDict_GET_SIZE(globals) < st.pending.size()) {
    std::vector<Ref> present;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(globals, &pos, &key, &value))
      if (PyUnicode_Check(key) && runtime::may_be_pending(st, key) && st.pending.count(py::utf8(key)))
        present.push_back(Ref::borrow(key));
    for (const Ref& name : present)
      if (PyDict_DelItem(globals, name.get()) < 0) PyErr_Clear();
    return;
  }
  for (const auto& [key, id] : st.pending) {
    // Look before deleting (a KeyError raised and cleared per name costs
    // more than the lookup).
    Ref name = py::check(PyUnicode_DecodeUTF8(key.data(), (Py_ssize_t)key.size(), "surrogatepass"));
    int present = PyDict_Contains(globals, name.get());
    if (present < 0) throw py::PyError{};
    if (present && PyDict_DelItem(globals, name.get()) < 0) PyErr_Clear();
  }
}

// A group's members share its stream: each counts its share of the bytes in
// the usage profile's cost model.
void share_group_sizes(std::vector<runtime::UnitRecord>& records) {
  std::unordered_map<PyObject*, uint32_t> members;
  for (const auto& r : records)
    if (r.group_index >= 0) members[r.code.get()]++;
  for (auto& r : records)
    if (r.group_index >= 0) r.size /= members[r.code.get()];
}

// The state of a module whose records and tables are made: `globals` made a
// trapping dict.
runtime::ModuleState& new_state(PyObject* globals, const char* module, const char* filename, long threshold,
                                PyObject* module_obj, std::vector<runtime::UnitRecord>&& records,
                                std::vector<char>&& text, std::vector<int>&& links) {
  share_group_sizes(records);
  if (runtime::make_trapping(globals) < 0) throw py::PyError{};
  runtime::ModuleState& st = runtime::create_state(globals);
  st.module = module;
  st.filename = filename;
  st.units = std::move(records);
  text.shrink_to_fit();
  links.shrink_to_fit();
  st.text = std::move(text);  // fixed from here on: `pending` keys point into it
  st.links = std::move(links);
  st.settle_threshold = threshold;
  if (module_obj != Py_None) st.module_ref = py::check(PyWeakref_NewRef(module_obj, nullptr));
  return st;
}

// install() of a plan from an image (format 6): its unit table, checked by
// the image reader, copied as the module's tables; no unit tuple, name
// list or `where` str made.
void install_table(PyObject* globals, const image::UnitTable& t, const char* module, long threshold,
                   const char* filename, PyObject* module_obj) {
  size_t n = t.units->size();
  if ((size_t)PyList_GET_SIZE(t.codes) != n) {
    PyErr_SetString(PyExc_ValueError, "lazyexec: an image plan's code fields and units differ in number");
    throw py::PyError{};
  }
  std::vector<runtime::UnitRecord> records(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& u = (*t.units)[i];
    runtime::UnitRecord& r = records[i];
    r.where_at = u.where_at;
    r.links_at = u.links_at;
    r.ndeps = u.ndeps;
    r.ncalls = u.ncalls;
    r.binds_at = u.binds_at;
    int deferred = set_unit_code(r, PyList_GET_ITEM(t.codes, i), (Py_ssize_t)u.nbinds);
    if (deferred < 0) throw py::PyError{};
    if (deferred == 0) {
      r.state = runtime::UnitRecord::Done;  // eager: ran with the module
      continue;
    }
    r.nbinds = u.nbinds;
  }
  runtime::ModuleState& st = new_state(globals, module, filename, threshold, module_obj, std::move(records),
                                       std::vector<char>(*t.text), std::vector<int>(*t.links));
  for (size_t i = 0; i < st.units.size(); ++i)
    for (std::string_view b : st.binds(st.units[i])) {
      // The str hash of an ASCII name is that of its bytes (unicode_hash);
      // another name is made a str for it.
      bool ascii = std::all_of(b.begin(), b.end(), [](char c) { return (unsigned char)c < 0x80; });
      if (ascii) {
        runtime::add_pending_hashed(st, LAZYEXEC_HASH_BYTES(b.data(), (Py_ssize_t)b.size()), b, (int)i);
      } else {
        Ref name = py::check(PyUnicode_DecodeUTF8(b.data(), (Py_ssize_t)b.size(), "surrogatepass"));
        runtime::add_pending(st, name.get(), b, (int)i);
      }
    }
  drop_pending_present(st, globals);
}

// install(globals, units, module, settle_threshold=10000, filename="", module_obj=None):
// units[i] is (code or None, binds, deps, where, calls); `code` may be the
// code object's marshal bytes, unmarshalled only when the unit first runs
// (a never-used unit then costs its bytes, not a live code object).
// `units` may also be an image's ImageUnits (format 6: its unit table).
// Makes `globals` a trapping dict.
PyObject* install(PyObject*, PyObject* args) {
  PyObject *globals, *units;
  const char* module;
  long threshold = 10000;
  const char* filename = "";
  PyObject* module_obj = Py_None;
  if (!PyArg_ParseTuple(args, "O!Os|lsO", &PyDict_Type, &globals, &units, &module, &threshold, &filename,
                        &module_obj))
    return nullptr;
  image::UnitTable table;
  if (image::unit_table(units, &table)) {
    try {
      install_table(globals, table, module, threshold, filename, module_obj);
    } catch (const py::PyError&) {
      return nullptr;
    }
    Py_RETURN_NONE;
  }
  if (!PyList_Check(units)) {
    PyErr_SetString(PyExc_TypeError, "install: units must be a list");
    return nullptr;
  }
  try {
    // Unit fields are tuples or lists (marshalled plans): read them directly,
    // this runs for every unit of every module loaded lazily.
    auto ints = [](PyObject* seq, std::vector<int>& out) {
      Ref fast = py::check(PySequence_Fast(seq, "lazyexec: unit indexes must be a sequence"));
      Py_ssize_t n = PySequence_Fast_GET_SIZE(fast.get());
      out.reserve((size_t)n);
      for (Py_ssize_t k = 0; k < n; ++k) out.push_back((int)PyLong_AsLong(PySequence_Fast_GET_ITEM(fast.get(), k)));
      if (PyErr_Occurred()) throw py::PyError{};
    };
    std::vector<runtime::UnitRecord> records((size_t)PyList_GET_SIZE(units));
    // The module's tables (ModuleState::text and ::links), one allocation
    // each instead of a few per unit.
    std::vector<char> text;
    std::vector<int> links;
    text.reserve((size_t)PyList_GET_SIZE(units) * 24);
    // Appends a str's UTF-8, NUL-terminated, to `text`; its offset.
    auto add_text = [&text](PyObject* s) -> uint32_t {
      Py_ssize_t n;
      const char* utf8 = PyUnicode_AsUTF8AndSize(s, &n);
      if (!utf8) throw py::PyError{};
      if (std::memchr(utf8, 0, (size_t)n) || text.size() + (size_t)n + 1 > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "lazyexec: a unit's name or where holds a NUL, or the module's are too long");
        throw py::PyError{};
      }
      uint32_t at = (uint32_t)text.size();
      text.insert(text.end(), utf8, utf8 + n);
      text.push_back('\0');
      return at;
    };
    std::vector<std::pair<PyObject*, int>> pending;  // (name, unit): borrowed from `units`
    std::vector<int> dep_ids, call_ids;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(units); ++i) {
      PyObject* spec = PyList_GET_ITEM(units, i);
      runtime::UnitRecord& r = records[(size_t)i];
      if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 5 || !PyUnicode_Check(PyTuple_GET_ITEM(spec, 3))) {
        PyErr_SetString(PyExc_TypeError, "lazyexec: a unit is (code, binds, deps, where: str, calls)");
        return nullptr;
      }
      PyObject* code = PyTuple_GET_ITEM(spec, 0);
      PyObject* binds = PyTuple_GET_ITEM(spec, 1);
      PyObject* deps = PyTuple_GET_ITEM(spec, 2);
      PyObject* where = PyTuple_GET_ITEM(spec, 3);
      PyObject* calls = PyTuple_GET_ITEM(spec, 4);
      Py_ssize_t nbinds = code == Py_None ? 0 : PySequence_Size(binds);
      if (nbinds < 0) throw py::PyError{};
      r.where_at = add_text(where);
      dep_ids.clear();
      call_ids.clear();
      ints(deps, dep_ids);
      ints(calls, call_ids);
      for (int d : dep_ids)
        if (d < 0 || d >= PyList_GET_SIZE(units)) return PyErr_Format(PyExc_ValueError, "lazyexec: bad unit index %d", d);
      for (int c : call_ids)
        if (c < 0 || c >= PyList_GET_SIZE(units)) return PyErr_Format(PyExc_ValueError, "lazyexec: bad unit index %d", c);
      r.links_at = (uint32_t)links.size();
      r.ndeps = (uint32_t)dep_ids.size();
      r.ncalls = (uint32_t)call_ids.size();
      links.insert(links.end(), dep_ids.begin(), dep_ids.end());
      links.insert(links.end(), call_ids.begin(), call_ids.end());
      r.binds_at = (uint32_t)text.size();
      int deferred = set_unit_code(r, code, nbinds);
      if (deferred < 0) return nullptr;
      if (deferred == 0) {
        r.state = runtime::UnitRecord::Done;  // eager: ran with the module
        continue;
      }
      Ref names = py::check(PySequence_Fast(binds, "lazyexec: unit binds must be a sequence"));
      for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(names.get()); ++k) {
        PyObject* name = PySequence_Fast_GET_ITEM(names.get(), k);
        if (!PyUnicode_Check(name)) {
          PyErr_SetString(PyExc_TypeError, "lazyexec: a unit binds str names");
          throw py::PyError{};
        }
        add_text(name);
        r.nbinds++;
        pending.emplace_back(name, (int)i);
      }
    }
    runtime::ModuleState& st = new_state(globals, module, filename, threshold, module_obj, std::move(records),
                                         std::move(text), std::move(links));
    {
      // The names in `text`, in the order `pending` lists them.
      size_t k = 0;
      for (const auto& r : st.units)
        for (std::string_view b : st.binds(r)) {
          runtime::add_pending(st, pending[k].first, b, pending[k].second);
          ++k;
        }
    }
    drop_pending_present(st, globals);
  } catch (const py::PyError&) {
    return nullptr;
  }
  Py_RETURN_NONE;
}

// set_imports(globals, specs): the modules each deferred import unit
// imports, from the plan's bind_loaded step ((uid, name, mode, modules,
// attr) per unit), for runtime::imports_initializing.
PyObject* set_imports(PyObject*, PyObject* args) {
  PyObject *globals, *specs;
  if (!PyArg_ParseTuple(args, "OO", &globals, &specs)) return nullptr;
  runtime::ModuleState* st = PyDict_Check(globals) ? runtime::state_of(globals) : nullptr;
  if (!st) Py_RETURN_NONE;
  Ref fast = Ref::steal(PySequence_Fast(specs, "set_imports: specs must be a sequence"));
  if (!fast) return nullptr;
  try {
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast.get()); ++i) {
      PyObject* spec = PySequence_Fast_GET_ITEM(fast.get(), i);
      if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 4) continue;
      long uid = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
      if (uid < 0 || uid >= (long)st->units.size()) {
        PyErr_Clear();
        continue;
      }
      Ref names = Ref::steal(PySequence_Fast(PyTuple_GET_ITEM(spec, 3), "set_imports: modules must be a sequence"));
      if (!names) return nullptr;
      auto imports = std::make_unique<runtime::UnitImports>();
      for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(names.get()); ++k)
        imports->modules.push_back(py::utf8(PySequence_Fast_GET_ITEM(names.get(), k)));
      imports->attr = PyTuple_GET_SIZE(spec) > 4 ? py::utf8(PyTuple_GET_ITEM(spec, 4)) : "";
      // No modules: as before, nothing recorded (imports_initializing, loads_nothing_new).
      st->units[(size_t)uid].imports = imports->modules.empty() ? nullptr : std::move(imports);
    }
  } catch (const py::PyError&) {
    return nullptr;
  }
  Py_RETURN_NONE;
}

// settle(globals, reason="requested"): see runtime/settle.cpp.
PyObject* settle(PyObject*, PyObject* args) {
  PyObject* globals;
  const char* reason = "requested: lazyexec.settle()";
  if (!PyArg_ParseTuple(args, "O|s", &globals, &reason)) return nullptr;
  runtime::ModuleState* st = PyDict_Check(globals) ? runtime::state_of(globals) : nullptr;
  if (!st) Py_RETURN_FALSE;
  runtime::settle(*st, reason);
  return PyBool_FromLong(st->settled);
}

PyObject* force(PyObject*, PyObject* args) {
  PyObject *globals, *ids;
  if (!PyArg_ParseTuple(args, "OO", &globals, &ids)) return nullptr;
  runtime::ModuleState* st = state_arg(globals);
  if (!st) return nullptr;
  Ref it = Ref::steal(PyObject_GetIter(ids));
  if (!it) return nullptr;
  while (Ref id = Ref::steal(PyIter_Next(it.get())))
    if (runtime::materialize(*st, (int)PyLong_AsLong(id.get())) < 0) return nullptr;
  if (PyErr_Occurred()) return nullptr;
  Py_RETURN_NONE;
}

// resolve(globals, id, values): unit `id` is done, binding `values` (a dict).
PyObject* resolve(PyObject*, PyObject* args) {
  PyObject *globals, *values;
  int id;
  if (!PyArg_ParseTuple(args, "OiO!", &globals, &id, &PyDict_Type, &values)) return nullptr;
  runtime::ModuleState* st = state_arg(globals);
  if (!st) return nullptr;
  if (runtime::resolve(*st, id, values) < 0) return nullptr;
  Py_RETURN_NONE;
}

// lookup(globals, name) -> (found, value): materializes a pending name.
PyObject* lookup(PyObject*, PyObject* args) {
  PyObject *globals, *name;
  if (!PyArg_ParseTuple(args, "O!U", &PyDict_Type, &globals, &name)) return nullptr;
  PyObject* v = PyDict_GetItemWithError(globals, name);
  if (!v && !PyErr_Occurred()) {
    if (runtime::ModuleState* st = runtime::state_of(globals)) {
      if (runtime::materialize_name(*st, name, /*absent_if_running=*/true) < 0) return nullptr;
      v = PyDict_GetItemWithError(globals, name);
    }
  }
  if (PyErr_Occurred()) return nullptr;
  if (!v) return Py_BuildValue("(OO)", Py_False, Py_None);
  return Py_BuildValue("(OO)", Py_True, v);
}

PyObject* pending(PyObject*, PyObject* globals) {
  runtime::ModuleState* st = PyDict_Check(globals) ? runtime::state_of(globals) : nullptr;
  Ref l = Ref::steal(PyList_New(0));
  if (!l) return nullptr;
  if (st)
    for (const auto& [name, unit] : st->pending) {
      if (unit >= runtime::visible_limit(*st)) continue;  // not defined yet: the top level has not reached it
      Ref s = Ref::steal(PyUnicode_FromStringAndSize(name.data(), (Py_ssize_t)name.size()));
      if (!s || PyList_Append(l.get(), s.get()) < 0) return nullptr;
    }
  if (PyList_Sort(l.get()) < 0) return nullptr;
  return l.release();
}

// materialize_all(globals, public_only=False, keep_going=False): with
// keep_going, a failing unit stays pending (its error reaches whoever uses its
// names) and the others still run.
PyObject* materialize_all(PyObject*, PyObject* args) {
  PyObject* globals;
  int public_only = 0, keep_going = 0;
  if (!PyArg_ParseTuple(args, "O|pp", &globals, &public_only, &keep_going)) return nullptr;
  runtime::ModuleState* st = PyDict_Check(globals) ? runtime::state_of(globals) : nullptr;
  if (!st) Py_RETURN_NONE;
  const int limit = runtime::visible_limit(*st);
  // Settled: each unit with its static closure, unless that waits on a module
  // still initializing (nothing traps a settled module's lookups; settle.cpp).
  const std::vector<char> waits = st->settled ? runtime::waiting_on_initializing(*st) : std::vector<char>();
  for (size_t i = 0; i < st->units.size() && (int)i < limit; ++i) {
    const auto& u = st->units[i];
    if (u.state != runtime::UnitRecord::Pending || !u.code || runtime::imports_initializing(u)) continue;
    if (i < waits.size() && waits[i]) continue;
    bool wanted = !public_only;
    for (std::string_view b : st->binds(u))
      if (!b.empty() && b[0] != '_' && st->pending.count(b)) wanted = true;
    if (wanted && (st->settled ? runtime::materialize_with_closure(*st, (int)i)
                               : runtime::materialize(*st, (int)i)) < 0) {
      if (!keep_going || !PyErr_ExceptionMatches(PyExc_Exception)) return nullptr;
      PyErr_Clear();
    }
  }
  Py_RETURN_NONE;
}

PyObject* module_stats(PyObject*, PyObject* globals) {
  runtime::ModuleState* st = state_arg(globals);
  if (!st) return nullptr;
  long deferred = 0, pending_units = 0;
  for (const auto& u : st->units)
    if (u.code) {
      deferred++;
      if (u.state == runtime::UnitRecord::Pending) pending_units++;
    }
  return Py_BuildValue("{s:s,s:n,s:l,s:l,s:l,s:l,s:d,s:O,s:s,s:l,s:l,s:O}", "module", st->module.c_str(), "units",
                       (Py_ssize_t)st->units.size(), "deferred", deferred, "materialized", st->materialized,
                       "pending", pending_units, "failures", st->failures, "seconds", st->seconds, "settled",
                       st->settled ? Py_True : Py_False, "settle_reason", st->settle_reason.c_str(),
                       "settle_forced", st->settle_forced, "lookups", st->lookups, "used_nearly_whole",
                       runtime::used_nearly_whole(*st) ? Py_True : Py_False);
}

PyObject* is_trapping(PyObject*, PyObject* globals) {
  return PyBool_FromLong(Py_TYPE(globals) == runtime::lazy_globals_type());
}

// set_frontier(globals, n[, code]): while the module's top level runs, units
// with id >= n are not bound yet and stay invisible (-1: import finished);
// `code`, the run step about to run (held until the next call), narrows
// that to its running statement.
PyObject* set_frontier(PyObject*, PyObject* args) {
  PyObject* globals;
  int n;
  PyObject* code = nullptr;
  if (!PyArg_ParseTuple(args, "Oi|O", &globals, &n, &code)) return nullptr;
  runtime::ModuleState* st = state_arg(globals);
  if (!st) return nullptr;
  st->frontier = n < 0 ? INT_MAX : n;
  st->segment = code && PyCode_Check(code) && n >= 0 ? py::Ref::borrow(code) : py::Ref();
  Py_RETURN_NONE;
}

// set_own_views(globals, ids): the plan's "own_views" step (module_state.h).
PyObject* set_own_views(PyObject*, PyObject* args) {
  PyObject *globals, *ids;
  if (!PyArg_ParseTuple(args, "OO", &globals, &ids)) return nullptr;
  runtime::ModuleState* st = state_arg(globals);
  if (!st) return nullptr;
  Ref fast = Ref::steal(PySequence_Fast(ids, "own_views: a sequence of unit ids"));
  if (!fast) return nullptr;
  std::vector<int> out;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast.get()); ++i) {
    long id = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast.get(), i));
    if (id == -1 && PyErr_Occurred()) return nullptr;
    if (id < 0 || id >= (long)st->units.size()) {
      PyErr_SetString(PyExc_ValueError, "own_views: unit id out of range");
      return nullptr;
    }
    out.push_back((int)id);
  }
  st->own_views = std::move(out);
  Py_RETURN_NONE;
}

// last_key(globals): a mark taken before an eager part of the top level runs.
PyObject* last_key(PyObject*, PyObject* globals) {
  if (!PyDict_Check(globals)) {
    PyErr_SetString(PyExc_TypeError, "last_key expects a dict");
    return nullptr;
  }
  return runtime::last_key(globals).release();
}

// supersede(globals, mark, first_later): after an eager part of the top level
// ran, names it bound as a side effect that a later pending unit binds are
// unbound again (see runtime/module_state.h).
PyObject* supersede(PyObject*, PyObject* args) {
  PyObject *globals, *mark;
  int first_later;
  if (!PyArg_ParseTuple(args, "OOi", &globals, &mark, &first_later)) return nullptr;
  runtime::ModuleState* st = state_arg(globals);
  if (!st) return nullptr;
  if (runtime::supersede(*st, mark, first_later) < 0) return nullptr;
  Py_RETURN_NONE;
}

// The runtime's Python callbacks: a callable, or None to unset.
template <void (*Set)(PyObject*)>
PyObject* set_callback(PyObject*, PyObject* fn) {
  if (fn != Py_None && !PyCallable_Check(fn)) {
    PyErr_SetString(PyExc_TypeError, "expected a callable or None");
    return nullptr;
  }
  Set(fn == Py_None ? nullptr : fn);
  Py_RETURN_NONE;
}

// has_pending(globals): whether any unit can still be published (cheaper
// than pending(), which lists and sorts the names).
PyObject* has_pending(PyObject*, PyObject* globals) {
  runtime::ModuleState* st = PyDict_Check(globals) ? runtime::state_of(globals) : nullptr;
  return PyBool_FromLong(st && !st->pending.empty());
}

// `lazyexec why`: record which units each thread is materializing.
PyObject* set_recording(PyObject*, PyObject* on) {
  int flag = PyObject_IsTrue(on);
  if (flag < 0) return nullptr;
  runtime::set_recording(flag != 0);
  Py_RETURN_NONE;
}

PyObject* materializing(PyObject*, PyObject*) { return runtime::materializing(); }

// materialize_mentioning(name) -> how many pending units mentioning `name` ran.
PyObject* materialize_mentioning(PyObject*, PyObject* name) {
  if (!PyUnicode_Check(name)) {
    PyErr_SetString(PyExc_TypeError, "materialize_mentioning expects a str");
    return nullptr;
  }
  return PyLong_FromLong(runtime::materialize_mentioning(py::utf8(name)));
}

PyObject* install_dynamic_eval(PyObject*, PyObject*) {
  if (runtime::install_dynamic_eval() < 0) return nullptr;
  Py_RETURN_NONE;
}

// The artifact header's expected fields, from Python arguments.
bool expected_from(PyObject* args, Py_ssize_t first, importer::Expected* out) {
  unsigned long long mtime, size;
  const char *key, *pymagic;
  Py_ssize_t key_len, magic_len;
  int format;
  PyObject* rest = PyTuple_GetSlice(args, first, PyTuple_GET_SIZE(args));
  if (!rest) return false;
  Ref hold = Ref::steal(rest);
  if (!PyArg_ParseTuple(rest, "KKy#y#i", &mtime, &size, &key, &key_len, &pymagic, &magic_len, &format)) return false;
  if (key_len != 16 || magic_len != 4) {
    PyErr_SetString(PyExc_ValueError, "key must be 16 bytes and pymagic 4");
    return false;
  }
  *out = {(uint16_t)format, std::string_view(pymagic, 4), mtime, size, std::string_view(key, 16)};
  return true;
}

// decode_plan(data, mtime_ns, size, key, pymagic, format) -> (units, steps) |
// None (stale); ValueError("corrupt: ...") when damaged.
PyObject* decode_plan(PyObject*, PyObject* args) {
  if (PyTuple_GET_SIZE(args) != 6) {
    PyErr_SetString(PyExc_TypeError, "decode_plan takes 6 arguments");
    return nullptr;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(PyTuple_GET_ITEM(args, 0), &view, PyBUF_SIMPLE) < 0) return nullptr;
  importer::Expected want;
  try {
    if (!expected_from(args, 1, &want)) {
      PyBuffer_Release(&view);
      return nullptr;
    }
    auto d = importer::decode(std::string_view((const char*)view.buf, (size_t)view.len), want);
    PyBuffer_Release(&view);
    if (d.verdict == importer::Verdict::Corrupt) {
      PyErr_Format(PyExc_ValueError, "%s", d.problem);
      return nullptr;
    }
    if (d.verdict == importer::Verdict::Stale) Py_RETURN_NONE;
    return d.plan.release();
  } catch (const py::PyError&) {
    PyBuffer_Release(&view);
    return nullptr;
  }
}

// An artifact's bytes, read into this thread's reused buffer: a fresh string
// per artifact zero-filled its whole size before the read. Unmarshalling may
// run Python code (a collection's finalizer importing a module reads another
// artifact), so a nested read while the buffer is in use gets a string of its
// own instead.
class ArtifactBytes {
 public:
  explicit ArtifactBytes(const char* path) {
    thread_local std::string buffer;
    thread_local bool in_use = false;
    if (!in_use) {
      in_use_ = &in_use;
      in_use = true;
      if (auto n = importer::read_file_into(path, buffer)) view_ = std::string_view(buffer.data(), *n);
    } else if (auto data = importer::read_file(path)) {
      own_ = std::move(*data);
      view_ = own_;
    }
  }
  ~ArtifactBytes() {
    if (in_use_) *in_use_ = false;
  }
  ArtifactBytes(const ArtifactBytes&) = delete;
  ArtifactBytes& operator=(const ArtifactBytes&) = delete;
  const std::optional<std::string_view>& view() const { return view_; }

 private:
  bool* in_use_ = nullptr;
  std::string own_;
  std::optional<std::string_view> view_;
};

// read_plan(paths, mtime_ns, size, key, pymagic, format) -> (plan | None,
// [(path, problem)]): the first valid artifact among `paths`, one read each.
PyObject* read_plan(PyObject*, PyObject* args) {
  if (PyTuple_GET_SIZE(args) != 6 || !PyTuple_Check(PyTuple_GET_ITEM(args, 0))) {
    PyErr_SetString(PyExc_TypeError, "read_plan(paths: tuple, mtime_ns, size, key, pymagic, format)");
    return nullptr;
  }
  importer::Expected want;
  if (!expected_from(args, 1, &want)) return nullptr;
  try {
    PyObject* paths = PyTuple_GET_ITEM(args, 0);
    Ref problems = py::check(PyList_New(0));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(paths); ++i) {
      PyObject* path = PyTuple_GET_ITEM(paths, i);
      std::string p = py::utf8(path);
      ArtifactBytes data(p.c_str());
      if (!data.view()) continue;
      auto d = importer::decode(*data.view(), want);
      if (d.verdict == importer::Verdict::Plan) return Py_BuildValue("(OO)", d.plan.get(), problems.get());
      if (d.verdict == importer::Verdict::Corrupt) {
        Ref item = py::check(Py_BuildValue("(Os)", path, d.problem));
        if (PyList_Append(problems.get(), item.get()) < 0) throw py::PyError{};
      }
    }
    return Py_BuildValue("(OO)", Py_None, problems.get());
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// load_plan(source_path, key, pymagic, format, cache_dir, bytecode_off) ->
// (mtime_ns, size, plan | None, [(path, problem)]), or None when the source
// cannot be stat'ed: store.load() for the import hook in one call. The
// locations are store.locations()'s: beside the .pyc (importlib's own
// cache_from_source, so PYTHONPYCACHEPREFIX and -O count) and in the cache
// directory, in the order byte-code writing decides.
PyObject* load_plan(PyObject*, PyObject* args) {
  PyObject *source, *cache_dir_obj;
  const char *key, *pymagic;
  Py_ssize_t key_len, magic_len;
  int format, bytecode_off;
  if (!PyArg_ParseTuple(args, "Uy#y#iUp", &source, &key, &key_len, &pymagic, &magic_len, &format, &cache_dir_obj,
                        &bytecode_off))
    return nullptr;
  if (key_len != 16 || magic_len != 4) {
    PyErr_SetString(PyExc_ValueError, "key must be 16 bytes and pymagic 4");
    return nullptr;
  }
  try {
    std::string path = py::utf8(source);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) Py_RETURN_NONE;
    unsigned long long mtime_ns = (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + st.st_mtim.tv_nsec;
    importer::Expected want{(uint16_t)format, std::string_view(pymagic, 4), mtime_ns, (unsigned long long)st.st_size,
                            std::string_view(key, 16)};
    Ref problems = py::check(PyList_New(0));
    Ref plan = Ref::borrow(Py_None);
    std::string cache_dir = py::utf8(cache_dir_obj);
    for (int i = 0; i < 2; ++i) {
      std::string p = importer::artifact_location(i, source, std::string_view(key, 16), cache_dir, bytecode_off);
      ArtifactBytes data(p.c_str());
      if (!data.view()) continue;
      auto d = importer::decode(*data.view(), want);
      if (d.verdict == importer::Verdict::Plan) {
        plan = d.plan;
        break;
      }
      if (d.verdict == importer::Verdict::Corrupt) {
        Ref item = py::check(Py_BuildValue("(ss)", p.c_str(), d.problem));
        if (PyList_Append(problems.get(), item.get()) < 0) throw py::PyError{};
      }
    }
    return Py_BuildValue("(KKOO)", mtime_ns, (unsigned long long)st.st_size, plan.get(), problems.get());
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// cache_from_source(path) -> the .pyc path as importlib names it (tests
// compare the two).
PyObject* cache_from_source(PyObject*, PyObject* path) {
  if (!PyUnicode_Check(path)) {
    PyErr_SetString(PyExc_TypeError, "cache_from_source(path: str)");
    return nullptr;
  }
  try {
    PyObject* impl = PySys_GetObject("implementation");
    if (impl == nullptr) {
      PyErr_SetString(PyExc_RuntimeError, "no sys.implementation");
      return nullptr;
    }
    Ref tag = py::check(PyObject_GetAttrString(impl, "cache_tag"));
    std::string pyc = importer::cache_from_source(path, tag.get());
    return PyUnicode_DecodeUTF8(pyc.data(), (Py_ssize_t)pyc.size(), "surrogateescape");
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// toml_loads(data: bytes) -> the document, or None where activation's
// reader leaves the file to tomllib (tests compare the two).
PyObject* toml_loads(PyObject*, PyObject* data) {
  if (!PyBytes_Check(data)) {
    PyErr_SetString(PyExc_TypeError, "toml_loads(data: bytes)");
    return nullptr;
  }
  try {
    Ref doc = importer::parse_toml(std::string_view(PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data)));
    return doc ? doc.release() : Py_NewRef(Py_None);
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// fingerprint(data) -> 16 hex digits (FNV-1a, 64 bits): cache keys and file
// names on the start-up path without loading zlib or hashlib.
PyObject* fingerprint(PyObject*, PyObject* data) {
  Py_buffer view;
  Ref encoded;
  if (PyUnicode_Check(data)) {
    encoded = Ref::steal(PyUnicode_AsUTF8String(data));
    if (!encoded) return nullptr;
    data = encoded.get();
  }
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return nullptr;
  std::string digits = importer::fingerprint(std::string_view(static_cast<const char*>(view.buf), (size_t)view.len));
  PyBuffer_Release(&view);
  return PyUnicode_FromStringAndSize(digits.data(), 16);
}

// lock_held(path) -> whether another process holds an flock on the file
// (created if missing): the builder's lock, checked at exit without
// importing fcntl, which a program's own directory could shadow.
PyObject* lock_held(PyObject*, PyObject* args) {
  const char* path;
  if (!PyArg_ParseTuple(args, "s", &path)) return nullptr;
  return PyBool_FromLong(importer::lock_held(path));
}

PyObject* has_marker(PyObject*, PyObject* source) {
  Py_buffer view;
  if (PyObject_GetBuffer(source, &view, PyBUF_SIMPLE) < 0) return nullptr;
  bool found = importer::has_marker(std::string_view((const char*)view.buf, (size_t)view.len));
  PyBuffer_Release(&view);
  return PyBool_FromLong(found);
}

PyObject* set_busy(PyObject*, PyObject* flag) {
  int on = PyObject_IsTrue(flag);
  if (on < 0) return nullptr;
  // The finder activation installed may be the start-up extension's.
  if (PyObject* boot_module = PyDict_GetItemString(PyImport_GetModuleDict(), "lazyexec._lazyexec_boot")) {
    Ref r = Ref::steal(PyObject_CallMethod(boot_module, "set_busy", "O", flag));
    if (!r) return nullptr;
  }
  return PyBool_FromLong(importer::set_busy(on != 0));
}

PyObject* glob_match(PyObject*, PyObject* args) {
  const char *pattern, *text;
  if (!PyArg_ParseTuple(args, "ss", &pattern, &text)) return nullptr;
  return PyBool_FromLong(analyze::glob_match(pattern, text));
}

PyObject* never_lazy_entries(PyObject*, PyObject* data) {
  if (!PyBytes_Check(data)) {
    PyErr_SetString(PyExc_TypeError, "never_lazy_entries(toml: bytes)");
    return nullptr;
  }
  auto entries = analyze::never_lazy_entries(std::string_view(PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data)));
  if (!entries) Py_RETURN_NONE;
  PyObject* out = PyList_New((Py_ssize_t)entries->size());
  for (size_t i = 0; out != nullptr && i < entries->size(); ++i) {
    PyObject* item = PyUnicode_FromStringAndSize((*entries)[i].data(), (Py_ssize_t)(*entries)[i].size());
    if (item == nullptr) Py_CLEAR(out);
    else PyList_SET_ITEM(out, (Py_ssize_t)i, item);
  }
  return out;
}

PyObject* reason_codes(PyObject*, PyObject*) {
  try {
    Ref l = py::check(PyList_New(0));
    for (int c = 0; c <= static_cast<int>(analyze::Code::OptedOut); ++c) {
      auto code = static_cast<analyze::Code>(c);
      Ref item = py::check(Py_BuildValue("(s s s)", std::string(analyze::short_code(code)).c_str(),
                                          analyze::is_lazy(code) ? "lazy" : "eager",
                                          std::string(analyze::sentence(code)).c_str()));
      if (PyList_Append(l.get(), item.get()) < 0) throw py::PyError{};
    }
    return l.release();
  } catch (const py::PyError&) {
    return nullptr;
  }
}

// The image's types (Image, ImageFinder, ImageError and its functions) are
// made on first use: most processes that load this extension never open an
// image, and readying the types is a good part of loading it.
bool image_types_added = false;

PyObject* module_getattr(PyObject* module, PyObject* name) {
  if (!image_types_added) {
    image_types_added = true;
    if (image::add_image_types(module) < 0) return nullptr;
    if (PyObject* found = PyDict_GetItemWithError(PyModule_GetDict(module), name)) return Py_NewRef(found);
    if (PyErr_Occurred()) return nullptr;
  }
  PyErr_Format(PyExc_AttributeError, "module 'lazyexec._lazyexec' has no attribute %R", name);
  return nullptr;
}

PyObject* unit_value(PyObject*, PyObject* code) {
  PyObject* value = nullptr;
  switch (compile::classify_unit_code(code, &value)) {
    case compile::UnitValue::Constant:
      return Py_BuildValue("(sO)", "constant", value);
    case compile::UnitValue::Display:
      return Py_BuildValue("(sO)", "display", Py_None);
    case compile::UnitValue::Function:
      return Py_BuildValue("(sO)", "function", value);
    case compile::UnitValue::Class:
      return Py_BuildValue("(sN)", "class", value);  // (body code, name, (base names)), a new reference
    default:
      return Py_BuildValue("(sO)", "code", Py_None);
  }
}

PyMethodDef methods[] = {
    {"unit_value", unit_value, METH_O,
     "unit_value(code) -> ('constant', value) | ('display', None) | ('function', code) | ('code', None): what a "
     "unit's code binds."},
    {"__getattr__", module_getattr, METH_O, "Makes the image's types on first use."},
    {"compile", (PyCFunction)(void (*)(void))compile_source, METH_VARARGS | METH_KEYWORDS,
     "compile(source, filename, knowledge, module=None, is_package=False) -> dict with code and steps."},
    {"install", install, METH_VARARGS, "install(globals, units, module, settle_threshold, filename, module_obj): make globals a trapping namespace."},
    {"settle", settle, METH_VARARGS, "settle(globals, reason=...) -> whether the namespace is now an exact dict."},
    {"force", force, METH_VARARGS, "force(globals, ids): materialize these units (stable-inputs plan)."},
    {"resolve", resolve, METH_VARARGS, "resolve(globals, id, values): unit id is done without running, binding values."},
    {"lookup", lookup, METH_VARARGS, "lookup(globals, name) -> (found, value), materializing a pending name."},
    {"pending", pending, METH_O, "pending(globals) -> sorted pending names."},
    {"has_pending", has_pending, METH_O, "has_pending(globals) -> whether any unit is pending."},
    {"set_imports", set_imports, METH_VARARGS,
     "set_imports(globals, specs): the modules each deferred import unit imports (the plan's bind_loaded specs)."},
    {"materialize_all", materialize_all, METH_VARARGS, "materialize_all(globals, public_only=False, keep_going=False)."},
    {"module_stats", module_stats, METH_O, "module_stats(globals) -> dict."},
    {"set_own_views", set_own_views, METH_VARARGS, "set_own_views(globals, ids): units whose own namespace views run nothing."},
    {"set_frontier", set_frontier, METH_VARARGS, "set_frontier(globals, n[, code]): units >= n are not defined yet (-1: all); code: the run step running."},
    {"last_key", last_key, METH_O, "last_key(globals): the newest key, a mark for supersede()."},
    {"supersede", supersede, METH_VARARGS,
     "supersede(globals, mark, first_later): unbind side-effect bindings of names later pending units bind."},
    {"set_import_waits", set_callback<runtime::set_import_waits>, METH_O, "set_import_waits(fn): fn() -> {tid: [owner tids]} of importlib lock waits."},
    {"set_settled_hook", set_callback<runtime::set_settled_hook>, METH_O,
     "set_settled_hook(fn): fn(module, hot) runs when a module settles and when a settled module becomes complete."},
    {"materialize_mentioning", materialize_mentioning, METH_O,
     "materialize_mentioning(name) -> how many pending units whose code mentions name ran (all lazy modules)."},
    {"set_recording", set_recording, METH_O, "set_recording(on): keep the units each thread is materializing (lazyexec why)."},
    {"materializing", materializing, METH_NOARGS,
     "materializing() -> [(code, module, filename, where, trigger)] of this thread, innermost last."},
    {"install_dynamic_eval", install_dynamic_eval, METH_NOARGS,
     "install_dynamic_eval(): exec()/eval() in a lazy module's namespace with separate locals run the pending "
     "units binding the names the code mentions first."},
    {"decode_plan", decode_plan, METH_VARARGS,
     "decode_plan(data, mtime_ns, size, key, pymagic, format) -> (units, steps) | None (stale); ValueError when damaged."},
    {"read_plan", read_plan, METH_VARARGS,
     "read_plan(paths, mtime_ns, size, key, pymagic, format) -> (plan | None, [(path, problem)])."},
    {"load_plan", load_plan, METH_VARARGS,
     "load_plan(source_path, key, pymagic, format, cache_dir, bytecode_off) -> (mtime_ns, size, plan | None, "
     "[(path, problem)]) | None: the import hook's artifact lookup in one call."},
    {"boot", (PyCFunction)(void (*)(void))importer::boot, METH_FASTCALL,
     "boot([program, args[, image]]) -> the Finder, activated from C++ with the Python layer's caches; None: call "
     "lazyexec.activate()."},
    {"warm_start", importer::warm_start, METH_VARARGS,
     "warm_start(key, cache_dir, threshold, settle_now, inline, profile, known, complete): settings from "
     "_lazyexec_boot.boot()."},
    {"warm_loader", (PyCFunction)(void (*)(void))importer::make_warm_loader, METH_FASTCALL,
     "warm_loader(fullname, path): lazyexec's C++ loader for a module (the booted finder's factory)."},
    {"boot_state", importer::boot_state, METH_NOARGS,
     "boot_state() -> what boot() read (finder, configuration table and file, usage profile), or None."},
    {"cache_from_source", cache_from_source, METH_O,
     "cache_from_source(path) -> importlib.util.cache_from_source(path), as the artifact reader computes it."},
    {"toml_loads", toml_loads, METH_O,
     "toml_loads(data: bytes) -> tomllib.loads(data.decode()), or None where activation's reader declines."},
    {"fingerprint", fingerprint, METH_O, "fingerprint(data: bytes | str) -> 16 hex digits (FNV-1a 64)."},
    {"lock_held", lock_held, METH_VARARGS, "lock_held(path) -> whether another process holds an flock on it."},
    {"has_marker", has_marker, METH_O, "has_marker(source: bytes) -> whether a top-level `__lazy_module__ = True` is there."},
    {"set_busy", set_busy, METH_O, "set_busy(flag) -> previous: this thread's imports bypass lazyexec's finder."},
    {"never_lazy_entries", never_lazy_entries, METH_O,
     "never_lazy_entries(toml: bytes) -> knowledge.toml's top-level never_lazy list read without a TOML parser, or None."},
    {"glob_match", glob_match, METH_VARARGS, "glob_match(pattern, text): '*' and '?' wildcards, as the knowledge base uses."},
    {"is_trapping", is_trapping, METH_O, "is_trapping(d) -> whether d is a trapping namespace."},
    {"reason_codes", reason_codes, METH_NOARGS,
     "reason_codes() -> [(code, verdict, sentence)]: every reason the analyzer can give."},
    {"knowledge", (PyCFunction)(void (*)(void))knowledge, METH_VARARGS | METH_KEYWORDS,
     "knowledge(pure=(), pure_bases=(), pure_metaclasses=(), never_lazy=(), impure={}, imports_only=False, effect_free=(), safe_bases=(), effects={}, eager_imports_in={}, namespace_copy_decorators=(), abc_registries=(), aliases={}, subclass_listers=(), not_factories=())\n"
     "Build a knowledge base for analyze()."},
    {"analyze", (PyCFunction)(void (*)(void))analyze_source, METH_VARARGS | METH_KEYWORDS,
     "analyze(source, filename, knowledge, module=None, is_package=False) -> dict\n"
     "Split a module into units and decide each one (see docs/explain-json.md)."},
    {nullptr, nullptr, 0, nullptr},
};

#if defined(__linux__)
// Defined by rodata_first.ld when the warm code and the read-only data are
// the front of the file; null otherwise.
extern "C" __attribute__((weak, visibility("hidden"))) const char lazyexec_warm_end[];
#endif

// Splits the extension's code mapping after its warm front (hot_text.ld,
// rodata_first.ld). A freshly installed library sits in the page cache as
// large folios (pip writes it in pieces of up to 1 MiB), and Linux maps a
// whole large folio on a fault when the folio fits one mapping: one warm page
// brought in up to 1 MiB of code no start runs (docs/startup.md, peak RSS).
// With the rest in a mapping of its own, the front folio no longer fits, and
// only the pages around those touched are mapped; the cold pages the loader's
// own first faults mapped are let go (read again from the page cache if ever
// run). Two madvise() calls per load of the full extension; a failure leaves
// the mapping as it was.
void keep_cold_code_apart() {
#if defined(__linux__)
  if (lazyexec_warm_end == nullptr) return;
  struct Segment {
    uintptr_t inside, end = 0;
  } code{reinterpret_cast<uintptr_t>(lazyexec_warm_end)};
  dl_iterate_phdr(
      [](dl_phdr_info* object, size_t, void* data) {
        auto* code = static_cast<Segment*>(data);
        for (int i = 0; i < object->dlpi_phnum; ++i) {
          const auto& segment = object->dlpi_phdr[i];
          uintptr_t start = object->dlpi_addr + segment.p_vaddr;
          if (segment.p_type == PT_LOAD && start <= code->inside && code->inside < start + segment.p_memsz) {
            code->end = start + segment.p_memsz;
            return 1;
          }
        }
        return 0;
      },
      &code);
  uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t from = (code.inside + page - 1) & ~(page - 1);
  uintptr_t to = (code.end + page - 1) & ~(page - 1);
  if (code.end == 0 || from >= to) return;
  // MADV_NOHUGEPAGE: a flag that changes nothing else for file-backed code
  // and gives the range its own mapping. MADV_DONTNEED on unmodified file
  // pages only unmaps them.
  void* cold = reinterpret_cast<void*>(from);
  if (madvise(cold, to - from, MADV_NOHUGEPAGE) == 0) madvise(cold, to - from, MADV_DONTNEED);
#endif
}

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_lazyexec", "lazyexec's C++ core.", -1, methods,
                          nullptr, nullptr, nullptr, nullptr};

}  // namespace
}  // namespace lazyexec

PyMODINIT_FUNC PyInit__lazyexec(void) {
  lazyexec::keep_cold_code_apart();
  PyObject* m = PyModule_Create(&lazyexec::module_def);
  if (m && lazyexec::importer::add_finder_type(m) < 0) Py_CLEAR(m);
  if (m && lazyexec::runtime::add_module_hook_types(m) < 0) Py_CLEAR(m);
  if (m && lazyexec::importer::add_loader_functions(m) < 0) Py_CLEAR(m);
  if (m && lazyexec::runtime::add_loggers_functions(m) < 0) Py_CLEAR(m);
  if (m && lazyexec::runtime::add_patterns_functions(m) < 0) Py_CLEAR(m);
  return m;
}
