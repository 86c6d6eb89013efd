// The stored artifact's reader (docs/artifact-format.md), on the warm path of
// every lazily loaded module: header checks, then one unmarshal of the plan.
#pragma once

#include <Python.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "py/handle.h"

namespace lazyexec::importer {

inline constexpr size_t kHeaderSize = 52;  // "<4sHH4sQQ16sQ"
inline constexpr size_t kCheckAt = 44;     // u64: blob_hash of everything after the header (format 14)

struct Expected {
  uint16_t format;
  std::string_view pymagic;  // 4 bytes: the interpreter's bytecode magic
  uint64_t mtime_ns;
  uint64_t size;
  std::string_view key;  // 16 bytes
};

enum class Verdict { Plan, Stale, Corrupt };

struct Decoded {
  Verdict verdict;
  py::Ref plan;           // (units, steps) when Plan
  const char* problem{};  // why Corrupt
};

// The header's verdict alone (Plan: current, the payload not yet read).
// `problem` receives why when Corrupt.
Verdict check_header(std::string_view header, const Expected& expected, const char** problem);

// importlib's cache_from_source(source) (the .pyc path), `tag` being
// sys.implementation.cache_tag: in C++ except under sys.pycache_prefix.
std::string cache_from_source(PyObject* source, PyObject* tag);

// Where the artifact of the source at `source` may be, in the order a
// reader tries them (store.locations()): beside the .pyc (importlib's own
// cache_from_source, so PYTHONPYCACHEPREFIX and -O count), and in the cache
// directory as HASH.TAG[.opt-N].KEY8.lzx; the cache directory first when
// byte-code writing is off. Throws py::PyError.
std::vector<std::string> artifact_locations(PyObject* source, std::string_view key, const std::string& cache_dir,
                                            bool bytecode_off);
// The i-th (0 or 1) of those alone: a reader that finds a current artifact
// at the first does not compute the second.
std::string artifact_location(int i, PyObject* source, std::string_view key, const std::string& cache_dir,
                              bool bytecode_off);
// sys.dont_write_bytecode, read as the import system reads it.
bool bytecode_writing_off();

// Decodes one artifact's bytes: the header, then the check of everything
// after it (payload and trailer) before a byte of the payload is
// unmarshalled. A Python error (memory) throws py::PyError; damaged bytes
// are Corrupt, never an exception.
Decoded decode(std::string_view data, const Expected& expected);

}  // namespace lazyexec::importer
