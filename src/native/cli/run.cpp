// `lazyexec run` for a script (or a command on PATH) and for `-m MODULE`, in
// the start-up extension: the `lazyexec` command then imports no Python
// module of lazyexec's beyond the package itself (cli/ and cli/run.py cost
// about 1 M instructions, 2% of an empty start). What the program observes
// is cli/run.py's, step for step (its docstring: "Be the interpreter,
// exactly"); paths are computed by the interpreter's own os.path so that
// every name reads as there. Errors after activation are handed to
// cli/run.py's _hand_over(), imported only then.
#include "cli/run.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_set>

#include "importer/file.h"
#include "py/handle.h"

namespace lazyexec::cli {
namespace {

using py::check;
using py::PyError;
using py::Ref;

struct Decline {};

Ref module_named(const char* name) { return check(PyImport_ImportModule(name)); }

Ref attr(PyObject* o, const char* name) { return check(PyObject_GetAttrString(o, name)); }

Ref call(PyObject* callable, PyObject* arg) { return check(PyObject_CallOneArg(callable, arg)); }

bool truth(const Ref& o) {
  int t = PyObject_IsTrue(o.get());
  if (t < 0) throw PyError{};
  return t != 0;
}

Ref fs_str(const std::string& bytes) {
  return check(PyUnicode_DecodeFSDefaultAndSize(bytes.data(), (Py_ssize_t)bytes.size()));
}

// The bytes of a path for a system call (os.fsencode); Decline on a str
// that does not encode.
std::string fs_bytes(PyObject* path) {
  Ref encoded = Ref::steal(PyUnicode_EncodeFSDefault(path));
  if (!encoded) {
    PyErr_Clear();
    throw Decline{};
  }
  return std::string(PyBytes_AS_STRING(encoded.get()), (size_t)PyBytes_GET_SIZE(encoded.get()));
}

std::string fs_bytes_or_raise(PyObject* path) {
  Ref encoded = check(PyUnicode_EncodeFSDefault(path));
  return std::string(PyBytes_AS_STRING(encoded.get()), (size_t)PyBytes_GET_SIZE(encoded.get()));
}

bool executable(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && ::access(path.c_str(), F_OK | X_OK) == 0 && !S_ISDIR(st.st_mode);
}

// cli/run.py's _which(): shutil.which() on POSIX for a command without a
// directory part (one with it was tested by os.path.exists already).
Ref which(PyObject* command) {
  std::string name = fs_bytes(command);
  if (name.find('/') != std::string::npos) return {};
  const char* env_path = std::getenv("PATH");
  std::string search;
  if (env_path != nullptr) {
    search = env_path;
  } else {
    size_t n = ::confstr(_CS_PATH, nullptr, 0);
    if (n > 0) {
      search.resize(n);
      ::confstr(_CS_PATH, search.data(), n);
      search.resize(n - 1);
    } else {
      search = ":/bin:/usr/bin";  // os.defpath
    }
  }
  if (search.empty()) return {};
  std::unordered_set<std::string> seen;
  size_t start = 0;
  while (start <= search.size()) {
    size_t end = search.find(':', start);
    if (end == std::string::npos) end = search.size();
    std::string directory = search.substr(start, end - start);
    start = end + 1;
    if (!seen.insert(directory).second) continue;
    std::string candidate = importer::join(directory, name);
    if (executable(candidate)) return fs_str(candidate);
  }
  return {};
}

// cli/run.py's _is_zip(): `python APP.zip` runs the archive's __main__.py.
bool is_zip(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char magic[4] = {};
  bool zip = std::fseek(f, -22, SEEK_END) == 0 && std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, "PK\x05\x06", 4) == 0;
  std::fclose(f);
  return zip;
}

// The module whose namespace the interpreter ran the `lazyexec` command in
// through a borrowed reference (PyRun_SimpleFile): kept alive, as
// cli/run.py's _replaced_mains keeps it.
PyObject* replaced_mains = nullptr;

// A `__main__` as the interpreter creates it before running anything.
Ref fresh_main() {
  if (replaced_mains == nullptr) replaced_mains = check(PyList_New(0)).release();
  PyObject* modules = PyImport_GetModuleDict();
  PyObject* old = PyDict_GetItemString(modules, "__main__");
  if (PyList_Append(replaced_mains, old != nullptr ? old : Py_None) < 0) throw PyError{};
  Ref main = check(PyModule_New("__main__"));
  PyObject* g = PyModule_GetDict(main.get());
  Ref annotations = check(PyDict_New());
  PyObject* builtins = PyImport_AddModule("builtins");  // borrowed
  if (builtins == nullptr || PyDict_SetItemString(g, "__annotations__", annotations.get()) < 0 ||
      PyDict_SetItemString(g, "__builtins__", builtins) < 0 || PyDict_SetItemString(modules, "__main__", main.get()) < 0)
    throw PyError{};
  return main;
}

bool safe_path() {
  PyObject* flags = PySys_GetObject("flags");  // borrowed
  if (flags == nullptr) return false;
  Ref safe = Ref::steal(PyObject_GetAttrString(flags, "safe_path"));  // 3.11+
  if (!safe) {
    PyErr_Clear();
    return false;
  }
  return truth(safe);
}

// The entry the interpreter would have put first for the program (nothing under -P).
void set_path0(PyObject* entry) {
  if (safe_path()) return;
  PyObject* path = PySys_GetObject("path");  // borrowed
  if (path == nullptr || !PyList_Check(path)) {
    PyErr_SetString(PyExc_RuntimeError, "lazyexec run: sys.path is not a list");
    throw PyError{};
  }
  int failed = PyList_GET_SIZE(path) > 0 ? PyList_SetItem(path, 0, Py_NewRef(entry)) : PyList_Insert(path, 0, entry);
  if (failed < 0) throw PyError{};
}

void set_argv(PyObject* first, PyObject* rest) {
  Ref argv = check(PyList_GetSlice(rest, 0, PY_SSIZE_T_MAX));
  if (PyList_Insert(argv.get(), 0, first) < 0 || PySys_SetObject("argv", argv.get()) < 0) throw PyError{};
}

// Hands the program's uncaught exception (set) to cli/run.py's _hand_over():
// the traceback the interpreter reports starts at the program's first frame
// (`first`: runpy's function name for -m, or True: the traceback's first frame).
// The exception stays set, whatever happens here.
void hand_over(PyObject* first) {
  if (PyErr_ExceptionMatches(PyExc_SystemExit)) return;
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  if (traceback != nullptr && value != nullptr) PyException_SetTraceback(value, traceback);
  if (value != nullptr) {
    Ref run_py = Ref::steal(PyImport_ImportModule("lazyexec.cli.run"));
    Ref done = run_py ? Ref::steal(PyObject_CallMethod(run_py.get(), "_hand_over_from", "OO", value, first)) : Ref();
    if (!done) PyErr_Clear();  // the traceback keeps lazyexec's frames; the exception itself is what matters
  }
  PyErr_Restore(type, value, traceback);
}

// cli/run.py's _run_path() for a script file.
void run_path(PyObject* os, PyObject* ospath, PyObject* path, PyObject* rest) {
  set_argv(path, rest);
  set_path0(call(attr(ospath, "dirname").get(), call(attr(ospath, "realpath").get(), path).get()).get());
  Ref filename = Ref::borrow(path);
  if (!truth(call(attr(ospath, "isabs").get(), path))) {
    Ref cwd = check(PyObject_CallMethod(os, "getcwd", nullptr));
    filename = check(PyObject_CallMethod(ospath, "join", "OO", cwd.get(), path));
  }
  std::string path_bytes = fs_bytes_or_raise(path), filename_bytes = fs_bytes_or_raise(filename.get());
  Ref main = fresh_main();
  PyObject* g = PyModule_GetDict(main.get());
  PyObject* external = PyDict_GetItemString(PyImport_GetModuleDict(), "_frozen_importlib_external");
  if (external == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "lazyexec run: the import system is not initialised");
    throw PyError{};
  }
  Ref loader = check(PyObject_CallMethod(external, "SourceFileLoader", "sO", "__main__", filename.get()));
  if (PyDict_SetItemString(g, "__loader__", loader.get()) < 0 || PyDict_SetItemString(g, "__file__", filename.get()) < 0 ||
      PyDict_SetItemString(g, "__cached__", Py_None) < 0)
    throw PyError{};
  // Opened as the interpreter opens `python SCRIPT` (an "open" audit event).
  if (PySys_Audit("open", "Osi", path, "rb", 0) < 0) throw PyError{};
  std::FILE* file = std::fopen(path_bytes.c_str(), "rb");
  if (file == nullptr) {
    PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    throw PyError{};
  }
  // The interpreter's own parse-and-run of a script file (its tokenizer
  // reads the coding cookie, the BOM and NUL bytes as `python SCRIPT` does;
  // closes the file). A syntax error has no frame; a runtime error's
  // traceback starts at the script's own frame.
  PyCompilerFlags flags = _PyCompilerFlags_INIT;
  Ref result = Ref::steal(PyRun_FileExFlags(file, filename_bytes.c_str(), Py_file_input, g, g, 1, &flags));
  if (!result) hand_over(Py_True);
  // As PyRun_SimpleFile: __file__ and __cached__ go when the script ends,
  // the exception (if any) kept aside meanwhile.
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  for (const char* name : {"__file__", "__cached__"})
    if (PyDict_DelItemString(g, name) < 0) PyErr_Clear();
  PyErr_Restore(type, value, traceback);
  if (!result) throw PyError{};
}

