// The image reader on valid and damaged input (docs/image-format.md, section
// "Reading: robustness"): one test per defect, and a guard-page test that puts
// the image right before an unreadable page so that any over-read crashes.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "image_builder.h"
#include "image/reader.h"

using namespace lazyexec::image;
using namespace lazyexec::image::testing;

namespace {

const Expected kWant{"PYMG", "0123456789abcdef"};

std::optional<View> open_(std::string_view data, std::string* problem) { return View::open(data, kWant, problem); }

std::string problem_of(std::string_view data) {
  std::string p;
  EXPECT_FALSE(open_(data, &p).has_value());
  return p;
}

std::string valid() { return build_image(sample_modules()); }

}  // namespace

TEST(Image, FindsEveryModuleAndItsPayload) {
  std::string data = valid();
  std::string p;
  auto v = open_(data, &p);
  ASSERT_TRUE(v) << p;
  EXPECT_EQ(v->count(), 40u);
  for (const auto& m : sample_modules()) {
    auto found = v->find(m.name);
    ASSERT_TRUE(found) << m.name;
    EXPECT_EQ(found->origin, m.origin);
    EXPECT_EQ(found->flags, m.flags | (m.code.empty() ? 0 : kRecordCode));
    EXPECT_EQ(found->locations, m.locations);
    auto payload = v->payload(*found, &p);
    ASSERT_TRUE(payload) << p;
    if (m.flags & kRecordPlan) {  // the unit code table, then the plan; the units' code out of line
      auto parts = View::split_plan(*found, *payload, &p);
      ASSERT_TRUE(parts) << p;
      EXPECT_EQ(parts->marshalled, m.payload);
      ASSERT_EQ(parts->units, m.units.size());
      for (uint32_t k = 0; k < parts->units; ++k) {
        auto unit = v->unit_code(*found, *parts, k, &p);
        ASSERT_TRUE(unit) << p;
        EXPECT_EQ(unit->bytes, m.units[k]);
        EXPECT_TRUE(unit->intact());
      }
      EXPECT_FALSE(v->unit_code(*found, *parts, parts->units, &p));
      // The unit table (format 6): unit_table(n) of image_builder.h.
      ASSERT_EQ(parts->unit_count, m.units.size());
      for (uint32_t k = 0; k < parts->unit_count; ++k) {
        UnitEntry u = parts->unit(k);
        EXPECT_EQ(std::string(parts->text.data() + u.where_at), std::to_string(k) + " (def u" + std::to_string(k) + ")");
        EXPECT_EQ(u.nbinds, 1u);
        EXPECT_EQ(std::string(parts->text.data() + u.binds_at), "u" + std::to_string(k));
        EXPECT_EQ(u.ndeps, k > 0 ? 1u : 0u);
        EXPECT_EQ(u.ncalls, 0u);
        if (k > 0) EXPECT_EQ(parts->link(u.links_at), k - 1);
      }
    } else {
      EXPECT_EQ(*payload, m.payload);
    }
    auto code = v->code(*found, &p);
    if (!(m.flags & kRecordPlan)) {
      ASSERT_TRUE(code) << p;
      EXPECT_EQ(*code, m.payload);  // an eager module's payload is its code
    } else if (!m.code.empty()) {
      ASSERT_TRUE(code) << p;
      EXPECT_EQ(*code, m.code);
      EXPECT_TRUE(found->has_code());
    } else {
      EXPECT_FALSE(code);
      EXPECT_FALSE(found->has_code());
      EXPECT_NE(p.find("no eager code"), std::string::npos);
    }
  }
  EXPECT_FALSE(v->find("pkg.absent"));
  EXPECT_FALSE(v->find(""));
}

