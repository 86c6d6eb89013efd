#include "importer/boot.h"

#include <fcntl.h>
#include <marshal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "analyze/knowledge.h"
#include "importer/artifact.h"
#include "importer/cold_start.h"
#include "importer/file.h"
#include "importer/finder.h"
#include "importer/loader.h"
#include "importer/toml.h"
#include "py/handle.h"
#include "runtime/after_exec.h"
#include "runtime/patterns.h"
#ifndef LAZYEXEC_BOOT_MODULE
#include "runtime/loggers.h"
#include "runtime/module_hooks.h"
#include "runtime/module_state.h"
#endif

namespace lazyexec::importer {
namespace {

using py::Ref;

// The fast path cannot decide alone: lazyexec.activate() does it.
struct Decline {
  int line = __builtin_LINE();  // where it declined (LAZYEXEC_BOOT_TRACE=1 says)
};

PyObject* state = nullptr;  // boot_state(), kept for the process
// The program as `lazyexec run` names it (boot(head, args)); empty: from
// sys.orig_argv.
std::string named_program;
// The image `lazyexec run --image APP.lzi` serves (boot(head, args, image));
// empty: LAZYEXEC_IMAGE's.
std::string named_image;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Asked by the configuration search and by the usage profile's program
// identity: one system call per activation (activate() clears it).
std::string cwd_seen;

std::string getcwd_or_decline() {
  if (!cwd_seen.empty()) return cwd_seen;
  char buf[PATH_MAX];
  if (::getcwd(buf, sizeof buf) == nullptr) throw Decline{};
  return cwd_seen = buf;
}

// os.path.abspath(): no system call for an absolute path (realpath() asks
// readlink() of every component).
std::string absolute(const std::string& p) {
  return normpath(!p.empty() && p.front() == '/' ? p : join(getcwd_or_decline(), p));
}

bool is_file(const std::string& p, struct stat* st) { return ::stat(p.c_str(), st) == 0 && S_ISREG(st->st_mode); }

// A marshal file's object; a missing or damaged file declines (the Python
// layer rebuilds it, or warns).
Ref unmarshal_bytes(const std::string& data) {
  PyObject* obj = PyMarshal_ReadObjectFromString(data.data(), (Py_ssize_t)data.size());
  if (obj == nullptr) {
    PyErr_Clear();
    throw Decline{};
  }
  return Ref::steal(obj);
}

Ref unmarshal_file(const std::string& path) {
  auto data = read_file(path.c_str());
  if (!data) throw Decline{};
  return unmarshal_bytes(*data);
}

// As config.user_cache_dir().
std::string cache_dir() {
  std::string explicit_dir = env("LAZYEXEC_CACHE_DIR");
  if (!explicit_dir.empty()) return explicit_dir;
  std::string base = env("XDG_CACHE_HOME");
  if (base.empty()) {
    std::string home = env("HOME");
    if (home.empty()) throw Decline{};  // expanduser() would ask the password database
    while (home.size() > 1 && home.back() == '/') home.pop_back();
    base = join(home, ".cache");
  }
  return join(base, "lazyexec");
}

PyObject* get(PyObject* dict, const char* key) {
  PyObject* v = PyDict_GetItemString(dict, key);  // borrowed
  return v;
}

// The parsed TOML of `path`, as config._toml_load() gives it: from its cache
// when current, else read here (tomllib and what it imports cost more than
// the rest of activation) and cached for both layers. A file this reader
// leaves to tomllib declines: the Python layer parses it, or says what is
// wrong with it.
Ref parsed_toml(const std::string& path, const struct stat& st, const std::string& cache) {
  std::string cache_file = join(cache, "config-" + fingerprint(absolute(path)) + ".marshal");
  long long mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  if (auto bytes = read_file(cache_file.c_str())) {
    PyObject* obj = PyMarshal_ReadObjectFromString(bytes->data(), (Py_ssize_t)bytes->size());
    Ref cached = Ref::steal(obj);
    if (obj == nullptr) PyErr_Clear();
    if (obj && PyTuple_Check(obj) && PyTuple_GET_SIZE(obj) == 2 && PyTuple_Check(PyTuple_GET_ITEM(obj, 0)) &&
        PyTuple_GET_SIZE(PyTuple_GET_ITEM(obj, 0)) == 2 && PyDict_Check(PyTuple_GET_ITEM(obj, 1))) {
      PyObject* stamp = PyTuple_GET_ITEM(obj, 0);
      long long m = PyLong_AsLongLong(PyTuple_GET_ITEM(stamp, 0));
      long long s = PyLong_AsLongLong(PyTuple_GET_ITEM(stamp, 1));
      if (PyErr_Occurred()) PyErr_Clear();
      else if (m == mtime_ns && s == (long long)st.st_size) return Ref::borrow(PyTuple_GET_ITEM(obj, 1));
    }
  }
  auto text = read_file(path.c_str());
  if (!text) throw Decline{};
  Ref data = parse_toml(*text);
  if (!data) throw Decline{};
  Ref entry = py::check(Py_BuildValue("((LL)O)", mtime_ns, (long long)st.st_size, data.get()));
  Ref bytes = py::check(PyMarshal_WriteObjectToString(entry.get(), Py_MARSHAL_VERSION));
  // Unwritable: this start is not slower for it, and the next one reads again.
  if (make_dirs(cache))
    write_atomic(cache_file, std::string_view(PyBytes_AS_STRING(bytes.get()), (size_t)PyBytes_GET_SIZE(bytes.get())));
  return data;
}

struct Table {
  Ref table;   // [tool.lazyexec] (an empty dict: the defaults)
  Ref source;  // the file, or None
};

// As config.load(), for the case where its parse cache is current.
Table load_config(const std::string& cache) {
  Ref empty = py::check(PyDict_New());
  std::string explicit_path = env("LAZYEXEC_CONFIG");
  struct stat st;
  if (!explicit_path.empty()) {
    if (!is_file(explicit_path, &st)) throw Decline{};  // the Python layer says why
    Ref data = parsed_toml(explicit_path, st, cache);
    PyObject* table = data.get();
    if (PyObject* tool = get(data.get(), "tool")) {
      if (!PyDict_Check(tool)) throw Decline{};
      PyObject* own = get(tool, "lazyexec");
      if (own != nullptr) table = own;
    }
    if (!PyDict_Check(table)) throw Decline{};
    return {Ref::borrow(table), py::str(explicit_path)};
  }
  std::string dir = getcwd_or_decline();  // already canonical (the kernel resolves it)
  for (;;) {
    std::string candidate = join(dir, "pyproject.toml");
    if (is_file(candidate, &st)) {
      auto text = read_file(candidate.c_str());
      if (!text || text->find("[tool.lazyexec") == std::string::npos) return {empty, Ref::borrow(Py_None)};
      Ref data = parsed_toml(candidate, st, cache);
      PyObject* tool = get(data.get(), "tool");
      if (tool == nullptr) return {empty, Ref::borrow(Py_None)};
      if (!PyDict_Check(tool)) throw Decline{};
      PyObject* table = get(tool, "lazyexec");
      if (table == nullptr) return {empty, Ref::borrow(Py_None)};
      if (!PyDict_Check(table)) throw Decline{};
      return {Ref::borrow(table), py::str(candidate)};
    }
    std::string parent = dirname(dir);
    if (parent == dir) return {empty, Ref::borrow(Py_None)};
    dir = parent;
  }
}

bool one_of(PyObject* v, std::initializer_list<const char*> allowed) {
  if (!PyUnicode_Check(v)) return false;
  for (const char* a : allowed)
    if (PyUnicode_CompareWithASCIIString(v, a) == 0) return true;
  return false;
}

const char* const kListKeys[] = {"include", "exclude", "never", "pure", "pure_bases", "pure_metaclasses",
                                 "eager_imports"};

// The keys config.from_table() accepts, with valid values; anything else
// declines, so that the Python layer reports it.
void validate(PyObject* table) {
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(table, &pos, &key, &value)) {
    if (one_of(key, {"mode"})) {
      if (!one_of(value, {"marked", "all"})) throw Decline{};
    } else if (one_of(key, {"defer"})) {
      if (!one_of(value, {"all", "imports"})) throw Decline{};
    } else if (one_of(key, {"build"})) {
      if (!one_of(value, {"background", "inline", "off"})) throw Decline{};
    } else if (one_of(key, {"settle_complete", "usage_profile"})) {
      if (!PyBool_Check(value)) throw Decline{};
    } else if (one_of(key, {"settle_threshold"})) {
      if (!PyLong_CheckExact(value) || PyLong_AsLong(value) < 0) {
        PyErr_Clear();
        throw Decline{};
      }
    } else if (one_of(key, {"include", "exclude", "never", "pure", "pure_bases", "pure_metaclasses",
                            "eager_imports"})) {
      if (!PyList_Check(value) && !PyTuple_Check(value)) throw Decline{};
      for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(value); ++i)
        if (!PyUnicode_Check(PySequence_Fast_GET_ITEM(value, i))) throw Decline{};
    } else {
      throw Decline{};
    }
  }
}