// cli/run.py's _run_module(): runpy's own `python -m` path in a fresh __main__.
void run_module(PyObject* os, PyObject* module, PyObject* rest) {
  Ref runpy = module_named("runpy");
  Ref cwd = check(PyObject_CallMethod(os, "getcwd", nullptr));
  set_path0(cwd.get());
  set_argv(module, rest);  // runpy replaces argv[0] with the module's path, as -m does
  fresh_main();
  Ref result = Ref::steal(PyObject_CallMethod(runpy.get(), "_run_module_as_main", "OO", module, Py_True));
  if (!result) {
    Ref first = py::str("_run_module_as_main");
    hand_over(first.get());
    throw PyError{};
  }
}

// Activation as cli/run.py's _activate(): in C++, or by the Python layer when C++ declines.
void activate_for(PyObject* module, Activate activate, PyObject* program, PyObject* rest) {
  PyObject* args[] = {program, rest};
  Ref finder = check(activate(module, args, 2));
  if (finder.get() != Py_None) return;
  Ref run_py = module_named("lazyexec.cli.run");
  check(PyObject_CallMethod(run_py.get(), "_activate_in_python", "OO", program, rest));
}

}  // namespace

PyObject* run(PyObject* module, PyObject* argv, Activate activate) {
  if (!PyList_Check(argv)) {
    PyErr_SetString(PyExc_TypeError, "run(argv: list[str])");
    return nullptr;
  }
  Py_ssize_t n = PyList_GET_SIZE(argv);
  for (Py_ssize_t i = 0; i < n; ++i)
    if (!PyUnicode_Check(PyList_GET_ITEM(argv, i))) Py_RETURN_NONE;
  const char* lazyexec = std::getenv("LAZYEXEC");
  if (n == 0 || (lazyexec != nullptr && std::strcmp(lazyexec, "0") == 0)) Py_RETURN_NONE;
  try {
    Ref first = Ref::borrow(PyList_GET_ITEM(argv, 0));
    if (PyUnicode_GET_LENGTH(first.get()) == 0) Py_RETURN_NONE;
    Ref os = module_named("os");
    Ref ospath = attr(os.get(), "path");
    if (PyUnicode_READ_CHAR(first.get(), 0) == '-') {
      if (PyUnicode_CompareWithASCIIString(first.get(), "-m") != 0 || n < 2) Py_RETURN_NONE;
      Ref module_name = Ref::borrow(PyList_GET_ITEM(argv, 1));
      Ref rest = check(PyList_GetSlice(argv, 2, n));
      Ref program = check(PyUnicode_FromFormat("-m %U", module_name.get()));
      activate_for(module, activate, program.get(), rest.get());
      run_module(os.get(), module_name.get(), rest.get());
      return PyLong_FromLong(0);
    }
    Ref path = truth(call(attr(ospath.get(), "exists").get(), first.get())) ? first : which(first.get());
    if (!path) Py_RETURN_NONE;  // the Python layer says "no such script or command"
    if (truth(call(attr(ospath.get(), "isdir").get(), path.get())) || is_zip(fs_bytes(path.get()))) Py_RETURN_NONE;
    Ref rest = check(PyList_GetSlice(argv, 1, n));
    Ref program = call(attr(ospath.get(), "abspath").get(), path.get());
    activate_for(module, activate, program.get(), rest.get());
    run_path(os.get(), ospath.get(), path.get(), rest.get());
    return PyLong_FromLong(0);
  } catch (const Decline&) {
    Py_RETURN_NONE;
  } catch (const PyError&) {
    return nullptr;
  }
}

PyObject* command(PyObject* module, PyObject* argv, Activate activate) {
  if (!PyList_Check(argv)) {
    PyErr_SetString(PyExc_TypeError, "command(argv: list[str])");
    return nullptr;
  }
  if (PyList_GET_SIZE(argv) >= 1 && PyUnicode_Check(PyList_GET_ITEM(argv, 0)) &&
      PyUnicode_CompareWithASCIIString(PyList_GET_ITEM(argv, 0), "run") == 0) {
    Ref rest = Ref::steal(PyList_GetSlice(argv, 1, PyList_GET_SIZE(argv)));
    if (!rest) return nullptr;
    Ref status = Ref::steal(run(module, rest.get(), activate));
    if (!status || status.get() != Py_None) return status.release();
  }
  Ref cli = Ref::steal(PyImport_ImportModule("lazyexec.cli"));
  if (!cli) return nullptr;
  return PyObject_CallMethod(cli.get(), "command", "O", argv);
}

}  // namespace lazyexec::cli