// Format 5: an extension module is a record only (its file loaded by
// importlib's ExtensionFileLoader): no payload, no eager code.
TEST(Image, ExtensionModuleIsARecordWithoutPayload) {
  auto mods = sample_modules(16, true);
  std::string data = build_image(mods);
  std::string p;
  auto v = open_(data, &p);
  ASSERT_TRUE(v) << p;
  int extensions = 0;
  for (const auto& m : mods) {
    auto found = v->find(m.name, &p);
    ASSERT_TRUE(found) << m.name << ": " << p;
    EXPECT_EQ(found->origin, m.origin);
    if (!(m.flags & kRecordExtension)) {
      EXPECT_FALSE(found->is_extension());
      EXPECT_TRUE(v->payload(*found, &p)) << p;
      continue;
    }
    ++extensions;
    EXPECT_TRUE(found->is_extension());
    EXPECT_FALSE(found->has_code());
    EXPECT_FALSE(v->payload(*found, &p));
    EXPECT_NE(p.find("is an extension module"), std::string::npos);
    EXPECT_FALSE(v->code(*found, &p));
  }
  EXPECT_EQ(extensions, 2);  // pkg.mod6, pkg.mod13
}

TEST(Image, ShebangPrefixIsSkipped) {
  std::string data = build_image(sample_modules(3), "PYMG", "0123456789abcdef", "pkg:main", "#!/usr/bin/env x\n");
  std::string p;
  auto v = open_(data, &p);
  ASSERT_TRUE(v) << p;
  EXPECT_EQ(v->entry(), "pkg:main");
  EXPECT_TRUE(v->find("pkg.mod2"));
}

TEST(ImageCorruption, ShebangWithoutNewline) {
  EXPECT_NE(problem_of("#!" + std::string(5000, 'x')).find("#!"), std::string::npos);
}

TEST(ImageCorruption, TruncatedHeader) {
  EXPECT_NE(problem_of(valid().substr(0, 40)).find("truncated"), std::string::npos);
  EXPECT_NE(problem_of("").find("truncated"), std::string::npos);
}

TEST(ImageCorruption, TruncatedBody) {
  std::string d = valid();
  EXPECT_NE(problem_of(std::string_view(d).substr(0, d.size() - 1)).find("truncated"), std::string::npos);
}

TEST(ImageCorruption, TrailingBytes) { EXPECT_NE(problem_of(valid() + "x").find("trailing"), std::string::npos); }

TEST(ImageCorruption, BadMagic) {
  std::string d = valid();
  d[1] = 'X';
  EXPECT_NE(problem_of(d).find("magic"), std::string::npos);
}

TEST(ImageCorruption, WrongVersion) {
  std::string d = valid();
  put(d, header::kVersionAt, 1, 2);  // format 1 (80-byte records, no eager code of plans)
  EXPECT_NE(problem_of(d).find("version 1"), std::string::npos);
  put(d, header::kVersionAt, 2, 2);  // format 2 (payloads checked with hash64)
  EXPECT_NE(problem_of(d).find("version 2"), std::string::npos);
  put(d, header::kVersionAt, 3, 2);  // format 3 (unit code inside the plan payload)
  EXPECT_NE(problem_of(d).find("version 3"), std::string::npos);
  put(d, header::kVersionAt, 4, 2);  // format 4 (no extension module records)
  EXPECT_NE(problem_of(d).find("version 4"), std::string::npos);
  put(d, header::kVersionAt, 5, 2);  // format 5 (no unit table in a plan's payload)
  EXPECT_NE(problem_of(d).find("version 5"), std::string::npos);
  put(d, header::kVersionAt, 7, 2);
  EXPECT_NE(problem_of(d).find("version 7"), std::string::npos);
}

TEST(ImageCorruption, WrongInterpreter) {
  EXPECT_NE(problem_of(build_image(sample_modules(), "OTHR")).find("Python version"), std::string::npos);
}

TEST(ImageCorruption, WrongRuntimeKey) {
  EXPECT_NE(problem_of(build_image(sample_modules(), "PYMG", "fedcba9876543210")).find("lazyexec build"),
            std::string::npos);
}

TEST(ImageCorruption, UnknownFlags) {
  std::string d = valid();
  put(d, header::kFlagsAt, 1 << 9, 2);
  EXPECT_NE(problem_of(d).find("flags"), std::string::npos);
}