Ref tuple_of(PyObject* table, const char* key) {
  PyObject* v = get(table, key);
  return v ? py::check(PySequence_Tuple(v)) : py::check(PyTuple_New(0));
}

// The never-lazy set as importer._never_lazy() reads it: the knowledge
// base's entries from their small cache (stamped with knowledge.toml's
// mtime and size), plus the configuration's `never` and `eager_imports`.
struct NeverLazy {
  Ref names;
  std::string knowledge_fingerprint;  // store.knowledge_fingerprint(): knowledge.toml's bytes hashed
};

// The never-lazy cache's tuple (mtime_ns, size, names, fingerprint) made
// from knowledge.toml itself, without a TOML parser (the top-level
// never_lazy array only), and written for the next start as
// importer._kb_never_lazy() writes it. Declines when the file is not in that
// simple form: the Python layer parses it.
Ref never_lazy_from(const std::string& kb_file, const std::string& cache_file) {
  struct stat st;
  auto raw = read_file(kb_file.c_str());
  if (!raw || ::stat(kb_file.c_str(), &st) != 0) throw Decline{};
  auto names = analyze::never_lazy_entries(*raw);
  if (!names) throw Decline{};
  Ref list = py::check(PyList_New(0));
  for (const auto& n : *names) {
    Ref item = py::str(n);
    if (PyList_Append(list.get(), item.get()) < 0) throw py::PyError{};
  }
  long long mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  Ref entry = py::check(Py_BuildValue("(LLOs)", mtime_ns, (long long)st.st_size, list.get(), fingerprint(*raw).c_str()));
  Ref data = py::check(PyMarshal_WriteObjectToString(entry.get(), Py_MARSHAL_VERSION));
  if (make_dirs(dirname(cache_file)))  // not cached: no harm
    write_atomic(cache_file, std::string_view(PyBytes_AS_STRING(data.get()), (size_t)PyBytes_GET_SIZE(data.get())));
  return entry;
}

NeverLazy never_lazy(const std::string& extension, const std::string& cache, PyObject* never, PyObject* eager_imports) {
  std::string kb_file = join(dirname(extension), "analyze/knowledge.toml");
  struct stat st;
  if (!is_file(kb_file, &st)) throw Decline{};
  std::string cache_file = join(cache, "never-lazy-" + fingerprint(kb_file) + ".marshal");
  Ref cached;
  try {
    cached = unmarshal_file(cache_file);
  } catch (const Decline&) {
    cached = never_lazy_from(kb_file, cache_file);  // a first start after an install
  }
  if (!PyTuple_Check(cached.get()) || PyTuple_GET_SIZE(cached.get()) != 4 ||
      !PyUnicode_Check(PyTuple_GET_ITEM(cached.get(), 3)))
    throw Decline{};
  long long mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  long long m = PyLong_AsLongLong(PyTuple_GET_ITEM(cached.get(), 0));
  long long s = PyLong_AsLongLong(PyTuple_GET_ITEM(cached.get(), 1));
  PyObject* kb = PyTuple_GET_ITEM(cached.get(), 2);
  if (PyErr_Occurred()) {
    PyErr_Clear();
    throw Decline{};
  }
  if (m != mtime_ns || s != (long long)st.st_size || !PyList_Check(kb)) throw Decline{};
  Ref out = py::check(PySequence_List(kb));
  for (PyObject* extra : {never, eager_imports})
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(extra); ++i)
      if (PyList_Append(out.get(), PyTuple_GET_ITEM(extra, i)) < 0) throw py::PyError{};
  return {out, py::utf8(PyTuple_GET_ITEM(cached.get(), 3))};
}

