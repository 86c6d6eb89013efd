#define PY_SSIZE_T_CLEAN
#include "importer/cold_start.h"

#include <fcntl.h>
#include <marshal.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "importer/boot.h"
#include "importer/file.h"
#include "py/handle.h"

extern char** environ;

namespace lazyexec::importer {
namespace {

using py::Ref;

// Kept for the process (plain pointers: nothing is freed after the
// interpreter is gone).
PyObject* remembered = nullptr;   // [(path, name, is_package)], in load order
PyObject* seen = nullptr;         // the same tuples, to queue each once
PyObject* source_loader = nullptr;  // importlib's SourceFileLoader class
std::string cache;                // the cache directory activation chose
enum class Build { unknown, background, off, python } build = Build::unknown;
bool warned = false;

// As the Python layer's build_mode(): LAZYEXEC_BUILD, else the
// configuration's `build`, else "background". "inline" analyses on this
// start: the Python layer's loader does it.
Build build_mode(PyObject* table) {
  auto decide = [](const char* v) {
    if (std::strcmp(v, "background") == 0) return Build::background;
    if (std::strcmp(v, "off") == 0) return Build::off;
    return Build::python;
  };
  if (const char* env = std::getenv("LAZYEXEC_BUILD");
      env && (!std::strcmp(env, "background") || !std::strcmp(env, "inline") || !std::strcmp(env, "off")))
    return decide(env);
  PyObject* configured = PyDict_Check(table) ? PyDict_GetItemString(table, "build") : nullptr;
  if (configured == nullptr) return Build::background;
  const char* v = PyUnicode_Check(configured) ? PyUnicode_AsUTF8(configured) : nullptr;
  if (v == nullptr) {
    PyErr_Clear();
    return Build::python;
  }
  return decide(v);
}

void warn_once(const std::string& message) {
  if (warned) return;
  warned = true;
  if (PyErr_WarnEx(PyExc_RuntimeWarning, message.c_str(), 1) < 0) PyErr_Clear();
}

std::string unwritable(const std::string& dir, const std::string& why) {
  return "lazyexec: cache directory " + dir + " is not writable (" + why +
         "); modules load eagerly until `lazyexec compile` builds their artifacts (LAZYEXEC_CACHE_DIR chooses "
         "another directory)";
}

// As store/builder.py's BUILDER_CODE (`-c`: the program's directory is
// dropped from sys.path before anything is imported).
constexpr int kBuilderNice = 10;  // as store/builder.py's BUILDER_NICE
constexpr const char* kBuilderCode =
    "import sys; del sys.path[0]; from lazyexec.store.builder import main; sys.exit(main())";

// sys.executable when it is a Python interpreter: an embedding program
// (uwsgi, a game engine) must not be started with Python's arguments.
std::string interpreter() {
  PyObject* exe = PySys_GetObject("executable");
  const char* path = exe && PyUnicode_Check(exe) ? PyUnicode_AsUTF8(exe) : nullptr;
  if (path == nullptr) {
    PyErr_Clear();
    return "";
  }
  std::string p = path;
  std::string name = p.substr(p.find_last_of('/') == std::string::npos ? 0 : p.find_last_of('/') + 1);
  while (!name.empty() && (std::isdigit((unsigned char)name.back()) || name.back() == '.')) name.pop_back();
  if ((name == "python" || name == "pypy") && ::access(p.c_str(), X_OK) == 0) return p;
  return "";
}

// sys.flags.optimize: the -O level artifacts are compiled and named for.
long optimize_level() {
  PyObject* flags = PySys_GetObject("flags");
  Ref level = flags ? Ref::steal(PyObject_GetAttrString(flags, "optimize")) : Ref();
  long n = level ? PyLong_AsLong(level.get()) : 0;
  if (PyErr_Occurred()) PyErr_Clear();
  return n > 0 ? n : 0;
}

// The builder runs at low priority from its first instruction: its own
// interpreter start and imports (tens of milliseconds of CPU) must not
// compete with the program that starts next (store/builder.py's main()
// then lowers it no further). posix_spawn cannot set a nice value. On Linux
// a nice value belongs to a thread and a child inherits its spawning
// thread's, so the spawner's own thread lowers itself first (it ends right
// after); the parent also sets it on its child right away, which is all a
// spawn from the main thread can do (it could not raise its own back), and
// there the child may start before it: failing both, the builder lowers
// itself once it runs.
int builder_nice() {
  errno = 0;
  int own = ::getpriority(PRIO_PROCESS, 0);
  if (errno != 0) own = 0;
  return std::min(own + kBuilderNice, 19);
}

void lower_priority(pid_t pid, int nice) { ::setpriority(PRIO_PROCESS, (id_t)pid, nice); }

std::string cannot_start(int err) {
  return std::string("lazyexec: cannot start the artifact builder (") + std::strerror(err) + "); run `lazyexec compile`";
}

// What the spawning thread needs, owned by it.
struct Spawn {
  std::string exe;
  std::vector<std::string> argv, env;
  int nice = 0;
  bool own_thread = false;
};
pthread_t spawner;
bool spawning = false;

// One detached builder (its own session, no terminal, output discarded),
// not waited for.
void* spawn_builder(void* arg) {
  Spawn* job = static_cast<Spawn*>(arg);
  std::vector<char*> argv, envp;
  for (auto& s : job->argv) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : job->env) envp.push_back(s.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  short flags = 0;
#ifdef POSIX_SPAWN_SETSID
  flags |= POSIX_SPAWN_SETSID;
#endif
  posix_spawnattr_setflags(&attr, flags);
  pid_t pid;
#ifdef __linux__
  if (job->own_thread) ::setpriority(PRIO_PROCESS, (id_t)::syscall(SYS_gettid), job->nice);
#endif
  int err = posix_spawn(&pid, job->exe.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err == 0) lower_priority(pid, job->nice);
  delete job;
  return reinterpret_cast<void*>(static_cast<intptr_t>(err));
}

// Py_AtExit: the spawning thread joined once the interpreter is finalized.
// The interpreter is gone by then, so a failure is told on stderr, as the
// warning would have been.
void join_spawner() {
  if (!spawning) return;
  spawning = false;
  void* result = nullptr;
  if (pthread_join(spawner, &result) != 0) return;
  if (int err = static_cast<int>(reinterpret_cast<intptr_t>(result)); err != 0 && !warned)
    std::fprintf(stderr, "%s\n", cannot_start(err).c_str());
}

// The builder started from its own thread. posix_spawn suspends its caller
// until the child has exec'd the interpreter (vfork semantics): in the
// calling thread that wait, half a millisecond idle and tens on a loaded
// machine where the child waits for a CPU, would come before the program's
// finalization; in a thread of its own it overlaps it, and the process
// waits only for what is left of it (join_spawner). Without a thread, the
// spawn runs here.
void start_builder() {
  std::string exe = interpreter();
  if (exe.empty()) return;  // the job waits for the next builder, or `lazyexec compile`
  auto* job = new Spawn{exe, {exe}, {}, builder_nice()};
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "LAZYEXEC=", 9) != 0) job->env.emplace_back(*e);
  job->env.emplace_back("LAZYEXEC=0");  // the builder itself loads eagerly
  // At the program's -O level: the builder compiles for that level only.
  for (long i = 0; i < optimize_level(); ++i) job->argv.emplace_back("-O");
  job->argv.emplace_back("-c");
  job->argv.emplace_back(kBuilderCode);
  job->own_thread = true;
  if (!spawning && Py_AtExit(join_spawner) == 0 &&
      pthread_create(&spawner, nullptr, spawn_builder, job) == 0) {
    spawning = true;
    return;
  }
  job->own_thread = false;
  if (int err = static_cast<int>(reinterpret_cast<intptr_t>(spawn_builder(job))); err != 0)
    warn_once(cannot_start(err));
}

