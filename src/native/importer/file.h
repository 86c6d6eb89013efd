// Whole-file reads for the import hook: one open, one fstat, one read.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>
#include <string_view>

namespace lazyexec::importer {

// The file's bytes, or nullopt when it cannot be opened or read (errno kept).
std::optional<std::string> read_file(const char* path);

// The file's bytes in this thread's reusable buffer (valid until the next
// call), or nullopt: for scans that keep nothing, without zero-filling a new
// string per file. `st` (optional) receives the open file's fstat.
std::optional<std::string_view> read_file_scratch(const char* path, struct stat* st = nullptr);

// Reads the file into `buffer` (grown as needed, only growth zero-fills):
// the length read, or nullopt. For callers that keep their own buffer.
std::optional<size_t> read_file_into(const char* path, std::string& buffer);

// Path arithmetic as posixpath does it (os.path.join of two parts,
// dirname, normpath): the C++ start-up path must name the same files as
// the Python layer.
std::string join(const std::string& a, std::string_view b);
std::string dirname(const std::string& p);
std::string normpath(const std::string& path);

// 16 hex digits of FNV-1a (64 bits): cache keys and file names on the
// start-up path without zlib or hashlib (the same digits as
// _lazyexec.fingerprint, which Python-side caches use).
std::string fingerprint(std::string_view data);

// mkdir -p: false with errno set when `dir` cannot be made a directory.
bool make_dirs(const std::string& dir);

// Lowercase hex digits of `bytes` random bytes (temporary and job names).
std::string random_hex(int bytes);

// Whether another process holds an flock on the file (created if missing):
// the background builder's lock, checked at exit without Python's fcntl.
bool lock_held(const std::string& path);

// Writes `data` to a unique temporary file beside `path`, then renames it
// over `path`: a reader never sees half a file (store.write_atomic()).
bool write_atomic(const std::string& path, std::string_view data);

}  // namespace lazyexec::importer
