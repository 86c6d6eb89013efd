// Whole-file reads for the import hook: one open, one fstat, one read.
#pragma once

#include <optional>
#include <string>

namespace lazyexec::importer {

// The file's bytes, or nullopt when it cannot be opened or read (errno kept).
std::optional<std::string> read_file(const char* path);

}  // namespace lazyexec::importer