// A job written to the builder's queue and a builder started unless one
// runs (or this process started one: it looks at the queue again before it
// ends). An unwritable queue is one warning.
void queue_job(PyObject* job, const std::string& cache_dir) {
  Ref data = py::check(PyMarshal_WriteObjectToString(job, Py_MARSHAL_VERSION));
  std::string queue = cache_dir + "/queue";
  if (!make_dirs(queue)) {
    warn_once(unwritable(queue, std::strerror(errno)));
    return;
  }
  std::string name = std::to_string(::getpid()) + "-" + random_hex(4) + ".job";
  if (!write_atomic(join(queue, name), std::string_view(PyBytes_AS_STRING(data.get()), (size_t)PyBytes_GET_SIZE(data.get())))) {
    warn_once(unwritable(queue, "write failed"));
    return;
  }
  // Checked after the job is written: no job is left without a builder.
  if (!spawning && !lock_held(cache_dir + "/build.lock")) start_builder();  // a running builder takes the job up
}

// At exit: the remembered modules queued, a builder started unless one
// runs. Nothing here may disturb the program's end: a failure is one warning.
PyObject* queue_at_exit(PyObject*, PyObject*) {
  if (remembered == nullptr || PyList_GET_SIZE(remembered) == 0) Py_RETURN_NONE;
  try {
    Ref job = Ref::steal(cold_job(remembered));
    if (!job) throw py::PyError{};
    if (PyList_SetSlice(remembered, 0, PyList_GET_SIZE(remembered), nullptr) < 0) throw py::PyError{};
    if (job.get() == Py_None) Py_RETURN_NONE;
    queue_job(job.get(), cache);
  } catch (const py::PyError&) {
    std::string why = "error";
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (value != nullptr)
      if (PyObject* s = PyObject_Str(value)) {
        if (const char* c = PyUnicode_AsUTF8(s)) why = c;
        Py_DECREF(s);
      }
    PyErr_Clear();
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    warn_once("lazyexec: artifacts not queued (" + why + "); modules keep loading eagerly");
  }
  Py_RETURN_NONE;
}
PyMethodDef queue_at_exit_def = {"queue_cold_modules", queue_at_exit, METH_NOARGS,
                                 "lazyexec: the modules loaded without an artifact, queued for the builder at exit."};