// The .pth line loads the extension with _imp.create_dynamic() alone (the
// cheapest way in); it gets what importlib's ExtensionFileLoader would have
// given it: its place in sys.modules, __spec__, __loader__, __package__.
std::string register_extension(PyObject* module, const char* name) {
  PyObject* file = PyModule_GetFilenameObject(module);
  if (file == nullptr) {
    PyErr_Clear();
    throw Decline{};
  }
  Ref path = Ref::steal(file);
  PyObject* modules = PyImport_GetModuleDict();
  Ref current = Ref::steal(PyObject_GetAttrString(module, "__spec__"));
  PyErr_Clear();
  if (PyDict_GetItemString(modules, name) != module || !current || current.get() == Py_None) {
    PyObject* bootstrap = PyDict_GetItemString(modules, "_frozen_importlib");
    PyObject* external = PyDict_GetItemString(modules, "_frozen_importlib_external");
    if (bootstrap == nullptr || external == nullptr) throw Decline{};
    Ref loader = py::check(PyObject_CallMethod(external, "ExtensionFileLoader", "sO", name, path.get()));
    Ref spec_class = py::check(PyObject_GetAttrString(bootstrap, "ModuleSpec"));
    Ref args = py::check(Py_BuildValue("(sO)", name, loader.get()));
    Ref kwargs = py::check(Py_BuildValue("{sO}", "origin", path.get()));
    Ref spec = py::check(PyObject_Call(spec_class.get(), args.get(), kwargs.get()));
    if (PyObject_SetAttrString(spec.get(), "has_location", Py_True) < 0 ||
        PyObject_SetAttrString(module, "__spec__", spec.get()) < 0 ||
        PyObject_SetAttrString(module, "__loader__", loader.get()) < 0 ||
        PyModule_AddStringConstant(module, "__package__", "lazyexec") < 0 ||
        PyDict_SetItemString(modules, name, module) < 0)
      throw py::PyError{};
  }
  return py::utf8(path.get());
}

// importer.installed_index(): (opted, never) of the installed distributions
// that opted in (docs/package-opt-in.md), or empty tuples when there is no
// index or a site-packages directory it covers changed since it was built.
std::pair<Ref, Ref> installed_index(const std::string& cache) {
  Ref none = py::check(PyTuple_New(0));
  PyObject* prefix = PySys_GetObject("prefix");
  PyObject* impl = PySys_GetObject("implementation");
  if (prefix == nullptr || !PyUnicode_Check(prefix) || impl == nullptr) throw Decline{};
  Ref tag = Ref::steal(PyObject_GetAttrString(impl, "cache_tag"));
  if (!tag) throw py::PyError{};
  std::string key = py::utf8(prefix) + std::string("\0", 1) + (tag.get() == Py_None ? "" : py::utf8(tag.get()));
  std::string path = join(cache, "installed-" + fingerprint(key) + ".marshal");
  // Opened directly (no access() first: one system call fewer when it is there).
  auto data = read_file(path.c_str());
  if (!data) return {none, none};  // none, or unreadable: not used, as the Python layer does
  Ref index;
  try {
    index = unmarshal_bytes(*data);
  } catch (const Decline&) {
    return {none, none};  // damaged: not used, as the Python layer does
  }
  // (version, ((directory, mtime_ns), ...), opted, never): see
  // importer/distributions.py, which writes it.
  PyObject* ix = index.get();
  if (!PyTuple_Check(ix) || PyTuple_GET_SIZE(ix) < 4 || !PyLong_CheckExact(PyTuple_GET_ITEM(ix, 0)) ||
      PyLong_AsLong(PyTuple_GET_ITEM(ix, 0)) != 1)
    return {none, none};
  Ref stamps = Ref::steal(PySequence_Fast(PyTuple_GET_ITEM(ix, 1), "stamps"));
  if (!stamps) {
    PyErr_Clear();
    return {none, none};
  }
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(stamps.get()); ++i) {
    PyObject* entry = PySequence_Fast_GET_ITEM(stamps.get(), i);
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(entry, 0)))
      return {none, none};
    struct stat st;
    if (::stat(py::utf8(PyTuple_GET_ITEM(entry, 0)).c_str(), &st) != 0) return {none, none};
    long long mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    long long stamp = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 1));
    if (PyErr_Occurred()) PyErr_Clear();
    if (stamp != mtime_ns) throw Decline{};  // stale: the Python layer has it rebuilt after exit
  }
  return {Ref::borrow(PyTuple_GET_ITEM(ix, 2)), Ref::borrow(PyTuple_GET_ITEM(ix, 3))};
}

// profile._is_word(): an ASCII letter, then letters, digits, '_' and '-'.
bool is_word(const std::string& a) {
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (a.empty() || !letter(a[0])) return false;
  for (char c : a)
    if (!letter(c) && !(c >= '0' && c <= '9') && c != '_' && c != '-') return false;
  return true;
}

// profile.usage(): the shape of a command line (a first positional that is
// not a word, a file or other value, is left out).
std::string usage(const std::vector<std::string>& args, size_t from) {
  std::string options, first;
  size_t positionals = 0;
  for (size_t i = from; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!a.empty() && a[0] == '-') {
      options += (options.empty() ? "" : " ") + a.substr(0, a.find('='));
    } else {
      if (positionals++ == 0 && is_word(a)) first = a;
    }
  }
  return std::string("\0", 1) + options + std::string("\0", 1) + first + std::string("\0", 1) +
         std::to_string(positionals);
}

