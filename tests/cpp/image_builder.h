// A second, independent writer of the image format (docs/image-format.md),
// for the reader's tests and the fuzzer's seed: if it and the Python builder
// disagree with the spec, the tests say so.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "image/format.h"
#include "image/reader.h"

namespace lazyexec::image::testing {

struct TestModule {
  std::string name, origin, locations, payload;
  uint32_t flags = 0;
  std::string code;  // a plan module's eager code (flag kRecordCode when not empty)
  std::vector<std::string> units;  // a plan's unit code, out of line (its payload gets the table in front)
};

inline void put(std::string& s, size_t at, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s[at + i] = (char)((v >> (8 * i)) & 0xff);
}

// The `n`-byte little-endian integer at `at`: what put() wrote.
inline uint64_t get(const std::string& s, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | (unsigned char)s[at + i];
  return v;
}

// A plan's unit table (format 6) for its `n` units: unit k's where is
// "k (def uk)", it binds "uk", and its dep is unit k - 1 (unit 0 has none).
inline std::string unit_table(size_t n) {
  std::string records, text, links;
  auto u32 = [](std::string& s, uint64_t v) {
    for (int i = 0; i < 4; ++i) s += (char)((v >> (8 * i)) & 0xff);
  };
  for (size_t k = 0; k < n; ++k) {
    u32(records, text.size());  // where
    text += std::to_string(k) + " (def u" + std::to_string(k) + ")" + '\0';
    u32(records, text.size());  // binds
    text += "u" + std::to_string(k) + '\0';
    u32(records, 1);
    u32(records, links.size() / 4);
    u32(records, k > 0 ? 1 : 0);  // deps
    u32(records, 0);              // calls
    if (k > 0) u32(links, k - 1);
  }
  std::string out;
  u32(out, n);
  u32(out, text.size());
  u32(out, links.size() / 4);
  u32(out, 0);
  return out + records + text + links;
}

inline std::string build_image(const std::vector<TestModule>& mods, std::string_view pymagic = "PYMG",
                               std::string_view key = "0123456789abcdef", std::string entry = "",
                               std::string prefix = "") {
  uint32_t n = (uint32_t)mods.size(), b = 8;
  while (b < 2 * n + 1) b *= 2;
  auto align8 = [](uint64_t x) { return (x + 7) / 8 * 8; };
  uint64_t buckets_at = kHeaderSize, records_at = align8(buckets_at + b * kBucketSize);
  uint64_t strings_at = records_at + n * kRecordSize;
  std::string strings;
  auto add = [&](const std::string& s) {
    uint64_t at = strings_at + strings.size();
    strings += s;
    return at;
  };
  std::vector<uint64_t> name_at, origin_at, loc_at;
  for (auto& m : mods) {
    name_at.push_back(add(m.name));
    origin_at.push_back(add(m.origin));
    loc_at.push_back(add(m.locations));
  }
  uint64_t entry_at = entry.empty() ? 0 : add(entry);
  uint64_t at = align8(strings_at + strings.size());
  std::vector<uint64_t> payload_at, code_at;
  // A plan's payload: its unit code table (format 4), its unit table (format 6), then the plan.
  std::vector<std::string> payloads;
  for (auto& m : mods) {
    std::string p = m.payload;
    if (m.flags & kRecordPlan)
      p = std::string(plan::kTableAt + kUnitEntrySize * m.units.size(), '\0') + unit_table(m.units.size()) + p;
    payloads.push_back(p);
  }
  for (size_t i = 0; i < mods.size(); ++i) {
    if (mods[i].flags & kRecordExtension) {  // format 5: no payload, its fields 0
      payload_at.push_back(0);
      code_at.push_back(0);
      continue;
    }
    payload_at.push_back(at);
    at = align8(at + payloads[i].size());
    code_at.push_back(mods[i].code.empty() ? 0 : at);
    at = align8(at + mods[i].code.size());
  }
  std::vector<std::vector<uint64_t>> unit_at(mods.size());
  for (size_t i = 0; i < mods.size(); ++i)
    for (auto& u : mods[i].units) {
      unit_at[i].push_back(at);
      at += u.size();
    }
  for (size_t i = 0; i < mods.size(); ++i) {
    if (!(mods[i].flags & kRecordPlan)) continue;
    std::string& p = payloads[i];
    put(p, plan::kCountAt, mods[i].units.size(), 4);
    for (size_t k = 0; k < mods[i].units.size(); ++k) {
      size_t e = plan::kTableAt + k * kUnitEntrySize;
      put(p, e + unit::kOffsetAt, unit_at[i][k], 8);
      put(p, e + unit::kLengthAt, mods[i].units[k].size(), 4);
      put(p, e + unit::kHashAt, blob_hash(mods[i].units[k]), 8);
    }
  }
  std::string out(at, '\0');
  std::memcpy(out.data(), kMagic, 8);
  put(out, header::kVersionAt, kFormatVersion, 2);
  put(out, header::kFlagsAt, entry.empty() ? 0 : kFlagEntry, 2);
  std::memcpy(out.data() + header::kPyMagicAt, pymagic.data(), 4);
  put(out, header::kLengthAt, at, 8);
  put(out, header::kCountAt, n, 4);
  put(out, header::kBucketsCountAt, b, 4);
  put(out, header::kBucketsAt, buckets_at, 8);
  put(out, header::kRecordsAt, records_at, 8);
  put(out, header::kEntryAt, entry_at, 4);
  put(out, header::kEntryAt + 4, entry.size(), 4);
  std::memcpy(out.data() + header::kRuntimeKeyAt, key.data(), 16);
  for (uint32_t i = 0; i < n; ++i) {
    const auto& m = mods[i];
    uint64_t h = hash64(m.name);
    uint32_t slot = (uint32_t)h & (b - 1);
    while (out[buckets_at + slot * kBucketSize + 4] || out[buckets_at + slot * kBucketSize + 5]) slot = (slot + 1) & (b - 1);
    put(out, buckets_at + slot * kBucketSize, h >> 32, 4);
    put(out, buckets_at + slot * kBucketSize + 4, i + 1, 4);
    size_t r = records_at + i * kRecordSize;
    put(out, r + record::kNameAt, name_at[i], 4);
    put(out, r + record::kNameAt + 4, m.name.size(), 4);
    put(out, r + record::kOriginAt, origin_at[i], 4);
    put(out, r + record::kOriginAt + 4, m.origin.size(), 4);
    put(out, r + record::kLocationsAt, loc_at[i], 4);
    put(out, r + record::kLocationsAt + 4, m.locations.size(), 4);
    put(out, r + record::kFlagsAt, m.flags | (m.code.empty() ? 0 : kRecordCode), 4);
    if (!m.code.empty()) {
      put(out, r + record::kCodeAt, code_at[i], 8);
      put(out, r + record::kCodeLenAt, m.code.size(), 4);
      put(out, r + record::kCodeHashAt, blob_hash(m.code), 8);
      std::memcpy(out.data() + code_at[i], m.code.data(), m.code.size());
    }
    bool extension = (m.flags & kRecordExtension) != 0;
    put(out, r + record::kPayloadLenAt, extension ? 0 : payloads[i].size(), 4);
    put(out, r + record::kPayloadAt, payload_at[i], 8);
    put(out, r + record::kPayloadHashAt, extension ? 0 : blob_hash(payloads[i]), 8);
    put(out, r + record::kMtimeAt, 1000 + i, 8);
    put(out, r + record::kSizeAt, m.payload.size(), 8);
    put(out, r + record::kSourceHashAt, 77, 8);
    if (!extension) std::memcpy(out.data() + payload_at[i], payloads[i].data(), payloads[i].size());
    for (size_t k = 0; k < m.units.size(); ++k)
      std::memcpy(out.data() + unit_at[i][k], m.units[k].data(), m.units[k].size());
  }
  std::memcpy(out.data() + strings_at, strings.data(), strings.size());
  if (!prefix.empty()) {
    prefix.resize((prefix.size() + kBaseAlign - 1) / kBaseAlign * kBaseAlign, '\0');
    out = prefix + out;
  }
  return out;
}

// with_extensions: every seventh module (pkg.mod6, pkg.mod13, ...) an
// extension module (format 5: a record, no payload).
inline std::vector<TestModule> sample_modules(int n = 40, bool with_extensions = false) {
  std::vector<TestModule> mods;
  for (int i = 0; i < n; ++i) {
    TestModule m;
    m.name = i == 0 ? "pkg" : "pkg.mod" + std::to_string(i);
    m.origin = "/src/" + m.name + ".py";
    m.flags = i == 0 ? kRecordPackage : (i % 2 ? kRecordPlan : 0);
    m.locations = i == 0 ? "/src/pkg" : "";
    m.payload = std::string(17 + i * 3, (char)('a' + i % 26));
    if (i % 4 == 1) m.code = std::string(11 + i, (char)('A' + i % 26));  // some plans carry their eager code
    if (m.flags & kRecordPlan)
      for (int k = 0; k < i % 3; ++k) m.units.push_back(std::string(5 + k + i, (char)('0' + k)));  // 0-2 units
    if (with_extensions && i % 7 == 6) {
      m.origin = "/lib/" + m.name + ".cpython-311-x86_64-linux-gnu.so";
      m.flags = kRecordExtension;
      m.payload.clear();
      m.code.clear();
      m.units.clear();
    }
    mods.push_back(m);
  }
  return mods;
}

}  // namespace lazyexec::image::testing