TEST(ImageCorruption, EntryFlagWithoutEntry) {
  std::string d = valid();
  put(d, header::kFlagsAt, kFlagEntry, 2);
  EXPECT_NE(problem_of(d).find("entry"), std::string::npos);
}

TEST(ImageCorruption, BucketCountNotPowerOfTwo) {
  std::string d = valid();
  put(d, header::kBucketsCountAt, 100, 4);
  EXPECT_NE(problem_of(d).find("bucket count"), std::string::npos);
}

TEST(ImageCorruption, BucketsNotMoreThanModules) {
  std::string d = valid();
  put(d, header::kCountAt, 128, 4);
  EXPECT_NE(problem_of(d).find("bucket count"), std::string::npos);
}

TEST(ImageCorruption, BucketTableOutOfBounds) {
  std::string d = valid();
  put(d, header::kBucketsAt, d.size() - 8, 8);
  EXPECT_NE(problem_of(d).find("bucket table"), std::string::npos);
}

TEST(ImageCorruption, RecordTableOutOfBounds) {
  std::string d = valid();
  put(d, header::kRecordsAt, 0xFFFFFFFFFFFFFFF8ULL, 8);  // offset + size overflows
  EXPECT_NE(problem_of(d).find("record table"), std::string::npos);
}

TEST(ImageCorruption, NameOutOfBounds) {
  std::string d = valid();
  std::string p;
  auto v0 = open_(d, &p);
  ASSERT_TRUE(v0);
  uint64_t records_at = get(d, header::kRecordsAt, 8);
  put(d, records_at + record::kNameAt + 4, 0xFFFFFFFF, 4);  // record 0's name length
  auto v = open_(d, &p);
  ASSERT_TRUE(v);
  EXPECT_FALSE(v->at(0, &p));
  EXPECT_NE(p.find("name out of bounds"), std::string::npos);
  EXPECT_FALSE(v->find("pkg", &p));  // the lookup reaching it reports, never reads past
}

TEST(ImageCorruption, PayloadOffsetPastEnd) {
  std::string d = valid();
  uint64_t records_at = get(d, header::kRecordsAt, 8);
  put(d, records_at + record::kPayloadAt, d.size() - 2, 8);
  std::string p;
  auto v = open_(d, &p);
  ASSERT_TRUE(v);
  auto m = v->find("pkg");
  ASSERT_TRUE(m);
  EXPECT_FALSE(v->payload(*m, &p));
  EXPECT_NE(p.find("out of bounds"), std::string::npos);
}

TEST(ImageCorruption, PayloadHashMismatch) {
  std::string d = valid();
  std::string p;
  auto v0 = open_(d, &p);
  auto m0 = v0->find("pkg.mod5");
  auto bytes = v0->payload(*m0, &p);
  size_t at = bytes->data() - d.data();
  d[at + 3] ^= 0x40;
  auto v = open_(d, &p);
  ASSERT_TRUE(v);
  auto m = v->find("pkg.mod5");
  EXPECT_FALSE(v->payload(*m, &p));
  EXPECT_NE(p.find("hash mismatch"), std::string::npos);
}

uint64_t records_at_of(const std::string& d) { return get(d, header::kRecordsAt, 8); }

TEST(ImageCorruption, EagerCodeFlagWithoutPlan) {
  std::string d = valid();
  size_t r = records_at_of(d) + 2 * kRecordSize;  // pkg.mod2: an eager module
  put(d, r + record::kFlagsAt, kRecordCode, 4);
  std::string p;
  auto v = open_(d, &p);
  ASSERT_TRUE(v);
  EXPECT_FALSE(v->at(2, &p));
  EXPECT_NE(p.find("eager code flag without a plan"), std::string::npos);
}

