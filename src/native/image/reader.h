// The application image reader (docs/image-format.md): plain C++, no Python,
// so that it can be fuzzed on its own. Hostile input is the default: `open`
// checks the header, counts and table bounds once (constant work, not per
// module); `find` and `payload` check every offset they follow.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "image/blob_hash.h"
#include "image/format.h"

namespace lazyexec::image {

// The 64-bit hash of module names (the index): 8 bytes at a time (little
// endian), multiply and xor-shift; the tail byte by byte.
uint64_t hash64(std::string_view data);

// blob_hash, the check of payloads, eager code and sources (format 3):
// image/blob_hash.h.

struct Expected {
  std::string_view pymagic;      // 4 bytes
  std::string_view runtime_key;  // 16 bytes; empty: not checked (verify, fuzzing)
};

struct Module {
  uint32_t index;
  std::string_view name;
  std::string_view origin;
  std::string_view locations;  // NUL-separated
  uint32_t flags;
  uint64_t mtime_ns, size, source_hash;
  bool is_package() const { return (flags & kRecordPackage) != 0; }
  bool is_plan() const { return (flags & kRecordPlan) != 0; }
  bool is_extension() const { return (flags & kRecordExtension) != 0; }
  // Its eager code object is in the image: the payload of an eager module,
  // the second payload of a plan module built with one.
  bool has_code() const { return !is_extension() && (!is_plan() || (flags & kRecordCode) != 0); }
};

// One unit of a plan's unit table (format 6), checked: its strings lie in
// the text, NUL-terminated; its links in the links, each < the unit count.
struct UnitEntry {
  uint32_t where_at, binds_at, nbinds, links_at, ndeps, ncalls;
};

// A plan payload split (format 4): its unit code table, its unit table
// (format 6) and the marshalled (codes, steps) after them.
struct PlanParts {
  uint32_t units = 0;           // unit code table entries
  std::string_view table;       // units x kUnitEntrySize bytes
  uint32_t unit_count = 0;      // the unit table's units (U)
  std::string_view records;     // U x kUnitRecordSize bytes
  std::string_view text;        // T bytes
  std::string_view links;       // L x 4 bytes
  std::string_view marshalled;  // marshal.dumps((codes, steps))
  // Unit `i` (< unit_count) of the unit table, checked by split_plan.
  UnitEntry unit(uint32_t i) const;
  uint32_t link(uint32_t k) const;  // links entry k (< links.size() / 4)
};

// One unit's code, out of line: bounds checked, hash not yet (intact()).
struct UnitCode {
  std::string_view bytes;
  uint64_t hash;
  bool intact() const { return blob_hash(bytes) == hash; }
};

// A validated view over an image's bytes (a mapping or a buffer it does not own).
class View {
 public:
  // The image in `data` or, with the reason, nullopt. `problem` names the
  // defect ("truncated: header says 123 bytes, file has 100").
  static std::optional<View> open(std::string_view data, const Expected& want, std::string* problem);

  uint32_t count() const { return count_; }
  uint16_t flags() const { return flags_; }
  Check check() const { return static_cast<Check>((flags_ & kCheckMask) >> kCheckShift); }
  int optimize() const { return (flags_ & kOptimizeMask) >> kOptimizeShift; }
  std::string_view entry() const { return entry_; }
  // The first byte after the header, index and record table.
  const char* metadata_end() const { return base_.data() + records_at_ + (uint64_t)count_ * kRecordSize; }

  // The module named `name`, or nullopt (absent, or its record is damaged:
  // then `problem` is set).
  std::optional<Module> find(std::string_view name, std::string* problem = nullptr) const;
  // Record `index` (< count()), or nullopt with `problem` when damaged.
  std::optional<Module> at(uint32_t index, std::string* problem) const;
  // The payload of `m`, its hash verified; nullopt with `problem` when damaged.
  std::optional<std::string_view> payload(const Module& m, std::string* problem) const;
  // The marshalled eager code object of `m` (its payload when it is not a
  // plan), hash verified; nullopt with `problem` when damaged or absent.
  std::optional<std::string_view> code(const Module& m, std::string* problem) const;
  // A plan module's payload (from payload()) split into its unit code
  // table, its unit table (every entry checked) and its marshalled plan;
  // nullopt with `problem` when a table is damaged.
  static std::optional<PlanParts> split_plan(const Module& m, std::string_view payload, std::string* problem);
  // Entry `k` of a plan's unit code table, its bounds checked (its hash is
  // checked when the unit first runs: UnitCode::intact); nullopt with `problem`.
  std::optional<UnitCode> unit_code(const Module& m, const PlanParts& plan, uint32_t k, std::string* problem) const;

 private:
  std::string_view base_;  // from the header to the end of the file
  uint16_t flags_{};
  uint32_t count_{}, buckets_count_{};
  uint64_t buckets_at_{}, records_at_{};
  std::string_view entry_;

  std::optional<std::string_view> blob(const Module& m, size_t offset_at, size_t length_at, size_t hash_at,
                                       const char* what, std::string* problem) const;
};

// Where the image starts: 0, or after a `#!` line. nullopt: a `#!` line
// without a newline in the first kMaxShebang bytes.
std::optional<size_t> base_offset(std::string_view data);

// A read-only private mapping of a whole file (RAII). An empty file maps to
// an empty view.
class Mapping {
 public:
  static std::optional<Mapping> map(const char* path, std::string* problem);
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&&) = delete;
  Mapping(const Mapping&) = delete;
  ~Mapping();
  std::string_view bytes() const { return {static_cast<const char*>(addr_), size_}; }

 private:
  Mapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  void* addr_;
  size_t size_;
};

}  // namespace lazyexec::image
