// The 64-bit check of payloads (docs/image-format.md "blob_hash"): the
// image's payloads, eager code and sources, and the artifact store's
// payloads (docs/artifact-format.md). Plain C++, no Python: the start-up
// extension, the full one and the fuzzers all link it.
#pragma once

#include <cstdint>
#include <string_view>

namespace lazyexec::image {

// Two CRC-32C lanes, the 8-byte words at even and at odd positions, the tail
// bytes in lane 0; (~lane1 << 32 | ~lane0) ^ (length * 0x9E3779B97F4A7C15).
// SSE 4.2's crc32 instruction when the CPU has it, else a table.
uint64_t blob_hash(std::string_view data);
uint64_t blob_hash_reference(std::string_view data);  // the table version, always (tests)
uint32_t crc32c(std::string_view data);                // plain CRC-32C (tests: its check value)

}  // namespace lazyexec::image