TEST(ImageCorruption, EagerCodeFieldsWithoutFlag) {
  std::string d = valid();
  size_t r = records_at_of(d) + 3 * kRecordSize;  // pkg.mod3: a plan without eager code
  put(d, r + record::kCodeLenAt, 5, 4);
  std::string p;
  auto v = open_(d, &p);
  ASSERT_TRUE(v);
  EXPECT_FALSE(v->at(3, &p));
  EXPECT_NE(p.find("without the flag"), std::string::npos);
}

// pkg.mod6 of sample_modules(16, true): an extension module.
std::string problem_of_extension_record(uint32_t flags, uint64_t payload_at, uint32_t payload_len,
                                        uint64_t payload_hash, bool empty_origin = false) {
  std::string d = build_image(sample_modules(16, true));
  size_t r = records_at_of(d) + 6 * kRecordSize;
  put(d, r + record::kFlagsAt, flags, 4);
  put(d, r + record::kPayloadAt, payload_at, 8);
  put(d, r + record::kPayloadLenAt, payload_len, 4);
  put(d, r + record::kPayloadHashAt, payload_hash, 8);
  if (empty_origin) put(d, r + record::kOriginAt + 4, 0, 4);
  std::string p;
  auto v = open_(d, &p);
  EXPECT_TRUE(v) << p;
  if (!v) return p;
  EXPECT_FALSE(v->at(6, &p));
  EXPECT_FALSE(v->find("pkg.mod6", &p));
  return p;
}

TEST(ImageCorruption, ExtensionWithPayload) {
  EXPECT_NE(problem_of_extension_record(kRecordExtension, 128, 0, 0).find("an extension module with a payload"),
            std::string::npos);
  EXPECT_NE(problem_of_extension_record(kRecordExtension, 0, 8, 0).find("with a payload"), std::string::npos);
  EXPECT_NE(problem_of_extension_record(kRecordExtension, 0, 0, 1).find("with a payload"), std::string::npos);
}

TEST(ImageCorruption, ExtensionWithOtherFlags) {
  for (uint32_t other : {kRecordPackage, kRecordPlan})
    EXPECT_NE(problem_of_extension_record(kRecordExtension | other, 0, 0, 0).find("an extension module with other flags"),
              std::string::npos);
  EXPECT_NE(problem_of_extension_record(kRecordExtension | kRecordPlan | kRecordCode, 0, 0, 0).find("flags"),
            std::string::npos);
}

TEST(ImageCorruption, ExtensionWithoutFile) {
  EXPECT_NE(problem_of_extension_record(kRecordExtension, 0, 0, 0, true).find("an extension module without a file"),
            std::string::npos);
}

TEST(ImageCorruption, EagerCodeOffsetPastEnd) {
  std::string d = valid();
  size_t r = records_at_of(d) + 5 * kRecordSize;  // pkg.mod5: a plan with eager code
  put(d, r + record::kCodeAt, d.size() - 2, 8);
  std::string p;
  auto v = open_(d, &p);
  ASSERT_TRUE(v);
  auto m = v->find("pkg.mod5");
  ASSERT_TRUE(m);
  EXPECT_TRUE(v->payload(*m, &p));  // the plan is intact
  EXPECT_FALSE(v->code(*m, &p));
  EXPECT_NE(p.find("eager code of pkg.mod5 out of bounds"), std::string::npos);
}

TEST(ImageCorruption, EagerCodeHashMismatch) {
  std::string d = valid();
  std::string p;
  auto v0 = open_(d, &p);
  auto code = v0->code(*v0->find("pkg.mod9"), &p);
  ASSERT_TRUE(code) << p;
  d[code->data() - d.data()] ^= 0x01;
  auto v = open_(d, &p);
  ASSERT_TRUE(v);
  EXPECT_FALSE(v->code(*v->find("pkg.mod9"), &p));
  EXPECT_NE(p.find("hash mismatch"), std::string::npos);
}

