// Writes the fuzzer's seed corpus: valid images (with and without a #! line)
// built by the tests' independent writer.
#include <fstream>
#include <string>

#include "../cpp/image_builder.h"

using namespace lazyexec::image::testing;

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::string dir = argv[1];
  auto write = [&](const std::string& name, const std::string& data) {
    std::ofstream(dir + "/" + name, std::ios::binary) << data;
  };
  write("seed-3", build_image(sample_modules(3)));
  write("seed-40", build_image(sample_modules(40)));
  write("seed-extensions", build_image(sample_modules(16, true)));
  write("seed-entry", build_image(sample_modules(5), "PYMG", "0123456789abcdef", "pkg:main", "#!/usr/bin/env x\n"));
  return 0;
}
