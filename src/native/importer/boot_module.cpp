// _lazyexec_boot: the start-up extension the .pth line loads. It holds
// activation (boot.cpp, built with LAZYEXEC_BOOT_MODULE) and the finder and
// nothing else, so that a start costs the loading of a small library; the
// full extension (_lazyexec: loader, runtime, analyzer, compiler, image) is
// loaded by its path when the finder first claims a module.
#include <Python.h>

#include <algorithm>
#include <cstring>

#if defined(__linux__)
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "cli/run.h"
#include "importer/boot.h"
#include "importer/finder.h"

namespace {

PyObject* set_busy(PyObject*, PyObject* flag) {
  int on = PyObject_IsTrue(flag);
  if (on < 0) return nullptr;
  return PyBool_FromLong(lazyexec::importer::set_busy(on != 0));
}

// compile(source, filename, "exec", dont_inherit=True) for `lazyexec run
// SCRIPT` (cli/run.py), as the interpreter compiles `python SCRIPT`: without
// builtins.compile()'s test for an AST object, which on 3.12 first creates
// the ast module's classes (11 M instructions, a quarter of an empty start).
// The caller keeps sources with a NUL byte for compile() and its message.
PyObject* compile_main(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyBytes_Check(args[0]) || !PyUnicode_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "compile_main(source: bytes, filename: str)");
    return nullptr;
  }
  const char* source = PyBytes_AS_STRING(args[0]);
  if (std::memchr(source, 0, (size_t)PyBytes_GET_SIZE(args[0])) != nullptr) {
    PyErr_SetString(PyExc_ValueError, "source code string cannot contain null bytes");
    return nullptr;
  }
  PyCompilerFlags flags = _PyCompilerFlags_INIT;
  flags.cf_flags = PyCF_SOURCE_IS_UTF8;  // what compile() sets for any source
  return Py_CompileStringObject(source, args[1], Py_file_input, &flags, -1);
}

// After activation this library's read-only pages (code, constants, unwind
// tables) are let go: a freshly installed library sits in the page cache as
// large folios, and a fault maps a whole folio (or 64 KiB around it), so the
// few pages activation runs brought in nearly all of its 230 KiB. Unmodified
// file pages are only unmapped (read again from the page cache when the
// finder next runs); writable segments (relocated data) are never touched.
// The full extension does the same for its cold part (module.cpp).
constexpr uintptr_t kPiece = 16 * 1024;

void let_go_of_read_only_pages() {
#if defined(__linux__)
  static bool done = false;
  if (done) return;
  done = true;
  dl_iterate_phdr(
      [](dl_phdr_info* object, size_t, void*) {
        auto self = reinterpret_cast<uintptr_t>(&let_go_of_read_only_pages);
        bool mine = false;
        for (int i = 0; i < object->dlpi_phnum && !mine; ++i) {
          const auto& segment = object->dlpi_phdr[i];
          uintptr_t start = object->dlpi_addr + segment.p_vaddr;
          mine = segment.p_type == PT_LOAD && start <= self && self < start + segment.p_memsz;
        }
        if (!mine) return 0;
        uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
        for (int i = 0; i < object->dlpi_phnum; ++i) {
          const auto& segment = object->dlpi_phdr[i];
          if (segment.p_type != PT_LOAD || (segment.p_flags & PF_W)) continue;
          uintptr_t from = (object->dlpi_addr + segment.p_vaddr) & ~(page - 1);
          uintptr_t to = (object->dlpi_addr + segment.p_vaddr + segment.p_filesz) & ~(page - 1);  // whole pages only
          if (from >= to) continue;
          // Every other 16 KiB apart (MADV_NOHUGEPAGE changes nothing else
          // for file-backed code): a later fault maps at most that much
          // around it, not 64 KiB or a whole folio.
          for (uintptr_t at = from + kPiece; at < to; at += 2 * kPiece)
            madvise(reinterpret_cast<void*>(at), std::min(kPiece, to - at), MADV_NOHUGEPAGE);
          madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
        }
        return 1;
      },
      nullptr);
#endif
}

PyObject* boot(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  PyObject* finder = lazyexec::importer::boot(module, args, nargs);
  let_go_of_read_only_pages();
  return finder;
}

PyObject* run(PyObject* module, PyObject* argv) { return lazyexec::cli::run(module, argv, boot); }

PyObject* command(PyObject* module, PyObject* argv) { return lazyexec::cli::command(module, argv, boot); }

PyMethodDef methods[] = {
    {"command", command, METH_O,
     "command(argv) -> the `lazyexec` command's exit status (src/scripts/lazyexec): `run SCRIPT` and `run -m "
     "MODULE` in C++, the rest through lazyexec.cli.command()."},
    {"run", run, METH_O,
     "run(argv) -> 0 once `lazyexec run ARGV` ran its script or -m module (activated as boot(program, args)), or "
     "None before anything happened: cli/run.py runs that command line."},
    {"compile_main", (PyCFunction)(void (*)(void))compile_main, METH_FASTCALL,
     "compile_main(source: bytes, filename: str) -> code: compile(source, filename, 'exec', dont_inherit=True)."},
    {"boot", (PyCFunction)(void (*)(void))boot, METH_FASTCALL,
     "boot([program, args[, image]]) -> the Finder, activated from C++ with the Python layer's caches (the program "
     "named by the command line, or as `lazyexec run` names it; the image served, else LAZYEXEC_IMAGE's); None: "
     "activate through lazyexec.activate()."},
    {"boot_state", lazyexec::importer::boot_state, METH_NOARGS,
     "boot_state() -> what boot() read (finder, configuration table and file, usage profile), or None."},
    {"cold_loader", (PyCFunction)(void (*)(void))lazyexec::importer::cold_loader_of_boot, METH_FASTCALL,
     "cold_loader(fullname, path) -> the loader of a claimed module without an artifact (loaded eagerly, queued for "
     "the builder), or None: the full extension's cold path uses this one list of the process's modules."},
    {"set_busy", set_busy, METH_O, "set_busy(flag) -> previous: this thread's imports bypass the finder."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_lazyexec_boot", "lazyexec's start-up extension.", -1, methods,
                          nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__lazyexec_boot(void) {
  PyObject* m = PyModule_Create(&module_def);
  if (m && lazyexec::importer::add_finder_type(m) < 0) Py_CLEAR(m);
  return m;
}