namespace {

// Image `d` with its record `index`'s payload hash made to match its bytes
// again (a table edited on purpose, not a payload damaged in transit).
void rehash_payload(std::string& d, uint32_t index) {
  size_t r = records_at_of(d) + index * kRecordSize;
  uint64_t off = get(d, r + record::kPayloadAt, 8), len = get(d, r + record::kPayloadLenAt, 4);
  put(d, r + record::kPayloadHashAt, blob_hash(std::string_view(d).substr(off, len)), 8);
}

size_t payload_at_of(const std::string& d, uint32_t index) {
  size_t r = records_at_of(d) + index * kRecordSize;
  return get(d, r + record::kPayloadAt, 8);
}

// pkg.mod5: a plan with two units (sample_modules).
std::string unit_problem(std::string d, uint32_t k = 0) {
  rehash_payload(d, 5);
  std::string p;
  auto v = open_(d, &p);
  EXPECT_TRUE(v) << p;
  auto m = v->find("pkg.mod5");
  auto payload = v->payload(*m, &p);
  EXPECT_TRUE(payload) << p;
  auto parts = View::split_plan(*m, *payload, &p);
  if (!parts) return p;
  auto unit = v->unit_code(*m, *parts, k, &p);
  if (!unit) return p;
  return unit->intact() ? "" : "hash mismatch";
}

}  // namespace

TEST(ImageCorruption, UnitTableCountPastPayload) {
  std::string d = valid();
  put(d, payload_at_of(d, 5) + plan::kCountAt, 0xFFFFFFFF, 4);
  EXPECT_NE(unit_problem(d).find("unit table out of bounds"), std::string::npos);
}

TEST(ImageCorruption, UnitTableReservedNotZero) {
  std::string d = valid();
  put(d, payload_at_of(d, 5) + plan::kReservedAt, 1, 4);
  EXPECT_NE(unit_problem(d).find("reserved"), std::string::npos);
}

// pkg.mod5's unit table (format 6): after its two unit code entries.
size_t units_at_of(const std::string& d) { return payload_at_of(d, 5) + plan::kTableAt + 2 * kUnitEntrySize; }
size_t unit_record_at(const std::string& d, uint32_t k) { return units_at_of(d) + kUnitsHeaderSize + k * kUnitRecordSize; }

TEST(ImageCorruption, UnitRecordsCountPastPayload) {
  std::string d = valid();
  put(d, units_at_of(d) + units::kCountAt, 0x10000000, 4);
  EXPECT_NE(unit_problem(d).find("unit records out of bounds"), std::string::npos);
}

TEST(ImageCorruption, UnitRecordsTextPastPayload) {
  std::string d = valid();
  put(d, units_at_of(d) + units::kTextAt, 0xFFFFFFFF, 4);
  EXPECT_NE(unit_problem(d).find("unit records out of bounds"), std::string::npos);
}

TEST(ImageCorruption, UnitRecordsReservedNotZero) {
  std::string d = valid();
  put(d, units_at_of(d) + units::kReservedAt, 1, 4);
  EXPECT_NE(unit_problem(d).find("unit records: reserved"), std::string::npos);
}

TEST(ImageCorruption, UnitWhereOutOfText) {
  std::string d = valid();
  put(d, unit_record_at(d, 1) + unit_record::kWhereAt, 1000, 4);
  EXPECT_NE(unit_problem(d).find("unit 1: where out of bounds"), std::string::npos);
}

TEST(ImageCorruption, UnitBoundNamesPastText) {
  std::string d = valid();
  put(d, unit_record_at(d, 0) + unit_record::kNBindsAt, 1000, 4);  // names run past the text's end
  EXPECT_NE(unit_problem(d).find("unit 0: bound names out of bounds"), std::string::npos);
}

TEST(ImageCorruption, UnitBoundNameEmpty) {
  std::string d = valid();
  // Unit 0's name "u0" starts at its binds offset: point it at the NUL ending unit 0's where.
  uint64_t binds = get(d, unit_record_at(d, 0) + unit_record::kBindsAt, 4);
  put(d, unit_record_at(d, 0) + unit_record::kBindsAt, binds - 1, 4);
  EXPECT_NE(unit_problem(d).find("unit 0: bound names out of bounds"), std::string::npos);
}