void remember(PyObject* fullname, PyObject* path) {
  if (remembered == nullptr) {
    remembered = py::check(PyList_New(0)).release();
    seen = py::check(PySet_New(nullptr)).release();
    Ref atexit = py::check(PyImport_ImportModule("atexit"));
    Ref fn = py::check(PyCFunction_New(&queue_at_exit_def, nullptr));
    Ref r = py::check(PyObject_CallMethod(atexit.get(), "register", "O", fn.get()));
  }
  // FileLoader.is_package(): `__init__.py` of a module not itself named `__init__`.
  Py_ssize_t n;
  const char* p = PyUnicode_AsUTF8AndSize(path, &n);
  const char* m = PyUnicode_AsUTF8(fullname);
  if (p == nullptr || m == nullptr) throw py::PyError{};
  std::string_view file(p, (size_t)n), name(m);
  file = file.substr(file.find_last_of('/') == std::string_view::npos ? 0 : file.find_last_of('/') + 1);
  auto dot = file.find_last_of('.');
  bool package = file.substr(0, dot) == "__init__" &&
                 name.substr(name.find_last_of('.') == std::string_view::npos ? 0 : name.find_last_of('.') + 1) !=
                     "__init__";
  Ref entry = py::check(Py_BuildValue("(OOO)", path, fullname, package ? Py_True : Py_False));
  int known = PySet_Contains(seen, entry.get());
  if (known < 0) throw py::PyError{};
  if (known) return;
  if (PySet_Add(seen, entry.get()) < 0 || PyList_Append(remembered, entry.get()) < 0) throw py::PyError{};
}

}  // namespace

PyObject* cold_job(PyObject* modules) {
  Ref state = py::check(boot_state(nullptr, nullptr));
  if (state.get() == Py_None || !PyDict_Check(state.get())) return Py_NewRef(Py_None);
  PyObject* none = Py_None;
  auto item = [&](const char* key) {
    PyObject* v = PyDict_GetItemString(state.get(), key);
    return v ? v : none;
  };
  PyObject* prefix = PySys_GetObject("pycache_prefix");
  PyObject* off = PySys_GetObject("dont_write_bytecode");
  Ref listed = py::check(PySequence_List(modules));
  return Py_BuildValue("{sisisOsOsOsOsOsO}", "version", 2, "optimize", (int)optimize_level(), "table", item("table"),
                       "source", item("source"),
                       "installed_never", item("installed_never"), "modules", listed.get(), "dont_write_bytecode",
                       off != nullptr && PyObject_IsTrue(off) == 1 ? Py_True : Py_False, "pycache_prefix",
                       prefix ? prefix : Py_None);
}

PyObject* cold_loader(PyObject* fullname, PyObject* path, const std::string& cache_dir) {
  try {
    // One list of remembered modules and one job per process: the start-up
    // extension's, when activation ran there (its first claims took this
    // path before the full extension was loaded).
    if (PyObject* boot_module = start_up_extension()) {
      Ref loader = py::check(PyObject_CallMethod(boot_module, "cold_loader", "OO", fullname, path));
      return loader.get() == Py_None ? nullptr : loader.release();
    }
    if (build == Build::unknown) {
      Ref state = py::check(boot_state(nullptr, nullptr));
      PyObject* table = PyDict_Check(state.get()) ? PyDict_GetItemString(state.get(), "table") : nullptr;
      build = table == nullptr ? Build::python : build_mode(table);
      cache = cache_dir;
    }
    if (build == Build::python) return nullptr;
    if (source_loader == nullptr) {
      PyObject* external = PyDict_GetItemString(PyImport_GetModuleDict(), "_frozen_importlib_external");
      if (external == nullptr) return nullptr;
      source_loader = py::check(PyObject_GetAttrString(external, "SourceFileLoader")).release();
    }
    if (build == Build::background) remember(fullname, path);
    return PyObject_CallFunctionObjArgs(source_loader, fullname, path, nullptr);
  } catch (const py::PyError&) {
    return nullptr;
  }
}

void queue_for_builder(PyObject* job, const std::string& cache_dir) { queue_job(job, cache_dir); }

bool builds_off() {
  Ref state = Ref::steal(boot_state(nullptr, nullptr));
  if (!state) {
    PyErr_Clear();
    return false;
  }
  PyObject* table = PyDict_Check(state.get()) ? PyDict_GetItemString(state.get(), "table") : nullptr;
  if (table != nullptr) return build_mode(table) == Build::off;
  const char* env = std::getenv("LAZYEXEC_BUILD");
  return env != nullptr && std::strcmp(env, "off") == 0;
}

}  // namespace lazyexec::importer