// profile.program_identity() from sys.orig_argv.
std::string program_identity() {
  if (!named_program.empty()) return named_program;
  PyObject* orig = PySys_GetObject("orig_argv");  // borrowed
  if (orig == nullptr || !PyList_Check(orig)) throw Decline{};
  std::vector<std::string> args;
  for (Py_ssize_t i = 1; i < PyList_GET_SIZE(orig); ++i) {
    PyObject* item = PyList_GET_ITEM(orig, i);
    if (!PyUnicode_Check(item)) throw Decline{};
    Py_ssize_t n;
    const char* s = PyUnicode_AsUTF8AndSize(item, &n);
    if (s == nullptr) {  // undecodable bytes (surrogates): the Python layer handles them
      PyErr_Clear();
      throw Decline{};
    }
    args.emplace_back(s, (size_t)n);
  }
  for (size_t i = 0; i < args.size();) {
    const std::string& a = args[i];
    if (a == "-c") return "-c" + usage(args, i + 2);
    if (a == "-m" && i + 1 < args.size()) return "-m " + args[i + 1] + usage(args, i + 2);
    if (a.size() > 2 && a.compare(0, 2, "-m") == 0) return "-m " + a.substr(2) + usage(args, i + 1);
    if (a == "-X" || a == "-W" || a == "--check-hash-based-pycs") {
      i += 2;
      continue;
    }
    if (!a.empty() && a[0] == '-' && a != "-") {
      ++i;
      continue;
    }
    std::string path = a;
    if (path.empty() || path[0] != '/') path = join(getcwd_or_decline(), path);
    return normpath(path) + usage(args, i + 1);
  }
  return "-";
}

std::string repr(PyObject* o) {
  Ref r = py::check(PyObject_Repr(o));
  return py::utf8(r.get());
}

double now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

// The modules this program's usage profile loads eagerly (profile.load()).
// Returns (profile path or None, {module: expiry}).
std::pair<Ref, Ref> usage_profile(PyObject* table, const std::string& cache, const std::string& plan_key_repr, PyObject* include,
                                  PyObject* exclude) {
  Ref known = py::check(PyDict_New());
  std::string setting = env("LAZYEXEC_PROFILE");
  bool enabled = setting == "1" || (setting != "0" && get(table, "usage_profile") != Py_False);
  if (!enabled) return {Ref::borrow(Py_None), known};
  std::string program = program_identity();
  if (program[0] == '-') program += std::string("\0", 1) + getcwd_or_decline();
  std::string ident = program + std::string("\0", 1) + plan_key_repr + std::string("\0", 1) + repr(include) +
                      std::string("\0", 1) + repr(exclude);
  std::string path = join(join(cache, "profiles"), fingerprint(ident) + ".profile");
  auto bytes = read_file(path.c_str());
  if (!bytes && errno != ENOENT) throw Decline{};  // unreadable: the Python layer says why
  if (bytes) {
    Ref data = unmarshal_bytes(*bytes);
    PyObject* eager = PyDict_Check(data.get()) ? get(data.get(), "eager") : nullptr;
    PyObject* version = PyDict_Check(data.get()) ? get(data.get(), "version") : nullptr;
    if (eager == nullptr || !PyDict_Check(eager) || version == nullptr || !PyLong_CheckExact(version) ||
        PyLong_AsLong(version) != 1)
      throw Decline{};  // damaged: the Python layer warns and rewrites it
    double t = now();
    PyObject *name, *expiry;
    Py_ssize_t pos = 0;
    while (PyDict_Next(eager, &pos, &name, &expiry))
      if (PyFloat_CheckExact(expiry) && PyFloat_AS_DOUBLE(expiry) > t && PyDict_SetItem(known.get(), name, expiry) < 0)
        throw py::PyError{};
  }
  return {py::str(path), known};
}

// profiles/<program>.profile -> profiles/<program>.marks (profile.marks_path()).
std::string marks_path(const std::string& profile_path) {
  constexpr std::string_view suffix = ".profile";
  std::string stem = profile_path.size() > suffix.size() ? profile_path.substr(0, profile_path.size() - suffix.size()) : profile_path;
  return stem + ".marks";
}

// The pending exception's text, the exception cleared: for a warning that
// replaces it.
std::string take_error_text() {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  Ref text = value ? Ref::steal(PyObject_Str(value)) : Ref();
  PyErr_Clear();
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  return text ? py::utf8(text.get()) : std::string("unknown error");
}

#ifdef LAZYEXEC_BOOT_MODULE
// The start-up extension holds activation and the finder only. The first
// module the finder claims (or the first import of logging, which the
// runtime patches) loads the full extension by its path, hands it what
// activation decided (warm_start) and gives the finder its loader factory:
// a program that loads nothing lazily never maps the runtime, the analyzer
// or the compiler.
struct Handover {
  std::string full_path;  // the full extension, beside this one
  std::string key, cache;
  long threshold = 10000;
  bool settle_now = false, inline_build = false;
  int complete = -1;
  // Owned and never released: a static destructor runs after the
  // interpreter is gone, when a decref could free into it.
  PyObject* profile_path = nullptr;
  PyObject* known = nullptr;
};
Handover handover;
PyObject* full_module = nullptr;  // the full extension once loaded (strong)
bool full_failed = false;
PyObject* logging_seen = nullptr;  // logging modules loaded before it (a list, owned)

PyObject* finder_of_state();

// _lazyexec_boot.cpython-311-x86_64-linux-gnu.so -> _lazyexec.cpython-311-x86_64-linux-gnu.so
std::string full_extension_path(const std::string& boot_path, struct stat* st) {
  std::string dir = dirname(boot_path);
  std::string base = boot_path.substr(dir.size() + (dir.size() < boot_path.size() ? 1 : 0));
  constexpr std::string_view prefix = "_lazyexec_boot";
  if (base.compare(0, prefix.size(), prefix) != 0) throw Decline{};
  std::string full = join(dir, "_lazyexec" + base.substr(prefix.size()));
  if (!is_file(full, st)) throw Decline{};  // its stat stamps the artifact key too
  return full;
}