TEST(ImageCorruption, UnitLinksPastTable) {
  std::string d = valid();
  put(d, unit_record_at(d, 1) + unit_record::kCallsAt, 5, 4);
  EXPECT_NE(unit_problem(d).find("unit 1: links out of bounds"), std::string::npos);
}

TEST(ImageCorruption, UnitLinkToNoUnit) {
  std::string d = valid();
  size_t links_at = unit_record_at(d, 2);  // after the two records: the text, then the links
  uint64_t text = get(d, units_at_of(d) + units::kTextAt, 4);
  put(d, links_at + text, 7, 4);  // unit 1's dep: unit 7 of 2
  EXPECT_NE(unit_problem(d).find("link 0 to no unit"), std::string::npos);
}

TEST(ImageCorruption, UnitCodeOffsetPastEnd) {
  std::string d = valid();
  put(d, payload_at_of(d, 5) + plan::kTableAt + kUnitEntrySize + unit::kOffsetAt, d.size() - 2, 8);
  EXPECT_NE(unit_problem(d, 1).find("unit code 1 of pkg.mod5: out of bounds"), std::string::npos);
  EXPECT_EQ(unit_problem(d, 0), "");  // the other unit is intact
}

TEST(ImageCorruption, UnitCodeLengthOverflows) {
  std::string d = valid();
  put(d, payload_at_of(d, 5) + plan::kTableAt + unit::kOffsetAt, ~0ULL - 3, 8);
  put(d, payload_at_of(d, 5) + plan::kTableAt + unit::kLengthAt, 100, 4);
  EXPECT_NE(unit_problem(d).find("out of bounds"), std::string::npos);
}

TEST(ImageCorruption, UnitCodeHashMismatch) {
  std::string d = valid();
  std::string p;
  auto v0 = open_(d, &p);
  auto m0 = v0->find("pkg.mod5");
  auto parts = View::split_plan(*m0, *v0->payload(*m0, &p), &p);
  auto unit = v0->unit_code(*m0, *parts, 1, &p);
  ASSERT_TRUE(unit) << p;
  d[unit->bytes.data() - d.data() + 2] ^= 0x10;
  EXPECT_EQ(unit_problem(d, 1), "hash mismatch");
  EXPECT_EQ(unit_problem(d, 0), "");
}

TEST(ImageCorruption, PlanPayloadShorterThanItsTable) {
  std::string p;
  Module m{};
  m.name = "pkg.x";
  EXPECT_FALSE(View::split_plan(m, std::string_view("\x01\0\0", 3), &p));
  EXPECT_NE(p.find("truncated unit table"), std::string::npos);
}

TEST(ImageCorruption, PlanPayloadWithoutItsUnitTable) {  // a format 5 plan: no unit table after the code table
  std::string p;
  Module m{};
  m.name = "pkg.x";
  EXPECT_FALSE(View::split_plan(m, std::string_view("\0\0\0\0\0\0\0\0\xe3", 9), &p));
  EXPECT_NE(p.find("truncated unit records"), std::string::npos);
}

TEST(ImageCorruption, EveryBucketFullNeverLoops) {
  std::string d = build_image(sample_modules(3));
  // Three modules in 8 buckets; claim 8 modules and point every bucket at record 1 with the tag of no name.
  put(d, header::kCountAt, 7, 4);
  for (int i = 0; i < 8; ++i) {
    put(d, kHeaderSize + i * kBucketSize, 0x12345678, 4);
    put(d, kHeaderSize + i * kBucketSize + 4, 1, 4);
  }
  std::string p;
  auto v = open_(d, &p);
  if (v) EXPECT_FALSE(v->find("absent"));  // terminates after at most 8 probes
}

