// Compiled regular expressions kept across starts (docs/startup.md, "The
// pattern cache"). Programs compile the same regular expressions at every
// start, and the regex compiler is Python (re._parser, re._compiler): 0.3-2 M
// instructions a pattern, about a tenth of `flake8 --version` lazily. Its
// result is a pure function of the pattern, the flags and the interpreter, so
// lazyexec keeps, per program beside its usage profile, what the compiler
// produced for each pattern the program compiled (the flags, the code list,
// the groups) and builds the same Pattern from it with `_sre.compile`, as the
// compiler's own last line does. The table is written off the start-up path
// by the builder (store/patterns.py), which compiles each pattern again,
// keeps only those that compile without a warning and whose rebuilt Pattern
// equals the compiler's, and stamps the table with `sys.version`.
//
// The patch point is `compile` of re._compiler (sre_compile on 3.10), set
// once that module has run: a callable that answers from the table and else
// calls the compiler's own function (no frame of its own, so a bad pattern's
// traceback is the one an eager run prints). A pattern compiled with
// re.DEBUG, a pattern that is not a str or bytes, and keyword calls go to the
// compiler as they are.
#include "runtime/patterns.h"

#include <marshal.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "image/blob_hash.h"
#include "importer/cold_start.h"
#include "importer/file.h"
#include "py/handle.h"
#include "runtime/after_exec.h"

