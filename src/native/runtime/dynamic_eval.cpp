// exec() and eval() of code that runs in a lazily loaded module's namespace
// with a separate locals mapping: `prof.runctx("f()", globals(), locals())`,
// `timeit.timeit("f()", globals=globals())`, pdb and bdb, exec(src) inside a
// function. Such code reads names with LOAD_NAME, which looks locals up
// through the mapping protocol but globals with PyDict_GetItem: no trap sees
// the miss, so a pending name would be a NameError where eagerly it is bound.
// builtins.exec and builtins.eval are replaced by functions that first run the
// pending units binding the names the code mentions, then call the originals
// (a C function pushes no Python frame: the originals still see the caller's
// globals, locals and __future__ flags).
#include <cstring>
#include <vector>

#include "runtime/module_state.h"

namespace lazyexec::runtime {
namespace {

PyObject* original_exec = nullptr;
PyObject* original_eval = nullptr;
PyMethodDef exec_def = {"exec", nullptr, METH_FASTCALL | METH_KEYWORDS, nullptr};
PyMethodDef eval_def = {"eval", nullptr, METH_FASTCALL | METH_KEYWORDS, nullptr};

// The names a code object and the code nested in it mention, where they may
// be read from the globals without the trap: the top level and class bodies
// (LOAD_NAME). Function bodies read globals with LOAD_GLOBAL, which a trapping
// namespace answers itself; once the namespace is settled nothing traps, so
// with `functions` their names count too.
void names_of(PyObject* code, std::vector<PyObject*>& out, bool functions, int depth = 0) {
  if (depth > 64) return;
  PyCodeObject* co = (PyCodeObject*)code;
  if (functions || !(co->co_flags & CO_OPTIMIZED)) {
    PyObject* names = co->co_names;
    for (Py_ssize_t i = 0; names && i < PyTuple_GET_SIZE(names); ++i) out.push_back(PyTuple_GET_ITEM(names, i));
  }
  PyObject* consts = co->co_consts;
  for (Py_ssize_t i = 0; consts && i < PyTuple_GET_SIZE(consts); ++i) {
    PyObject* c = PyTuple_GET_ITEM(consts, i);
    if (PyCode_Check(c)) names_of(c, out, functions, depth + 1);
  }
}

// Source text compiled as exec()/eval() would compile it (the caller's
// __future__ flags, filename "<string>"), so that the names it mentions are
// known and the text is compiled once. Null (no exception) when it does not
// compile: the original builtin then reports the error itself.
py::Ref compile_text(PyObject* source, bool eval_mode) {
  Py_ssize_t size = 0;
  const char* text = PyUnicode_AsUTF8AndSize(source, &size);
  if (!text) {
    PyErr_Clear();
    return {};
  }
  if ((Py_ssize_t)strlen(text) != size) return {};  // embedded NUL: the builtin's error
  if (eval_mode)
    while (*text == ' ' || *text == '\t') ++text;  // as builtin eval() strips
  PyCompilerFlags cf;
  cf.cf_flags = PyCF_SOURCE_IS_UTF8;
  cf.cf_feature_version = PY_MINOR_VERSION;
  PyEval_MergeCompilerFlags(&cf);
  py::Ref code = py::Ref::steal(Py_CompileStringExFlags(text, "<string>", eval_mode ? Py_eval_input : Py_file_input, &cf, -1));
  if (!code) PyErr_Clear();
  return code;
}

PyObject* call(PyObject* original, bool eval_mode, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* source = nargs > 0 ? args[0] : nullptr;
  PyObject* globals = nargs > 1 ? args[1] : nullptr;
  PyObject* locals = nargs > 2 ? args[2] : nullptr;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t i = 0; i < nkw; ++i) {  // 3.13: globals= and locals= keywords
    PyObject* k = PyTuple_GET_ITEM(kwnames, i);
    if (PyUnicode_CompareWithASCIIString(k, "globals") == 0) globals = args[nargs + i];
    else if (PyUnicode_CompareWithASCIIString(k, "locals") == 0) locals = args[nargs + i];
  }
  if (globals == Py_None) globals = nullptr;
  if (locals == Py_None) locals = nullptr;
  PyObject* g = globals ? globals : PyEval_GetGlobals();
  ModuleState* st = g && PyDict_Check(g) ? state_of(g) : nullptr;
  if (!st || st->pending.empty() || !source || !(PyCode_Check(source) || PyUnicode_Check(source)))
    return PyObject_Vectorcall(original, args, (size_t)nargs, kwnames);
  // Locals default to the globals when globals are given, else to the
  // caller's locals; when they are the globals, LOAD_NAME goes through the
  // trap already (a non-exact dict is read with PyObject_GetItem).
  PyObject* l = locals ? locals : (globals ? globals : PyEval_GetLocals());
  if (!l && PyErr_Occurred()) return nullptr;
  if (l == g) return PyObject_Vectorcall(original, args, (size_t)nargs, kwnames);
  py::Ref code = PyCode_Check(source) ? py::Ref::borrow(source) : compile_text(source, eval_mode);
  if (code) {
    std::vector<PyObject*> names;
    names_of(code.get(), names, /*functions=*/st->settled);
    for (PyObject* name : names) {
      st = state_of(g);
      if (!st || st->pending.empty()) break;
      if (PyDict_Contains(g, name) != 0 || PyErr_Occurred()) {
        PyErr_Clear();
        continue;
      }
      // The name's unit runs now, as on a trapped lookup (earlier in the
      // source than a unit this thread is running, as visible_limit says).
      if (materialize_name(*st, name, /*absent_if_running=*/true) < 0) return nullptr;
    }
  }
  if (!code || code.get() == source) return PyObject_Vectorcall(original, args, (size_t)nargs, kwnames);
  // The compiled text replaces the source: compiled once, as the builtin would.
  std::vector<PyObject*> copy(args, args + nargs + nkw);
  copy[0] = code.get();
  return PyObject_Vectorcall(original, copy.data(), (size_t)nargs, kwnames);
}

PyObject* lazy_exec(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return call(original_exec, false, args, nargs, kwnames);
}

PyObject* lazy_eval(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return call(original_eval, true, args, nargs, kwnames);
}

int replace(PyObject* builtins, const char* name, PyMethodDef& def, PyObject*& original) {
  if (original) return 0;  // installed already
  py::Ref current = py::Ref::steal(PyObject_GetAttrString(builtins, name));
  if (!current) return -1;
  if (!PyCFunction_Check(current.get())) return 0;  // replaced by someone else: leave it
  def.ml_doc = ((PyCFunctionObject*)current.get())->m_ml->ml_doc;  // same __doc__ and __text_signature__
  py::Ref module_name = py::Ref::steal(PyUnicode_FromString("builtins"));
  if (!module_name) return -1;
  py::Ref fn = py::Ref::steal(PyCFunction_NewEx(&def, builtins, module_name.get()));
  if (!fn || PyObject_SetAttrString(builtins, name, fn.get()) < 0) return -1;
  original = current.release();
  return 0;
}

}  // namespace

int install_dynamic_eval() {
  exec_def.ml_meth = (PyCFunction)(void (*)(void))lazy_exec;
  eval_def.ml_meth = (PyCFunction)(void (*)(void))lazy_eval;
  py::Ref builtins = py::Ref::steal(PyImport_ImportModule("builtins"));
  if (!builtins) return -1;
  if (replace(builtins.get(), "exec", exec_def, original_exec) < 0) return -1;
  return replace(builtins.get(), "eval", eval_def, original_eval);
}

}  // namespace lazyexec::runtime
