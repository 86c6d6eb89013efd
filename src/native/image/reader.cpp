#include "image/reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace lazyexec::image {
namespace {

uint64_t le(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | (unsigned char)p[i];
  return v;
}

// [offset, offset + length) lies inside `size` (no overflow).
bool inside(uint64_t offset, uint64_t length, uint64_t size) { return offset <= size && length <= size - offset; }

std::string format_problem(const char* what, uint64_t a, uint64_t b) {
  return std::string(what) + " (" + std::to_string(a) + " vs " + std::to_string(b) + ")";
}

}  // namespace

uint64_t hash64(std::string_view data) {
  constexpr uint64_t kPrime = 0x100000001b3ULL * 0x9E3779B97F4A7C15ULL | 1;
  uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)data.size();
  const char* p = data.data();
  size_t n = data.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);  // the format is little endian; so are the machines we build for
    h = (h ^ w) * kPrime;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    h = (h ^ (unsigned char)*p++) * 0x100000001b3ULL;
    --n;
  }
  h ^= h >> 32;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 29;
  return h;
}

std::optional<size_t> base_offset(std::string_view data) {
  if (data.size() < 2 || data[0] != '#' || data[1] != '!') return 0;
  size_t nl = data.substr(0, kMaxShebang).find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  return (nl + 1 + kBaseAlign - 1) / kBaseAlign * kBaseAlign;
}

std::optional<View> View::open(std::string_view data, const Expected& want, std::string* problem) {
  auto base = base_offset(data);
  if (!base) {
    *problem = "a #! line without an end in the first 4096 bytes";
    return std::nullopt;
  }
  if (*base > data.size() || data.size() - *base < kHeaderSize) {
    *problem = "truncated: shorter than the header";
    return std::nullopt;
  }
  View v;
  v.base_ = data.substr(*base);
  const char* h = v.base_.data();
  if (std::memcmp(h + header::kMagicAt, kMagic, sizeof kMagic) != 0) {
    *problem = "not a lazyexec image (bad magic)";
    return std::nullopt;
  }
  uint64_t version = le(h + header::kVersionAt, 2);
  if (version != kFormatVersion) {
    *problem = "image format version " + std::to_string(version) + ", this lazyexec reads " +
               std::to_string(kFormatVersion) + ": rebuild the image";
    return std::nullopt;
  }
  if (want.pymagic.size() == 4 && std::string_view(h + header::kPyMagicAt, 4) != want.pymagic) {
    *problem = "built for another Python version (bytecode magic differs): rebuild the image";
    return std::nullopt;
  }
  if (want.runtime_key.size() == 16 && std::string_view(h + header::kRuntimeKeyAt, 16) != want.runtime_key) {
    *problem = "built by another lazyexec build: rebuild the image";
    return std::nullopt;
  }
  uint64_t length = le(h + header::kLengthAt, 8);
  if (length != v.base_.size()) {
    *problem = format_problem(length > v.base_.size() ? "truncated: header length vs bytes present"
                                                      : "trailing bytes: header length vs bytes present",
                              length, v.base_.size());
    return std::nullopt;
  }
  v.flags_ = (uint16_t)le(h + header::kFlagsAt, 2);
  if ((v.flags_ & ~kKnownFlags) != 0 || ((v.flags_ & kCheckMask) >> kCheckShift) > (uint16_t)Check::Hash ||
      ((v.flags_ & kOptimizeMask) >> kOptimizeShift) > 2) {
    *problem = "unknown header flags";
    return std::nullopt;
  }
  if (le(h + header::kReservedAt, 8) != 0) {
    *problem = "reserved header bytes are not zero";
    return std::nullopt;
  }
  v.count_ = (uint32_t)le(h + header::kCountAt, 4);
  v.buckets_count_ = (uint32_t)le(h + header::kBucketsCountAt, 4);
  v.buckets_at_ = le(h + header::kBucketsAt, 8);
  v.records_at_ = le(h + header::kRecordsAt, 8);
  uint32_t b = v.buckets_count_;
  if (b == 0 || (b & (b - 1)) != 0 || b > kMaxBuckets || v.count_ >= b) {
    *problem = format_problem("bad bucket count (buckets vs modules)", b, v.count_);
    return std::nullopt;
  }
  if (v.buckets_at_ % 8 != 0 || v.buckets_at_ < kHeaderSize ||
      !inside(v.buckets_at_, (uint64_t)b * kBucketSize, length)) {
    *problem = "bucket table out of bounds";
    return std::nullopt;
  }
  if (v.records_at_ % 8 != 0 || v.records_at_ < kHeaderSize ||
      !inside(v.records_at_, (uint64_t)v.count_ * kRecordSize, length)) {
    *problem = "record table out of bounds";
    return std::nullopt;
  }
  uint64_t entry_at = le(h + header::kEntryAt, 4), entry_len = le(h + header::kEntryAt + 4, 4);
  if (!inside(entry_at, entry_len, length) || ((v.flags_ & kFlagEntry) != 0) != (entry_len != 0)) {
    *problem = "entry point out of bounds";
    return std::nullopt;
  }
  v.entry_ = v.base_.substr(entry_at, entry_len);
  return v;
}