namespace lazyexec::runtime {
namespace {

using py::Ref;

constexpr long kDebugFlag = 128;        // SRE_FLAG_DEBUG, the same on 3.10-3.13
constexpr Py_ssize_t kMaxMisses = 4096;  // a program compiling patterns from its input stops being recorded

// Kept for the process (plain pointers: nothing is freed after the
// interpreter is gone).
std::string table_path;           // profiles/<program>.patterns; empty: no cache
// {(is bytes, flags, pattern): (flags, code, groups, groupindex, indexgroup) or None
// for a pattern compiled every time (it warns)}
PyObject* table = nullptr;
bool table_read = false;
PyObject* misses = nullptr;       // [(is bytes, flags, pattern)] the compiler compiled this run
PyObject* missed = nullptr;       // the same, as a set
PyObject* sre_compile = nullptr;  // _sre.compile
long hits = 0;

const char* compiler_module() { return PY_VERSION_HEX >= 0x030B0000 ? "re._compiler" : "sre_compile"; }

void warn(const std::string& message) {
  // Never the program's exception: under -W error the warning is dropped.
  if (PyErr_WarnEx(PyExc_RuntimeWarning, message.c_str(), 1) < 0) PyErr_Clear();
}

// The table, read at the first compile: missing is empty; damaged or of
// another interpreter is empty with one warning (the builder rewrites it).
void read_table() {
  table_read = true;
  auto data = importer::read_file(table_path.c_str());
  if (!data) return;
  // The check first (store/patterns.py pack()): a flipped bit in a code list
  // can still compile, into a pattern that matches other text.
  PyObject* obj = nullptr;
  if (data->size() >= 8) {
    uint64_t check = 0;  // little endian
    for (int i = 7; i >= 0; --i) check = (check << 8) | (unsigned char)(*data)[(size_t)i];
    if (image::blob_hash(std::string_view(*data).substr(8)) == check)
      obj = PyMarshal_ReadObjectFromString(data->data() + 8, (Py_ssize_t)data->size() - 8);
  }
  if (obj == nullptr) {
    PyErr_Clear();
    // Version 1 had no check and began with marshal's dict code ('{', with
    // or without FLAG_REF): an older lazyexec's table, rebuilt quietly.
    if (!data->empty() && ((unsigned char)(*data)[0] & 0x7f) == '{') return;
  }
  Ref contents = Ref::steal(obj);
  PyObject* version = contents && PyDict_Check(contents.get()) ? PyDict_GetItemString(contents.get(), "version") : nullptr;
  PyObject* python = contents && PyDict_Check(contents.get()) ? PyDict_GetItemString(contents.get(), "python") : nullptr;
  PyObject* patterns = contents && PyDict_Check(contents.get()) ? PyDict_GetItemString(contents.get(), "patterns") : nullptr;
  if (version == nullptr || !PyLong_CheckExact(version) || PyLong_AsLong(version) != 2 || python == nullptr ||
      !PyUnicode_Check(python) || patterns == nullptr || !PyDict_CheckExact(patterns)) {
    PyErr_Clear();
    warn("lazyexec: ignoring damaged pattern cache " + table_path + "; it is rewritten");
    return;
  }
  if (PyUnicode_CompareWithASCIIString(python, Py_GetVersion()) != 0) return;  // another interpreter's: rebuilt
  table = Py_NewRef(patterns);
}

// The Pattern the compiler would return, from a table entry; null without
// an exception when the entry is not usable (the compiler compiles).
PyObject* from_entry(PyObject* pattern, PyObject* entry) {
  if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 5) return nullptr;
  PyObject* flags = PyTuple_GET_ITEM(entry, 0);
  PyObject* code_bytes = PyTuple_GET_ITEM(entry, 1);
  PyObject* groups = PyTuple_GET_ITEM(entry, 2);
  PyObject* groupindex = PyTuple_GET_ITEM(entry, 3);
  PyObject* indexgroup = PyTuple_GET_ITEM(entry, 4);
  if (!PyLong_CheckExact(flags) || !PyBytes_CheckExact(code_bytes) || PyBytes_GET_SIZE(code_bytes) % 4 != 0 ||
      !PyLong_CheckExact(groups) || !PyDict_CheckExact(groupindex) || !PyTuple_CheckExact(indexgroup))
    return nullptr;
  if (sre_compile == nullptr) {
    Ref sre = Ref::steal(PyImport_ImportModule("_sre"));
    if (!sre) return nullptr;
    sre_compile = PyObject_GetAttrString(sre.get(), "compile");
    if (sre_compile == nullptr) return nullptr;
  }
  Py_ssize_t n = PyBytes_GET_SIZE(code_bytes) / 4;
  const char* raw = PyBytes_AS_STRING(code_bytes);
  Ref code = Ref::steal(PyList_New(n));
  if (!code) return nullptr;
  for (Py_ssize_t i = 0; i < n; ++i) {
    uint32_t word;
    std::memcpy(&word, raw + 4 * i, 4);
    PyObject* item = PyLong_FromUnsignedLong(word);
    if (item == nullptr) return nullptr;
    PyList_SET_ITEM(code.get(), i, item);
  }
  // The compiler hands _sre a dict of its own each time (Pattern.groupindex
  // is a view of it).
  Ref index = Ref::steal(PyDict_Copy(groupindex));
  if (!index) return nullptr;
  PyObject* args[] = {pattern, flags, code.get(), groups, index.get(), indexgroup};
  return PyObject_Vectorcall(sre_compile, args, 6, nullptr);
}

PyObject* queue_at_exit(PyObject*, PyObject*);
PyMethodDef queue_at_exit_def = {"queue_patterns", queue_at_exit, METH_NOARGS,
                                 "lazyexec: the patterns compiled this run, queued for the builder at exit."};

void record(PyObject* key) {
  if (misses == nullptr) {
    misses = PyList_New(0);
    missed = PySet_New(nullptr);
    if (misses == nullptr || missed == nullptr) return;
    Ref atexit = Ref::steal(PyImport_ImportModule("atexit"));
    Ref fn = Ref::steal(PyCFunction_New(&queue_at_exit_def, nullptr));
    if (!atexit || !fn) return;
    Ref r = Ref::steal(PyObject_CallMethod(atexit.get(), "register", "O", fn.get()));
    if (!r) return;
  }
  if (PyList_GET_SIZE(misses) >= kMaxMisses) return;
  int known = PySet_Contains(missed, key);
  if (known != 0) return;
  if (PySet_Add(missed, key) == 0) PyList_Append(misses, key);
}

// At exit: the patterns the compiler compiled, queued for the builder.
// Nothing here may disturb the program's end.
PyObject* queue_at_exit(PyObject*, PyObject*) {
  if (misses == nullptr || PyList_GET_SIZE(misses) == 0 || importer::builds_off()) Py_RETURN_NONE;
  Ref job = Ref::steal(Py_BuildValue("{sisssssO}", "version", 3, "python", Py_GetVersion(), "patterns_file",
                                     table_path.c_str(), "patterns", misses));
  if (job) {
    // profiles/<program>.patterns: the cache directory is profiles' parent.
    try {
      importer::queue_for_builder(job.get(), importer::dirname(importer::dirname(table_path)));
    } catch (const py::PyError&) {
    }
  }
  PyErr_Clear();
  Py_RETURN_NONE;
}

// The compiler's `compile`, answered from the table when it can be.
struct CompileObject {
  PyObject_HEAD
  PyObject* wrapped;
  PyObject* dict;
  vectorcallfunc vectorcall;
};

PyObject* compile_vectorcall(PyObject* self, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  auto* c = (CompileObject*)self;
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (kwnames == nullptr && (nargs == 1 || nargs == 2) && (PyUnicode_CheckExact(args[0]) || PyBytes_CheckExact(args[0])) &&
      (nargs == 1 || PyLong_CheckExact(args[1]))) {
    int overflow = 0;
    long flags = nargs == 2 ? PyLong_AsLongAndOverflow(args[1], &overflow) : 0;
    if (!overflow && flags >= 0 && !(flags & kDebugFlag)) {
      Ref flags_obj = nargs == 2 ? Ref::borrow(args[1]) : Ref::steal(PyLong_FromLong(0));
      // (is bytes, flags, pattern): the kind first, so that a str and a
      // bytes pattern of equal hash are never compared (a BytesWarning
      // under -b, an error under -bb; re's own cache keys on the type too).
      PyObject* is_bytes = PyBytes_CheckExact(args[0]) ? Py_True : Py_False;
      Ref key = flags_obj ? Ref::steal(PyTuple_Pack(3, is_bytes, flags_obj.get(), args[0])) : Ref();
      if (!key) return nullptr;
      if (!table_read) read_table();
      if (table != nullptr) {
        PyObject* entry = PyDict_GetItemWithError(table, key.get());
        if (entry == Py_None) return PyObject_Vectorcall(c->wrapped, args, nargsf, kwnames);  // kept compiling
        if (entry != nullptr) {
          Ref keep = Ref::borrow(entry);
          if (PyObject* p = from_entry(args[0], entry)) {
            ++hits;
            return p;
          }
        }
        PyErr_Clear();  // an unusable entry: compiled, and rewritten by the builder
      }
      PyObject* r = PyObject_Vectorcall(c->wrapped, args, nargsf, kwnames);
      if (r != nullptr) {
        record(key.get());
        if (PyErr_Occurred()) PyErr_Clear();
      }
      return r;
    }
  }
  return PyObject_Vectorcall(c->wrapped, args, nargsf, kwnames);
}

// As a function is seen: the wrapped function's name, qualname, doc and
// module, and __wrapped__ (inspect.signature follows it).
PyObject* compile_getattro(PyObject* self, PyObject* name) {
  auto* c = (CompileObject*)self;
  if (PyUnicode_Check(name)) {
    for (const char* forwarded : {"__name__", "__qualname__", "__doc__", "__module__", "__defaults__", "__code__",
                                  "__globals__", "__kwdefaults__", "__annotations__"})
      if (PyUnicode_CompareWithASCIIString(name, forwarded) == 0) return PyObject_GetAttr(c->wrapped, name);
    if (PyUnicode_CompareWithASCIIString(name, "__wrapped__") == 0) return Py_NewRef(c->wrapped);
    if (PyUnicode_CompareWithASCIIString(name, "_lazyexec_patterns") == 0)
      return Py_BuildValue("{slsn}", "hits", hits, "misses", misses ? PyList_GET_SIZE(misses) : (Py_ssize_t)0);
  }
  PyObject* r = PyObject_GenericGetAttr(self, name);
  if (r != nullptr || !PyErr_ExceptionMatches(PyExc_AttributeError)) return r;
  PyErr_Clear();
  return PyObject_GetAttr(c->wrapped, name);
}

PyObject* compile_repr(PyObject* self) { return PyObject_Repr(((CompileObject*)self)->wrapped); }

int compile_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(((CompileObject*)self)->wrapped);
  Py_VISIT(((CompileObject*)self)->dict);
  return 0;
}

