// Replays a fuzz target's corpus (backends/pool/fuzz/corpus/<target>/) in the normal builds:
// the target's LLVMFuzzerTestOneInput, compiled with the project's compiler, runs once on
// every file, so the plain and ASan test runs catch a regression on any seed or on a crash
// reproducer kept there, in seconds and without clang. A violated invariant traps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

TEST(FuzzCorpusReplay, EveryFileRunsClean) {
  const fs::path dir = CXLKV_FUZZ_CORPUS;
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  // The corpus is what the fuzzer starts from: an empty one means a broken checkout.
  ASSERT_GE(files.size(), 5u) << dir;
  for (const fs::path& f : files) {
    SCOPED_TRACE(f.string());
    std::ifstream in(f, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
    ASSERT_TRUE(in.eof() || in.good());
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                     bytes.size()),
              0);
  }
}

}  // namespace