PyObject* load_full() {
  if (full_module != nullptr) return full_module;
  if (full_failed) return nullptr;
  try {
    PyObject* modules = PyImport_GetModuleDict();
    Ref module;
    if (PyObject* loaded = PyDict_GetItemString(modules, "lazyexec._lazyexec")) {
      module = Ref::borrow(loaded);
    } else {
      Ref imp = py::check(PyImport_ImportModule("_imp"));
      PyObject* impl = PySys_GetObject("implementation");
      if (impl == nullptr) throw py::PyError{};
      Ref ns_type = Ref::borrow((PyObject*)Py_TYPE(impl));  // types.SimpleNamespace
      Ref kwargs = py::check(Py_BuildValue("{sssN}", "name", "lazyexec._lazyexec", "origin",
                                           py::str(handover.full_path).release()));
      Ref no_args = py::check(PyTuple_New(0));
      Ref spec = py::check(PyObject_Call(ns_type.get(), no_args.get(), kwargs.get()));
      module = py::check(PyObject_CallMethod(imp.get(), "create_dynamic", "O", spec.get()));
      try {
        register_extension(module.get(), "lazyexec._lazyexec");
      } catch (const Decline&) {
        throw py::PyError{};
      }
    }
    Ref key = py::check(PyBytes_FromStringAndSize(handover.key.data(), (Py_ssize_t)handover.key.size()));
    Ref r = py::check(PyObject_CallMethod(module.get(), "warm_start", "(OslOOOOi)", key.get(), handover.cache.c_str(),
                                          handover.threshold, handover.settle_now ? Py_True : Py_False,
                                          handover.inline_build ? Py_True : Py_False, handover.profile_path,
                                          handover.known, handover.complete));
    full_module = module.release();
    // logging loaded before the runtime: its patch points now; later imports
    // of it get the full extension's watch.
    if (logging_seen != nullptr)
      for (Py_ssize_t i = 0; i < PyList_GET_SIZE(logging_seen); ++i) {
        Ref done = py::check(PyObject_CallMethod(full_module, "patch_logging", "O", PyList_GET_ITEM(logging_seen, i)));
      }
    Ref callback = py::check(PyObject_GetAttrString(full_module, "logging_found"));
    if (PyObject* finder = finder_of_state())
      for (const char* name : {"logging", "logging.config"}) {
        Ref r = py::check(PyObject_CallMethod(finder, "watch", "sO", name, callback.get()));
      }
    return full_module;
  } catch (const py::PyError&) {
    // Never stop an import: say it once, and the finder claims nothing more.
    full_failed = true;
    std::string why = take_error_text();
    if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "lazyexec: cannot load %s (%s); modules load eagerly",
                         handover.full_path.c_str(), why.c_str()) < 0)
      PyErr_Clear();
    return nullptr;
  }
}

// Whether the claimed module's artifact is certainly absent or stale, from
// the headers alone: then it takes the cold path here and the full
// extension (2 MiB to map, for a first start that runs none of it) stays
// unloaded. A current or damaged artifact, or a source that cannot be
// stat'ed, is the full extension's to read or to warn about.
bool artifact_missing(PyObject* source) {
  static PyObject* magic = nullptr;  // importlib's MAGIC_NUMBER, kept for the process
  if (magic == nullptr) {
    PyObject* external = PyDict_GetItemString(PyImport_GetModuleDict(), "_frozen_importlib_external");
    if (external == nullptr) return false;
    magic = py::check(PyObject_GetAttrString(external, "MAGIC_NUMBER")).release();
  }
  if (!PyBytes_Check(magic) || PyBytes_GET_SIZE(magic) != 4 || handover.key.size() != 16) return false;
  struct stat st;
  if (!PyUnicode_Check(source) || !is_file(py::utf8(source), &st)) return false;
  Expected want{(uint16_t)kArtifactFormat, std::string_view(PyBytes_AS_STRING(magic), 4),
                (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec, (uint64_t)st.st_size,
                handover.key};
  for (const std::string& p : artifact_locations(source, handover.key, handover.cache, bytecode_writing_off())) {
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      return false;
    }
    char header[kHeaderSize];
    ssize_t n = ::pread(fd, header, sizeof header, 0);
    ::close(fd);
    const char* problem = nullptr;
    if (n < 0 || check_header(std::string_view(header, (size_t)n), want, &problem) != Verdict::Stale) return false;
  }
  return true;
}

// The finder's loader factory until the full extension is loaded: a module
// without an artifact loads eagerly through the cold path, else the full
// extension is loaded and its loader made; None (the module loads eagerly)
// if it cannot be.
PyObject* first_claim(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs == 2 && !handover.inline_build) {
    bool missing = false;
    try {
      missing = artifact_missing(args[1]);
    } catch (const py::PyError&) {
      PyErr_Clear();  // a path it cannot name: the full extension decides
    }
    if (missing) {
      PyObject* loader = cold_loader(args[0], args[1], handover.cache);
      if (loader != nullptr || PyErr_Occurred()) return loader;
    }
  }
  PyObject* full = load_full();
  if (full == nullptr) Py_RETURN_NONE;
  Ref factory = Ref::steal(PyObject_GetAttrString(full, "warm_loader"));
  if (!factory) return nullptr;
  if (PyObject* finder = finder_of_state()) finder_set_make_loader(finder, factory.get());
  return PyObject_Vectorcall(factory.get(), args, (size_t)nargs, nullptr);
}

// logging's patch points (runtime/loggers.cpp) run pending getLogger units
// before logging is configured; there are none until the full extension
// loads. So a logging module loaded before it is only noted, once its code
// has run, and patched when the full extension loads (or at once if it
// loaded meanwhile: the first claim may come from logging's own imports).
PyObject* logging_ran(PyObject*, PyObject* module) {
  if (full_module != nullptr) return PyObject_CallMethod(full_module, "patch_logging", "O", module);
  if (logging_seen == nullptr && (logging_seen = PyList_New(0)) == nullptr) return nullptr;
  if (PyList_Append(logging_seen, module) < 0) return nullptr;
  Py_RETURN_NONE;
}
PyMethodDef logging_ran_def = {"logging_ran", logging_ran, METH_O, nullptr};

