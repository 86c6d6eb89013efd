// The application image's layout (docs/image-format.md), defined once: the
// reader, the Python binding and the tests use these names, never numbers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lazyexec::image {

inline constexpr char kMagic[8] = {'\x89', 'L', 'Z', 'I', '\r', '\n', '\x1a', '\n'};
inline constexpr uint16_t kFormatVersion = 6;

// Header: 80 bytes at the image base (offset 0, or after a `#!` line).
inline constexpr size_t kHeaderSize = 80;
namespace header {
inline constexpr size_t kMagicAt = 0;        // 8 bytes
inline constexpr size_t kVersionAt = 8;      // u16
inline constexpr size_t kFlagsAt = 10;       // u16
inline constexpr size_t kPyMagicAt = 12;     // 4 bytes: importlib.util.MAGIC_NUMBER
inline constexpr size_t kLengthAt = 16;      // u64: bytes from the base to the end of the file
inline constexpr size_t kCountAt = 24;       // u32: modules
inline constexpr size_t kBucketsCountAt = 28;  // u32: power of two, > modules
inline constexpr size_t kBucketsAt = 32;     // u64: offset of the bucket table
inline constexpr size_t kRecordsAt = 40;     // u64: offset of the record table
inline constexpr size_t kEntryAt = 48;       // u32 offset, u32 length: "module:function" or empty
inline constexpr size_t kRuntimeKeyAt = 56;  // 16 bytes: the lazyexec runtime that can run the plans
inline constexpr size_t kReservedAt = 72;    // 8 bytes, zero
}  // namespace header

// Header flags.
inline constexpr uint16_t kFlagEntry = 1 << 0;   // an entry point is present
inline constexpr uint16_t kFlagTraced = 1 << 1;  // payloads are in first-use order
inline constexpr uint16_t kCheckShift = 2;       // bits 2-3: default staleness check
inline constexpr uint16_t kCheckMask = 3 << kCheckShift;
inline constexpr uint16_t kOptimizeShift = 4;   // bits 4-5: the -O level the code was compiled at (0-2)
inline constexpr uint16_t kOptimizeMask = 3 << kOptimizeShift;
inline constexpr uint16_t kKnownFlags = kFlagEntry | kFlagTraced | kCheckMask | kOptimizeMask;

enum class Check : uint16_t { None = 0, Mtime = 1, Hash = 2 };

// Bucket: u32 tag (high 32 bits of the name's hash), u32 record index + 1 (0: empty).
inline constexpr size_t kBucketSize = 8;
inline constexpr uint32_t kMaxBuckets = 1u << 24;

// Record: 96 bytes per module.
inline constexpr size_t kRecordSize = 96;
namespace record {
inline constexpr size_t kNameAt = 0;         // u32 offset, u32 length
inline constexpr size_t kOriginAt = 8;       // u32 offset, u32 length
inline constexpr size_t kLocationsAt = 16;   // u32 offset, u32 length: NUL-separated paths
inline constexpr size_t kFlagsAt = 24;       // u32
inline constexpr size_t kPayloadLenAt = 28;  // u32
inline constexpr size_t kPayloadAt = 32;     // u64 offset
inline constexpr size_t kPayloadHashAt = 40;  // u64: hash64 of the payload bytes
inline constexpr size_t kMtimeAt = 48;       // u64: source st_mtime_ns at build
inline constexpr size_t kSizeAt = 56;        // u64: source size at build
inline constexpr size_t kSourceHashAt = 64;  // u64: hash64 of the source bytes
inline constexpr size_t kCodeAt = 72;        // u64 offset: a plan module's eager code object (flag kRecordCode)
inline constexpr size_t kCodeLenAt = 80;     // u32
inline constexpr size_t kReservedAt = 84;    // 4 bytes, zero
inline constexpr size_t kCodeHashAt = 88;    // u64: hash64 of the eager code bytes
}  // namespace record

// Record flags.
inline constexpr uint32_t kRecordPackage = 1 << 0;  // a package: locations are its __path__
inline constexpr uint32_t kRecordPlan = 1 << 1;     // payload is a lazy plan, else a code object
inline constexpr uint32_t kRecordCode = 1 << 2;     // a plan module also holds its eager code (the usage profile's choice)
// An extension module (format 5): `origin` is its shared library, loaded by
// importlib's ExtensionFileLoader; no payload, no code (all their fields 0).
inline constexpr uint32_t kRecordExtension = 1 << 3;
inline constexpr uint32_t kKnownRecordFlags = kRecordPackage | kRecordPlan | kRecordCode | kRecordExtension;

// A plan's payload (format 4): a table of its units' code, stored out of
// line (read from the mapping at the unit's first use, never copied at
// load); then (format 6) its unit table: per unit its `where`, bound names,
// deps and calls, in the layout of the runtime's records (read by the
// loader without unmarshalling them); then marshal.dumps((codes, steps))
// whose codes[i] is unit i's code field (unit code as indexes into the
// code table).
namespace plan {
inline constexpr size_t kCountAt = 0;     // u32: table entries
inline constexpr size_t kReservedAt = 4;  // u32, zero
inline constexpr size_t kTableAt = 8;     // count x kUnitEntrySize, then the marshalled plan
}  // namespace plan
inline constexpr size_t kUnitEntrySize = 24;
namespace unit {
inline constexpr size_t kOffsetAt = 0;    // u64: the unit's marshalled code object
inline constexpr size_t kLengthAt = 8;    // u32
inline constexpr size_t kReservedAt = 12;  // u32, zero
inline constexpr size_t kHashAt = 16;     // u64: blob_hash of the code bytes, checked at first use
}  // namespace unit

// The unit table (format 6), right after the unit code table: a 16-byte
// header, U records, the text (T bytes: NUL-terminated strings), the
// links (L u32 unit indexes).
inline constexpr size_t kUnitsHeaderSize = 16;
namespace units {
inline constexpr size_t kCountAt = 0;     // u32 U: units (the plan's, in source order)
inline constexpr size_t kTextAt = 4;      // u32 T: text bytes
inline constexpr size_t kLinksAt = 8;     // u32 L: links
inline constexpr size_t kReservedAt = 12;  // u32, zero
}  // namespace units
inline constexpr size_t kUnitRecordSize = 24;
namespace unit_record {
inline constexpr size_t kWhereAt = 0;   // u32: offset in the text of its `where` ("12 (def f)")
inline constexpr size_t kBindsAt = 4;   // u32: offset in the text of its first bound name
inline constexpr size_t kNBindsAt = 8;  // u32: names it binds, one after another
inline constexpr size_t kLinksAt = 12;  // u32: index in the links of its first dep
inline constexpr size_t kDepsAt = 16;   // u32: deps (then its calls follow them)
inline constexpr size_t kCallsAt = 20;  // u32: calls
}  // namespace unit_record

// A `#!` line is looked for in the first kMaxShebang bytes; the base is the
// first multiple of kBaseAlign after its newline.
inline constexpr size_t kMaxShebang = 4096;
inline constexpr size_t kBaseAlign = 16;

}  // namespace lazyexec::image
