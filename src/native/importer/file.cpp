#include "importer/file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace lazyexec::importer {

namespace {

// Reads the whole file into `data` from offset 0, growing it as needed (only
// growth zero-fills); returns the length read.
std::optional<size_t> read_into(const char* path, std::string& data, struct stat* stat_out = nullptr) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat own;
  struct stat& st = stat_out ? *stat_out : own;
  // One byte more than the size: the second read() sees end of file.
  if (::fstat(fd, &st) != 0) {
    st = {};
    st.st_size = -1;  // no stamp: nothing is remembered under it
  }
  size_t capacity = st.st_size > 0 ? (size_t)st.st_size + 1 : 65536;
  if (data.size() < capacity) data.resize(capacity);
  size_t length = 0;
  for (;;) {
    if (length == data.size()) data.resize(data.size() * 2);
    ssize_t n = ::read(fd, data.data() + length, data.size() - length);
    if (n < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      ::close(fd);
      errno = saved;
      return std::nullopt;
    }
    if (n == 0) break;
    length += (size_t)n;
    // A regular file read to its fstat size is read: no second read() to
    // see end of file (a system call per artifact on the start-up path).
    if (st.st_size > 0 && S_ISREG(st.st_mode) && length == (size_t)st.st_size) break;
  }
  ::close(fd);
  return length;
}

}  // namespace

std::optional<std::string> read_file(const char* path) {
  std::string data;
  auto length = read_into(path, data);
  if (!length) return std::nullopt;
  data.resize(*length);
  return data;
}

std::optional<size_t> read_file_into(const char* path, std::string& buffer) { return read_into(path, buffer); }

std::optional<std::string_view> read_file_scratch(const char* path, struct stat* st) {
  thread_local std::string buffer;
  auto length = read_into(path, buffer, st);
  if (!length) return std::nullopt;
  return std::string_view(buffer.data(), *length);
}

std::string fingerprint(std::string_view data) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ULL;
  char out[17];
  snprintf(out, sizeof out, "%016llx", (unsigned long long)h);
  return std::string(out, 16);
}

// os.path.join for two parts.
std::string join(const std::string& a, std::string_view b) {
  if (!b.empty() && b.front() == '/') return std::string(b);
  if (a.empty() || a.back() == '/') return a + std::string(b);
  return a + "/" + std::string(b);
}

// os.path.dirname (posix).
std::string dirname(const std::string& p) {
  size_t i = p.rfind('/');
  std::string head = i == std::string::npos ? "" : p.substr(0, i + 1);
  if (!head.empty() && head.find_first_not_of('/') != std::string::npos)
    while (!head.empty() && head.back() == '/') head.pop_back();
  return head;
}

// os.path.normpath (posix).
std::string normpath(const std::string& path) {
  if (path.empty()) return ".";
  int initial = path[0] == '/' ? 1 : 0;
  if (initial && path.compare(0, 2, "//") == 0 && path.compare(0, 3, "///") != 0) initial = 2;
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string comp = path.substr(start, end - start);
    start = end + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp != ".." || (!initial && parts.empty()) || (!parts.empty() && parts.back() == ".."))
      parts.push_back(comp);
    else if (!parts.empty())
      parts.pop_back();
  }
  std::string out(initial, '/');
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? "/" : "") + parts[i];
  return out.empty() ? "." : out;
}

bool make_dirs(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) return S_ISDIR(st.st_mode) || (errno = ENOTDIR, false);
  auto slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0 && !make_dirs(dir.substr(0, slash))) return false;
  return ::mkdir(dir.c_str(), 0777) == 0 || errno == EEXIST;
}

std::string random_hex(int bytes) {
  static std::random_device device;
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < bytes; ++i) {
    unsigned v = device() & 0xff;
    out += digits[v >> 4];
    out += digits[v & 15];
  }
  return out;
}

bool lock_held(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // drops a lock taken here
  return held;
}

bool write_atomic(const std::string& path, std::string_view data) {
  std::string tmp = join(dirname(path), ".lzx-" + std::to_string(::getpid()) + "-" + random_hex(6));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += (size_t)n;
  }
  bool closed = ::close(fd) == 0;
  if (done == data.size() && closed && ::rename(tmp.c_str(), path.c_str()) == 0) return true;
  ::unlink(tmp.c_str());
  return false;
}

}  // namespace lazyexec::importer