std::optional<Module> View::at(uint32_t index, std::string* problem) const {
  auto bad = [&](const char* what) -> std::optional<Module> {
    if (problem) *problem = "module record " + std::to_string(index) + ": " + what;
    return std::nullopt;
  };
  if (index >= count_) return bad("index out of range");
  const char* r = base_.data() + records_at_ + (uint64_t)index * kRecordSize;
  uint64_t size = base_.size();
  auto string_at = [&](size_t field, std::string_view* out) {
    uint64_t off = le(r + field, 4), len = le(r + field + 4, 4);
    if (!inside(off, len, size)) return false;
    *out = base_.substr(off, len);
    return true;
  };
  Module m{};
  m.index = index;
  if (!string_at(record::kNameAt, &m.name) || m.name.empty()) return bad("name out of bounds");
  if (!string_at(record::kOriginAt, &m.origin)) return bad("origin out of bounds");
  if (!string_at(record::kLocationsAt, &m.locations)) return bad("search locations out of bounds");
  m.flags = (uint32_t)le(r + record::kFlagsAt, 4);
  if ((m.flags & ~kKnownRecordFlags) != 0) return bad("unknown flags");
  if ((m.flags & kRecordCode) != 0 && (m.flags & kRecordPlan) == 0) return bad("eager code flag without a plan");
  if ((m.flags & kRecordCode) == 0 &&
      (le(r + record::kCodeAt, 8) != 0 || le(r + record::kCodeLenAt, 4) != 0 || le(r + record::kCodeHashAt, 8) != 0))
    return bad("eager code fields set without the flag");
  if (le(r + record::kReservedAt, 4) != 0) return bad("reserved bytes are not zero");
  if ((m.flags & kRecordExtension) != 0) {
    if ((m.flags & ~kRecordExtension) != 0) return bad("an extension module with other flags");
    if (le(r + record::kPayloadAt, 8) != 0 || le(r + record::kPayloadLenAt, 4) != 0 ||
        le(r + record::kPayloadHashAt, 8) != 0)
      return bad("an extension module with a payload");
    if (m.origin.empty()) return bad("an extension module without a file");
  }
  m.mtime_ns = le(r + record::kMtimeAt, 8);
  m.size = le(r + record::kSizeAt, 8);
  m.source_hash = le(r + record::kSourceHashAt, 8);
  return m;
}

