// The stored artifact's reader (docs/artifact-format.md), on the warm path of
// every lazily loaded module: header checks, then one unmarshal of the plan.
#pragma once

#include <Python.h>

#include <cstdint>
#include <string_view>

#include "py/handle.h"

namespace lazyexec::importer {

inline constexpr size_t kHeaderSize = 44;  // "<4sHH4sQQ16s"

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

// Decodes one artifact's bytes. A Python error (memory) throws py::PyError;
// damaged bytes are Corrupt, never an exception.
Decoded decode(std::string_view data, const Expected& expected);

}  // namespace lazyexec::importer
