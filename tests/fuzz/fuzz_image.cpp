// libFuzzer target for the image reader (docs/image-format.md): any bytes
// must be refused or read within bounds. `make fuzz-image` (long run),
// `make fuzz-image-ci` (seconds, in CI).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "image/reader.h"

using namespace lazyexec::image;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string problem;
  // The tests' and the seed's interpreter magic and key; also unchecked.
  for (const Expected& want : {Expected{"PYMG", "0123456789abcdef"}, Expected{}}) {
    auto v = View::open(bytes, want, &problem);
    if (!v) continue;
    uint32_t n = v->count() < 256 ? v->count() : 256;
    for (uint32_t i = 0; i < n; ++i) {
      auto m = v->at(i, &problem);
      if (!m) continue;
      auto again = v->find(m->name, &problem);
      if (again) v->payload(*again, &problem);
      auto payload = v->payload(*m, &problem);
      v->code(*m, &problem);
      // A plan's unit code table and every unit's code (format 4).
      auto parts = payload ? View::split_plan(*m, *payload, &problem) : std::nullopt;
      for (uint32_t k = 0; parts && k < parts->units && k < 256; ++k)
        if (auto unit = v->unit_code(*m, *parts, k, &problem)) (void)unit->intact();
      // Its unit table (format 6), as the runtime reads it once checked:
      // every unit's strings and links.
      size_t sum = 0;
      for (uint32_t k = 0; parts && k < parts->unit_count && k < 256; ++k) {
        UnitEntry u = parts->unit(k);
        sum += std::string_view(parts->text.data() + u.where_at).size();
        const char* name = parts->text.data() + u.binds_at;
        for (uint32_t b = 0; b < u.nbinds && b < 64; ++b) {
          size_t len = std::string_view(name).size();
          sum += len;
          name += len + 1;
        }
        for (uint32_t l = 0; l < u.ndeps + u.ncalls && l < 64; ++l) sum += parts->link(u.links_at + l);
      }
      if (sum == 1) problem.clear();  // keeps the reads
    }
    v->find("pkg", &problem);
    v->find("pkg.mod1", &problem);
    (void)v->entry();
  }
  return 0;
}