std::optional<Module> View::find(std::string_view name, std::string* problem) const {
  uint64_t h = hash64(name);
  uint32_t tag = (uint32_t)(h >> 32);
  uint32_t mask = buckets_count_ - 1;
  const char* buckets = base_.data() + buckets_at_;
  // Linear probing; at most every bucket once (count < buckets: one is empty).
  for (uint32_t i = 0, slot = (uint32_t)h & mask; i < buckets_count_; ++i, slot = (slot + 1) & mask) {
    const char* b = buckets + (uint64_t)slot * kBucketSize;
    uint32_t ref = (uint32_t)le(b + 4, 4);
    if (ref == 0) return std::nullopt;
    if ((uint32_t)le(b, 4) != tag) continue;
    auto m = at(ref - 1, problem);
    if (!m) return std::nullopt;
    if (m->name == name) return m;
  }
  return std::nullopt;
}

std::optional<std::string_view> View::blob(const Module& m, size_t offset_at, size_t length_at, size_t hash_at,
                                           const char* what, std::string* problem) const {
  if (m.index >= count_) {
    *problem = "module record out of range";
    return std::nullopt;
  }
  const char* r = base_.data() + records_at_ + (uint64_t)m.index * kRecordSize;
  uint64_t off = le(r + offset_at, 8), len = le(r + length_at, 4);
  if (!inside(off, len, base_.size())) {
    *problem = std::string(what) + " of " + std::string(m.name) + " out of bounds";
    return std::nullopt;
  }
  std::string_view p = base_.substr(off, len);
  if (blob_hash(p) != le(r + hash_at, 8)) {
    *problem = std::string(what) + " of " + std::string(m.name) + " is damaged (hash mismatch)";
    return std::nullopt;
  }
  return p;
}

std::optional<std::string_view> View::payload(const Module& m, std::string* problem) const {
  if (m.is_extension()) {
    *problem = std::string(m.name) + " is an extension module: no payload in the image";
    return std::nullopt;
  }
  return blob(m, record::kPayloadAt, record::kPayloadLenAt, record::kPayloadHashAt, "payload", problem);
}

std::optional<std::string_view> View::code(const Module& m, std::string* problem) const {
  if (!m.is_plan()) return payload(m, problem);
  if ((m.flags & kRecordCode) == 0) {
    *problem = "no eager code of " + std::string(m.name) + " in the image";
    return std::nullopt;
  }
  return blob(m, record::kCodeAt, record::kCodeLenAt, record::kCodeHashAt, "eager code", problem);
}

std::optional<PlanParts> View::split_plan(const Module& m, std::string_view payload, std::string* problem) {
  auto bad = [&](const std::string& what) -> std::optional<PlanParts> {
    *problem = "payload of " + std::string(m.name) + ": " + what;
    return std::nullopt;
  };
  if (payload.size() < plan::kTableAt) return bad("truncated unit table");
  if (le(payload.data() + plan::kReservedAt, 4) != 0) return bad("reserved bytes are not zero");
  uint64_t units = le(payload.data() + plan::kCountAt, 4);
  if (!inside(plan::kTableAt, units * kUnitEntrySize, payload.size())) return bad("unit table out of bounds");
  PlanParts parts;
  parts.units = (uint32_t)units;
  parts.table = payload.substr(plan::kTableAt, units * kUnitEntrySize);
  // The unit table (format 6): every record checked here, once per load,
  // so that the runtime copies it as it is.
  uint64_t at = plan::kTableAt + units * kUnitEntrySize;
  if (!inside(at, kUnitsHeaderSize, payload.size())) return bad("truncated unit records");
  const char* h = payload.data() + at;
  uint64_t count = le(h + units::kCountAt, 4), text = le(h + units::kTextAt, 4), links = le(h + units::kLinksAt, 4);
  if (le(h + units::kReservedAt, 4) != 0) return bad("unit records: reserved bytes are not zero");
  at += kUnitsHeaderSize;
  uint64_t records_len = count * kUnitRecordSize, links_len = links * 4;
  if (!inside(at, records_len, payload.size()) || !inside(at + records_len, text, payload.size()) ||
      !inside(at + records_len + text, links_len, payload.size()))
    return bad("unit records out of bounds");
  parts.unit_count = (uint32_t)count;
  parts.records = payload.substr(at, records_len);
  parts.text = payload.substr(at + records_len, text);
  parts.links = payload.substr(at + records_len + text, links_len);
  parts.marshalled = payload.substr(at + records_len + text + links_len);
  // A string at `off` ends with a NUL inside the text; its end.
  auto string_end = [&](uint64_t off, uint64_t* end) {
    if (off >= parts.text.size()) return false;
    const void* nul = std::memchr(parts.text.data() + off, 0, parts.text.size() - off);
    if (nul == nullptr) return false;
    *end = (uint64_t)(static_cast<const char*>(nul) - parts.text.data()) + 1;
    return true;
  };
  for (uint32_t i = 0; i < parts.unit_count; ++i) {
    UnitEntry u = parts.unit(i);
    uint64_t end;
    if (!string_end(u.where_at, &end)) return bad("unit " + std::to_string(i) + ": where out of bounds");
    // Its names one after another: each NUL-terminated inside the text.
    uint64_t pos = u.binds_at;
    for (uint32_t k = 0; k < u.nbinds; ++k, pos = end)
      if (!string_end(pos, &end) || end - 1 == pos)  // out of the text, or empty
        return bad("unit " + std::to_string(i) + ": bound names out of bounds");
    if (u.nbinds == 0 && u.binds_at > parts.text.size())
      return bad("unit " + std::to_string(i) + ": bound names out of bounds");
    if (!inside(u.links_at, (uint64_t)u.ndeps + u.ncalls, links))
      return bad("unit " + std::to_string(i) + ": links out of bounds");
  }
  for (uint32_t k = 0; k < links; ++k)  // every link, once: each names a unit
    if (parts.link(k) >= count) return bad("link " + std::to_string(k) + " to no unit");
  return parts;
}