int compile_clear(PyObject* self) {
  Py_CLEAR(((CompileObject*)self)->wrapped);
  Py_CLEAR(((CompileObject*)self)->dict);
  return 0;
}

void compile_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  compile_clear(self);
  Py_TYPE(self)->tp_free(self);
}

PyTypeObject compile_type = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "lazyexec.PatternCache";
  t.tp_basicsize = sizeof(CompileObject);
  t.tp_dictoffset = offsetof(CompileObject, dict);
  t.tp_vectorcall_offset = offsetof(CompileObject, vectorcall);
  t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL;
  t.tp_doc = "The regex compiler's compile, answered from lazyexec's pattern cache when it can be.";
  t.tp_call = PyVectorcall_Call;
  t.tp_getattro = compile_getattro;
  t.tp_setattro = PyObject_GenericSetAttr;
  t.tp_repr = compile_repr;
  t.tp_traverse = compile_traverse;
  t.tp_clear = compile_clear;
  t.tp_dealloc = compile_dealloc;
  return t;
}();

// `module.compile = PatternCache(module.compile)`, once.
int patch(PyObject* module) {
  if (PyType_Ready(&compile_type) < 0) return -1;
  Ref current = Ref::steal(PyObject_GetAttrString(module, "compile"));
  if (!current) {
    PyErr_Clear();  // a compiler we do not know: left alone
    return 0;
  }
  if (Py_TYPE(current.get()) == &compile_type || !PyFunction_Check(current.get())) return 0;
  auto* c = PyObject_GC_New(CompileObject, &compile_type);
  if (c == nullptr) return -1;
  c->wrapped = current.release();
  c->dict = nullptr;
  c->vectorcall = compile_vectorcall;
  PyObject_GC_Track((PyObject*)c);
  Ref wrapper = Ref::steal((PyObject*)c);
  return PyObject_SetAttrString(module, "compile", wrapper.get());
}