// The finder's watch on logging until the full extension is loaded.
PyObject* logging_found_first(PyObject*, PyObject* spec) {
  if (full_module != nullptr) return PyObject_CallMethod(full_module, "logging_found", "O", spec);
  try {
    Ref loader = py::check(PyObject_GetAttrString(spec, "loader"));
    Ref after = py::check(PyCFunction_New(&logging_ran_def, nullptr));
    if (runtime::after_exec(loader.get(), after.get()) < 0) throw py::PyError{};
  } catch (const py::PyError&) {
    return nullptr;
  }
  return Py_NewRef(spec);
}

}  // namespace

PyObject* cold_loader_of_boot(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "cold_loader(fullname: str, path: str)");
    return nullptr;
  }
  PyObject* loader = cold_loader(args[0], args[1], handover.cache);
  if (loader == nullptr && !PyErr_Occurred()) Py_RETURN_NONE;
  return loader;
}

namespace {
PyMethodDef make_loader_def = {"boot_make_loader", (PyCFunction)(void (*)(void))first_claim, METH_FASTCALL,
                               "make_loader(fullname, path): loads the full extension, then its loader."};
PyMethodDef logging_found_def = {"logging_found", logging_found_first, METH_O,
                                 "logging_found(spec) -> spec: loads the full extension, then its patch."};
#else
PyMethodDef make_loader_def = {"boot_make_loader", (PyCFunction)(void (*)(void))make_warm_loader, METH_FASTCALL,
                               "make_loader(fullname, path): lazyexec's loader."};
#endif

// The version, artifact format and plan rules the artifact key is made of
// (lazyexec.__version__, store.FORMAT, store.PLAN_RULES; a test checks that
// this key is the Python layer's).
constexpr const char* kVersion = "0.1.0";
constexpr const char* kPlanRules = "plan rules 6";

// store.key_for(knowledge_hash(config)).
std::string artifact_key(const struct stat& st, const std::string& knowledge_fingerprint, const std::string& plan_key_repr) {
  std::string raw = knowledge_fingerprint + plan_key_repr + kPlanRules;
  long long mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  std::string text = std::string(kVersion) + ":" + std::to_string(kArtifactFormat) + ":" + fingerprint(raw) + ":" +
                     std::to_string(mtime_ns) + ":" + std::to_string((long long)st.st_size);
  return fingerprint(text);
}

// runtime.settle_policy(): (threshold, settle right after import), and the
// process-wide complete_on_settle (-1: the runtime's default).
int complete_on_settle = -1;

std::pair<long, bool> settle_policy(PyObject* table) {
  std::string complete = env("LAZYEXEC_SETTLE_COMPLETE");
  int value = -1;  // the runtime's default
  if (complete == "0" || complete == "1") {
    value = complete == "1";
  } else if (PyObject* flag = get(table, "settle_complete"); flag != nullptr && PyBool_Check(flag)) {
    value = flag == Py_True;
  }
  complete_on_settle = value;
  std::string setting = env("LAZYEXEC_SETTLE");
  if (setting == "never") return {-1, false};
  if (setting == "now") return {10000, true};
  if (!setting.empty() && setting.find_first_not_of("0123456789") == std::string::npos && setting.size() < 18)
    return {std::stol(setting), false};
  PyObject* threshold = get(table, "settle_threshold");
  return {threshold != nullptr ? PyLong_AsLong(threshold) : 10000, false};
}

// LAZYEXEC_IMAGE: the image's finder goes ahead of lazyexec's (which is
// in place), serving the modules the usage profile says were used whole
// eagerly, as lazyexec.image.activate() does. An image the C++ side does
// not take (damaged, foreign, another -O level, a bad LAZYEXEC_IMAGE_CHECK)
// goes to that function, which says why; a failure here is a warning, and
// modules import without the image.
void activate_image(PyObject* full, const std::string& path, PyObject* known, long threshold, bool settle_now,
                    PyObject* watchers) {
  try {
    Ref p = py::str(path);
    Ref image = py::check(PyObject_CallMethod(full, "image_boot_open", "O", p.get()));
    if (image.get() == Py_None) {
      Ref stage = py::check(PyImport_ImportModule("lazyexec.image"));
      Ref r = py::check(PyObject_CallMethod(stage.get(), "activate", "O", p.get()));
      return;
    }
    Ref finder = py::check(PyObject_CallMethod(full, "image_boot_install", "OOlOO", image.get(), known, threshold,
                                               settle_now ? Py_True : Py_False, watchers));
  } catch (const py::PyError&) {
    std::string why = take_error_text();
    if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "lazyexec: ignoring image %s (%s); modules import normally",
                         path.c_str(), why.c_str()) < 0)
      PyErr_Clear();
  }
}