TEST(ImageCorruption, DataEndingAtUnreadablePage) {
  // The image's last byte is the last readable byte: any over-read faults.
  std::string d = valid();
  long page = sysconf(_SC_PAGESIZE);
  size_t span = (d.size() + page - 1) / page * page;
  char* mem = (char*)mmap(nullptr, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  ASSERT_EQ(mprotect(mem + span, page, PROT_NONE), 0);
  char* start = mem + span - d.size();
  std::memcpy(start, d.data(), d.size());
  for (size_t cut : {d.size(), d.size() - 1, (size_t)kHeaderSize, (size_t)10}) {
    std::string_view view(start + d.size() - cut, cut);  // suffixes end at the guard page too
    std::string p;
    auto v = View::open(view, kWant, &p);
    if (!v) continue;
    for (uint32_t i = 0; i < v->count(); ++i) {
      auto m = v->at(i, &p);
      if (m) {
        v->find(m->name, &p);
        auto payload = v->payload(*m, &p);
        v->code(*m, &p);
        auto parts = payload ? View::split_plan(*m, *payload, &p) : std::nullopt;
        for (uint32_t k = 0; parts && k <= parts->units; ++k)
          if (auto unit = v->unit_code(*m, *parts, k, &p)) unit->intact();
      }
    }
  }
  std::string_view whole(start, d.size());
  std::string p;
  auto v = View::open(whole, kWant, &p);
  ASSERT_TRUE(v) << p;
  auto last = v->find("pkg.mod39");
  ASSERT_TRUE(last);
  EXPECT_TRUE(v->payload(*last, &p));
  munmap(mem, span + page);
}

TEST(ImageBlobHash, IsTwoCrc32cLanesAndTheLength) {
  // docs/image-format.md, "blob hash": CRC-32C's check value, then the lanes.
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  constexpr uint64_t kMix = 0x9E3779B97F4A7C15ULL;
  EXPECT_EQ(blob_hash(""), 0u);
  // 9 bytes: word 0 and the tail in lane 0 (its CRC is the check value), lane 1 empty.
  EXPECT_EQ(blob_hash("123456789"), 0xE3069283ULL ^ 9 * kMix);
  // 16 bytes: word 0 in lane 0, word 1 in lane 1.
  EXPECT_EQ(blob_hash("12345678abcdefgh"),
            ((uint64_t)crc32c("abcdefgh") << 32 | crc32c("12345678")) ^ 16 * kMix);
}

TEST(ImageBlobHash, HardwareAndTableAgree) {
  std::string data;
  for (int i = 0; i < 5000; ++i) data.push_back((char)(i * 131 + (i >> 3)));
  for (size_t n = 0; n <= 80; ++n) EXPECT_EQ(blob_hash(data.substr(0, n)), blob_hash_reference(data.substr(0, n))) << n;
  EXPECT_EQ(blob_hash(data), blob_hash_reference(data));
  EXPECT_EQ(blob_hash(data.substr(3)), blob_hash_reference(data.substr(3)));  // unaligned start
}

TEST(ImageBlobHash, EveryBitFlipAndTruncationChangesIt) {
  std::string data;
  for (int i = 0; i < 1024; ++i) data.push_back((char)(i * 7 + 1));
  uint64_t h = blob_hash(data);
  for (size_t bit = 0; bit < data.size() * 8; ++bit) {
    std::string d = data;
    d[bit / 8] = (char)(d[bit / 8] ^ (1 << (bit % 8)));
    ASSERT_NE(blob_hash(d), h) << bit;
  }
  for (size_t n = 0; n < data.size(); ++n) ASSERT_NE(blob_hash(data.substr(0, n)), h) << n;
}

TEST(ImageHash, KnownValuesStayFixed) {
  // The Python builder hashes with the same function (_lazyexec.image_hash):
  // a change here breaks every image, so it is pinned.
  EXPECT_EQ(hash64(""), hash64(std::string_view("", 0)));
  EXPECT_NE(hash64("a"), hash64("b"));
  EXPECT_NE(hash64("abcdefgh"), hash64("abcdefgi"));
  EXPECT_NE(hash64("abcdefgh1"), hash64("abcdefgh2"));
}