PyObject* compiler_ran(PyObject*, PyObject* module) {
  if (patch(module) < 0) return nullptr;
  Py_RETURN_NONE;
}
PyMethodDef compiler_ran_def = {"patterns_compiler_ran", compiler_ran, METH_O, nullptr};

// The finder's watch on the compiler module: patched once its loader has run.
PyObject* compiler_found(PyObject*, PyObject* spec) {
  try {
    Ref loader = py::check(PyObject_GetAttrString(spec, "loader"));
    Ref after = py::check(PyCFunction_New(&compiler_ran_def, nullptr));
    if (after_exec(loader.get(), after.get()) < 0) throw py::PyError{};
  } catch (const py::PyError&) {
    return nullptr;
  }
  return Py_NewRef(spec);
}
PyMethodDef compiler_found_def = {"patterns_compiler_found", compiler_found, METH_O, nullptr};

PyObject* py_watch_patterns(PyObject*, PyObject* args) {
  PyObject *finder, *profile_path;
  if (!PyArg_ParseTuple(args, "OO", &finder, &profile_path)) return nullptr;
  if (watch_patterns(finder, profile_path) < 0) return nullptr;
  Py_RETURN_NONE;
}

PyMethodDef functions[] = {
    {"watch_patterns", py_watch_patterns, METH_VARARGS,
     "watch_patterns(finder, profile_path): the pattern cache's patch point (runtime/patterns.cpp)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int add_patterns_functions(PyObject* module) { return PyModule_AddFunctions(module, functions); }

int watch_patterns(PyObject* finder, PyObject* profile_path) {
  if (profile_path == nullptr || !PyUnicode_Check(profile_path)) return 0;  // no usage profile: no cache
  if (const char* off = std::getenv("LAZYEXEC_PATTERNS"); off != nullptr && std::strcmp(off, "0") == 0) return 0;
  try {
    std::string path = py::utf8(profile_path);
    constexpr std::string_view suffix = ".profile";
    if (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)
      path.resize(path.size() - suffix.size());
    table_path = path + ".patterns";
    if (PyObject* loaded = PyDict_GetItemString(PyImport_GetModuleDict(), compiler_module()))
      return patch(loaded);
    Ref callback = py::check(PyCFunction_New(&compiler_found_def, nullptr));
    Ref r = py::check(PyObject_CallMethod(finder, "watch", "sO", compiler_module(), callback.get()));
  } catch (const py::PyError&) {
    return -1;
  }
  return 0;
}

}  // namespace lazyexec::runtime