PyObject* activate(PyObject* module) {
  // Tools that record (LAZYEXEC_WHY, LAZYEXEC_STATS) and a disabled cache
  // go through the Python layer.
  if (!env("LAZYEXEC_WHY").empty() || env("LAZYEXEC_STATS") == "1") throw Decline{};
  std::string caching = env("LAZYEXEC_CACHE");
  for (auto& c : caching) c = (char)std::tolower((unsigned char)c);
  if (caching == "off" || caching == "0" || caching == "no") throw Decline{};
  PyObject* modules = PyImport_GetModuleDict();
  if (PyDict_GetItemString(modules, "logging") || PyDict_GetItemString(modules, "logging.config")) throw Decline{};

  cwd_seen.clear();
  struct stat extension_stat;
#ifdef LAZYEXEC_BOOT_MODULE
  // The artifact key and knowledge.toml belong to the full extension.
  std::string extension = full_extension_path(register_extension(module, "lazyexec._lazyexec_boot"), &extension_stat);
#else
  std::string extension = register_extension(module, "lazyexec._lazyexec");
  if (::stat(extension.c_str(), &extension_stat) != 0) throw Decline{};
#endif
  std::string cache = cache_dir();
  Table config = load_config(cache);
  validate(config.table.get());
  PyObject* table = config.table.get();
  PyObject* mode = get(table, "mode");
  bool all_mode = mode != nullptr && PyUnicode_CompareWithASCIIString(mode, "all") == 0;
  Ref include = tuple_of(table, "include"), exclude = tuple_of(table, "exclude"), never = tuple_of(table, "never");
  Ref eager_imports = tuple_of(table, "eager_imports");
  auto [never_set, knowledge_fingerprint] = never_lazy(extension, cache, never.get(), eager_imports.get());
  auto [opted, opted_never] = installed_index(cache);
  for (Py_ssize_t i = 0; PySequence_Check(opted_never.get()) && i < PySequence_Size(opted_never.get()); ++i) {
    Ref name = py::check(PySequence_GetItem(opted_never.get(), i));
    if (PyList_Append(never_set.get(), name.get()) < 0) throw py::PyError{};
  }

  // Config.plan_key(): (mode, defer, never, pure, pure_bases, pure_metaclasses, eager_imports).
  Ref mode_str = mode ? Ref::borrow(mode) : py::str("marked");
  PyObject* defer = get(table, "defer");
  Ref defer_str = defer ? Ref::borrow(defer) : py::str("all");
  Ref plan_key = py::check(PyTuple_Pack(7, mode_str.get(), defer_str.get(), never.get(), tuple_of(table, "pure").get(),
                                        tuple_of(table, "pure_bases").get(), tuple_of(table, "pure_metaclasses").get(),
                                        eager_imports.get()));
  std::string plan_key_repr = repr(plan_key.get());
  auto [profile_path, known] = usage_profile(table, cache, plan_key_repr, include.get(), exclude.get());

  // The loader's plan key has the opted-in distributions' `never` too
  // (importer.with_installed()).
  Ref key_never = py::check(PySequence_List(never.get()));
  for (Py_ssize_t i = 0; PySequence_Check(opted_never.get()) && i < PySequence_Size(opted_never.get()); ++i) {
    Ref name = py::check(PySequence_GetItem(opted_never.get(), i));
    int present = PySequence_Contains(key_never.get(), name.get());
    if (present < 0) throw py::PyError{};
    if (!present && PyList_Append(key_never.get(), name.get()) < 0) throw py::PyError{};
  }
  // The plan key itself unless opted-in distributions added `never` entries.
  std::string loader_plan_key_repr = plan_key_repr;
  if (PyList_GET_SIZE(key_never.get()) != PyTuple_GET_SIZE(never.get())) {
    Ref key_never_tuple = py::check(PySequence_Tuple(key_never.get()));
    Ref loader_plan_key = py::check(PyTuple_Pack(7, mode_str.get(), defer_str.get(), key_never_tuple.get(),
                                                 tuple_of(table, "pure").get(), tuple_of(table, "pure_bases").get(),
                                                 tuple_of(table, "pure_metaclasses").get(), eager_imports.get()));
    loader_plan_key_repr = repr(loader_plan_key.get());
  }
  std::string key = artifact_key(extension_stat, knowledge_fingerprint, loader_plan_key_repr);
  auto [threshold, settle_now] = settle_policy(table);

  Ref loader_factory = py::check(PyCFunction_New(&make_loader_def, nullptr));
  // Mode "marked": the marker verdicts are kept beside the usage profile.
  Ref marks = all_mode || profile_path.get() == Py_None ? Ref::borrow(Py_None) : py::str(marks_path(py::utf8(profile_path.get())));
  Ref args = py::check(Py_BuildValue("(OOOOOOOOO)", all_mode ? Py_True : Py_False, never_set.get(), include.get(),
                                     exclude.get(), known.get(), loader_factory.get(), Py_None, opted.get(), marks.get()));
  Ref finder = py::check(PyObject_Call(finder_type(), args.get(), nullptr));

  // Just before PathFinder, as importer.activate() places it.
  PyObject* meta_path = PySys_GetObject("meta_path");
  PyObject* external = PyDict_GetItemString(modules, "_frozen_importlib_external");
  if (meta_path == nullptr || !PyList_Check(meta_path) || external == nullptr) throw Decline{};
  Ref path_finder = py::check(PyObject_GetAttrString(external, "PathFinder"));
  Py_ssize_t at = PyList_GET_SIZE(meta_path);
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(meta_path); ++i)
    if (PyList_GET_ITEM(meta_path, i) == path_finder.get()) {
      at = i;
      break;
    }

#ifdef LAZYEXEC_BOOT_MODULE
  Ref watch_cb = py::check(PyCFunction_New(&logging_found_def, nullptr));
#else
  Ref watch_cb = py::check(PyObject_GetAttrString(module, "logging_found"));
#endif
  for (const char* name : {"logging", "logging.config"}) {
    Ref r = py::check(PyObject_CallMethod(finder.get(), "watch", "sO", name, watch_cb.get()));
  }
  // Compiled regular expressions kept beside the usage profile (runtime/patterns.cpp).
  if (runtime::watch_patterns(finder.get(), profile_path.get()) < 0) throw py::PyError{};
  Ref key_bytes = py::check(PyBytes_FromStringAndSize(key.data(), (Py_ssize_t)key.size()));
  Ref boot = py::check(Py_BuildValue("{sOsOsOsOsOsOsO}", "finder", finder.get(), "table", table, "source",
                                     config.source.get(), "profile", profile_path.get(), "known", known.get(),
                                     "installed_never", opted_never.get(), "key", key_bytes.get()));
  // importlib_bootstrap.build_mode(): LAZYEXEC_BUILD, else the configuration's `build`.
  std::string build = env("LAZYEXEC_BUILD");
  if (build != "background" && build != "inline" && build != "off") {
    PyObject* configured = get(table, "build");
    build = configured ? py::utf8(configured) : "background";
  }
#ifdef LAZYEXEC_BOOT_MODULE
  handover = {extension, key, cache, threshold, settle_now, build == "inline", complete_on_settle,
              Py_NewRef(profile_path.get()), Py_NewRef(known.get())};
#else
  if (complete_on_settle >= 0) runtime::complete_on_settle = complete_on_settle == 1;
  if (runtime::install_dynamic_eval() < 0) throw py::PyError{};
  if (set_warm_settings({key, cache, threshold, settle_now, build == "inline", Py_NewRef(profile_path.get()),
                         Py_NewRef(known.get())}) < 0)
    throw py::PyError{};