UnitEntry PlanParts::unit(uint32_t i) const {
  const char* r = records.data() + (uint64_t)i * kUnitRecordSize;
  return UnitEntry{(uint32_t)le(r + unit_record::kWhereAt, 4), (uint32_t)le(r + unit_record::kBindsAt, 4),
                   (uint32_t)le(r + unit_record::kNBindsAt, 4), (uint32_t)le(r + unit_record::kLinksAt, 4),
                   (uint32_t)le(r + unit_record::kDepsAt, 4),   (uint32_t)le(r + unit_record::kCallsAt, 4)};
}

uint32_t PlanParts::link(uint32_t k) const { return (uint32_t)le(links.data() + (uint64_t)k * 4, 4); }

std::optional<UnitCode> View::unit_code(const Module& m, const PlanParts& plan, uint32_t k,
                                        std::string* problem) const {
  auto bad = [&](const char* what) -> std::optional<UnitCode> {
    *problem = "unit code " + std::to_string(k) + " of " + std::string(m.name) + ": " + what;
    return std::nullopt;
  };
  if (k >= plan.units || plan.table.size() < (uint64_t)plan.units * kUnitEntrySize) return bad("no such entry");
  const char* e = plan.table.data() + (uint64_t)k * kUnitEntrySize;
  uint64_t off = le(e + unit::kOffsetAt, 8), len = le(e + unit::kLengthAt, 4);
  if (le(e + unit::kReservedAt, 4) != 0) return bad("reserved bytes are not zero");
  if (!inside(off, len, base_.size())) return bad("out of bounds");
  return UnitCode{base_.substr(off, len), le(e + unit::kHashAt, 8)};
}

std::optional<Mapping> Mapping::map(const char* path, std::string* problem) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *problem = std::strerror(errno);
    return std::nullopt;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *problem = "not a regular file";
    ::close(fd);
    return std::nullopt;
  }
  size_t size = (size_t)st.st_size;
  void* addr = nullptr;
  if (size > 0) {
    addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      *problem = std::string("mmap: ") + std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
  }
  ::close(fd);  // the mapping keeps the file
  return Mapping(addr, size);
}

Mapping::Mapping(Mapping&& other) noexcept
    : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}

Mapping::~Mapping() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
}

}  // namespace lazyexec::image