#endif
  if (PyList_Insert(meta_path, at, finder.get()) < 0) throw py::PyError{};
  Py_XSETREF(state, boot.release());
  if (std::string image = named_image.empty() ? env("LAZYEXEC_IMAGE") : named_image; !image.empty()) {
#ifdef LAZYEXEC_BOOT_MODULE
    PyObject* full = load_full();  // the image is read by the full extension; nullptr: it warned
#else
    PyObject* full = module;
#endif
    if (full != nullptr) {
      // The image's finder runs the patch points this one watches for.
      Ref watchers = py::check(PyObject_GetAttrString(finder.get(), "watchers"));
      activate_image(full, image, known.get(), threshold, settle_now, watchers.get());
    }
  }
  return finder.release();
}

#ifdef LAZYEXEC_BOOT_MODULE
PyObject* finder_of_state() { return state ? PyDict_GetItemString(state, "finder") : nullptr; }
#endif

}  // namespace

// boot(head, args): `lazyexec run`'s name for the program, head + usage(args).
std::string program_named(PyObject* head, PyObject* args) {
  auto text = [](PyObject* o) {
    Py_ssize_t n;
    const char* s = PyUnicode_Check(o) ? PyUnicode_AsUTF8AndSize(o, &n) : nullptr;
    if (s == nullptr) {  // not a str, or undecodable (surrogates): the Python layer names it
      PyErr_Clear();
      throw Decline{};
    }
    return std::string(s, (size_t)n);
  };
  if (!PyList_Check(args)) throw Decline{};
  std::vector<std::string> rest;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(args); ++i) rest.push_back(text(PyList_GET_ITEM(args, i)));
  std::string name = text(head) + usage(rest, 0);
  if (name.empty()) throw Decline{};
  return name;
}

PyObject* boot(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 0 && nargs != 2 && nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "boot() takes no arguments, or (program, args[, image])");
    return nullptr;
  }
  if (nargs == 3 && !PyUnicode_Check(args[2])) {
    PyErr_SetString(PyExc_TypeError, "boot(): image must be a str");
    return nullptr;
  }
  // Activated already, without that image: the Python layer serves it, as before.
  if (nargs == 3 && state != nullptr) Py_RETURN_NONE;
  if (state != nullptr) return Py_NewRef(PyDict_GetItemString(state, "finder"));
  // Activated already (by the Python layer, or by the other extension; a
  // venv's site runs .pth files twice): that finder stays the only one.
  if (PyObject* meta_path = PySys_GetObject("meta_path"); meta_path != nullptr && PyList_Check(meta_path))
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(meta_path); ++i)
      if (is_finder(PyList_GET_ITEM(meta_path, i)))
        return nargs == 3 ? Py_NewRef(Py_None) : Py_NewRef(PyList_GET_ITEM(meta_path, i));
  try {
    named_program = nargs >= 2 ? program_named(args[0], args[1]) : std::string();
    if (nargs == 3) {
      Py_ssize_t n;
      const char* image = PyUnicode_AsUTF8AndSize(args[2], &n);
      // Undecodable (surrogates), empty or with a NUL: the Python layer opens it and says why.
      if (image == nullptr || n == 0 || std::memchr(image, 0, (size_t)n) != nullptr) {
        PyErr_Clear();
        throw Decline{};
      }
      named_image.assign(image, (size_t)n);
    }
    PyObject* finder = activate(module);
    named_program.clear();
    named_image.clear();
    return finder;
  } catch (const Decline& d) {
    named_program.clear();
    named_image.clear();
    PyErr_Clear();
    if (env("LAZYEXEC_BOOT_TRACE") == "1") std::fprintf(stderr, "lazyexec: activation in C++ declined (boot.cpp:%d)\n", d.line);
  } catch (const py::PyError&) {
    named_program.clear();
    named_image.clear();
    // Never stop the interpreter's start: the Python layer tries, and reports.
    if (env("LAZYEXEC_BOOT_TRACE") == "1") PyErr_Print();
    PyErr_Clear();
  }
  if (nargs >= 2) Py_RETURN_NONE;  // `lazyexec run` activates through the Python layer itself
#ifdef LAZYEXEC_BOOT_MODULE
  // The .pth line is as short as it can be: the Python layer's activation
  // is called from here (its errors reach site, which prints them).
  Ref lazyexec = Ref::steal(PyImport_ImportModule("lazyexec"));
  if (!lazyexec) return nullptr;
  return PyObject_CallMethod(lazyexec.get(), "activate", nullptr);
#else
  Py_RETURN_NONE;
#endif
}

PyObject* start_up_extension() {
#ifndef LAZYEXEC_BOOT_MODULE
  if (state == nullptr) return PyDict_GetItemString(PyImport_GetModuleDict(), "lazyexec._lazyexec_boot");
#endif
  return nullptr;
}

PyObject* boot_state(PyObject*, PyObject*) {
  // Activation ran in the start-up extension: its state is the process's.
  if (PyObject* boot_module = start_up_extension()) return PyObject_CallMethod(boot_module, "boot_state", nullptr);
  return Py_NewRef(state ? state : Py_None);
}

#ifndef LAZYEXEC_BOOT_MODULE
PyObject* warm_start(PyObject*, PyObject* args) {
  PyObject *key, *profile_path, *known;
  const char* cache;
  long threshold;
  int settle_now, inline_build, complete;
  if (!PyArg_ParseTuple(args, "SslppOOi", &key, &cache, &threshold, &settle_now, &inline_build, &profile_path, &known,
                        &complete))
    return nullptr;
  if (complete >= 0) runtime::complete_on_settle = complete == 1;
  if (runtime::install_dynamic_eval() < 0) return nullptr;
  if (set_warm_settings({std::string(PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key)), cache, threshold,
                         settle_now != 0, inline_build != 0, Py_NewRef(profile_path), Py_NewRef(known)}) < 0)
    return nullptr;
  Py_RETURN_NONE;
}
#endif

}  // namespace lazyexec::importer
