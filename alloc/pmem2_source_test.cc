// File and device DAX sources through libpmem2. A temporary file or a memfd stands in for a
// device; a real /dev/dax is tested only where CXLKV_TEST_DEVDAX names one.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cxlkv/devices.h"
#include "cxlkv/memory_source.h"
#include "tests/test_util.h"
#include "util/format.h"

namespace cxlkv {
namespace {

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kGiB = std::size_t{1} << 30;

std::uintptr_t Addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

std::unique_ptr<MemorySource> FileSource(const std::string& path, bool create = true,
                                         std::size_t offset = 0) {
  FileOptions options;
  options.path = path;
  options.create = create;
  options.offset = offset;
  return MemorySource::File(std::move(options));
}

std::unique_ptr<MemorySource> DaxSource(const std::string& path, std::size_t offset = 0) {
  DevDaxOptions options;
  options.path = path;
  options.offset = offset;
  return MemorySource::DevDax(std::move(options));
}

std::size_t FileSize(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? static_cast<std::size_t>(st.st_size) : 0;
}

// Reads the file back with pread, independently of any mapping.
std::vector<std::byte> ReadFile(int fd, std::size_t offset, std::size_t len) {
  std::vector<std::byte> buf(len);
  const ssize_t n = pread(fd, buf.data(), len, static_cast<off_t>(offset));
  EXPECT_EQ(n, static_cast<ssize_t>(len));
  return buf;
}

// A memfd: a file no file system path names, reachable as /proc/self/fd/N.
class Memfd {
 public:
  explicit Memfd(std::size_t size) : fd_(memfd_create("cxlkv-test", MFD_CLOEXEC)) {
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(size)), 0);
  }
  ~Memfd() { close(fd_); }
  int fd() const { return fd_; }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

TEST(FileSourceTest, PersistsAcrossUnmapAndRemap) {
  testing::TempDir dir;
  const std::string path = dir.File("pool");
  const std::size_t size = 4 * kMiB;
  std::vector<std::byte> pattern(size);
  testing::FillPattern(pattern.data(), size, 42);
  {
    Result<std::unique_ptr<MemoryRegion>> r = FileSource(path)->Map(size);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const MemoryRegion& region = **r;
    EXPECT_EQ(region.size(), size);
    EXPECT_EQ(region.info().kind, MemoryKind::kFile);
    EXPECT_EQ(region.info().path, path);
    EXPECT_NE(region.info().persistence, PersistGranularity::kNone);
    EXPECT_EQ(FileSize(path), size) << "create=true grows the file to the mapped size";
    region.CopyAndPersist(region.data(), pattern.data(), size);
  }
  Result<std::unique_ptr<MemoryRegion>> again = FileSource(path, /*create=*/false)->Map(size);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(testing::FirstPatternMismatch((*again)->data(), size, 42), -1);
}

TEST(FileSourceTest, BatchedCopiesThenOneDrain) {
  testing::TempDir dir;
  const std::string path = dir.File("batched");
  const std::size_t size = kMiB;
  std::vector<std::byte> pattern(size);
  testing::FillPattern(pattern.data(), size, 9);
  {
    Result<std::unique_ptr<MemoryRegion>> r = FileSource(path)->Map(size);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const MemoryRegion& region = **r;
    for (std::size_t off = 0; off < size; off += 64 * kKiB) {
      region.CopyNoDrain(region.data() + off, pattern.data() + off, 64 * kKiB);
    }
    region.Drain();
    region.data()[0] = std::byte{0x5a};
    region.Persist(region.data(), 1);
  }
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<std::byte> back = ReadFile(fd, 0, size);
  close(fd);
  EXPECT_EQ(back[0], std::byte{0x5a});
  back[0] = pattern[0];
  EXPECT_EQ(testing::FirstPatternMismatch(back.data(), size, 9), -1)
      << "bytes written through the mapping must reach the file";
}

TEST(FileSourceTest, TooSmallFileWithoutCreateIsAClearError) {
  testing::TempDir dir;
  const std::string path = dir.File("small");
  {
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 4 * kKiB), 0);
    close(fd);
  }
  Result<std::unique_ptr<MemoryRegion>> r = FileSource(path, /*create=*/false)->Map(kMiB);
  ASSERT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_EQ(r.status().message(),
            "file " + path + " is 4.0 KiB, smaller than the 1.0 MiB to map (create=false)");
  EXPECT_EQ(FileSize(path), 4 * kKiB) << "create=false must not grow the file";
}

TEST(FileSourceTest, MissingDirectoryIsNotFound) {
  testing::TempDir dir;
  const std::string path = dir.File("no/such/dir/pool");
  Result<std::unique_ptr<MemoryRegion>> r = FileSource(path)->Map(kMiB);
  ASSERT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
  EXPECT_TRUE(FileSource(dir.File("absent"), false)->Map(kMiB).status().IsNotFound());
}

TEST(FileSourceTest, MemfdPathWorksAndReportsItsGranularity) {
  Memfd memfd(2 * kMiB);
  Result<std::unique_ptr<MemoryRegion>> r =
      FileSource(memfd.path(), /*create=*/false)->Map(2 * kMiB);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // shmem has no MAP_SYNC, so libpmem2 falls back to msync: page granularity.
  EXPECT_EQ((*r)->info().persistence, PersistGranularity::kPage)
      << PersistGranularityName((*r)->info().persistence);
  EXPECT_EQ((*r)->info().path, memfd.path());
  testing::FillPattern((*r)->data(), 2 * kMiB, 5);
  (*r)->Persist((*r)->data(), 2 * kMiB);
  std::vector<std::byte> back = ReadFile(memfd.fd(), 0, 2 * kMiB);
  EXPECT_EQ(testing::FirstPatternMismatch(back.data(), back.size(), 5), -1);
}

TEST(FileSourceTest, HonoursAlignmentsBeyondThePageSize) {
  testing::TempDir dir;
  std::vector<std::unique_ptr<MemoryRegion>> regions;  // kept alive: distinct addresses
  for (const std::size_t alignment : {std::size_t{0}, 64 * kKiB, 2 * kMiB, kGiB}) {
    auto source = FileSource(dir.File("aligned" + std::to_string(alignment)));
    Result<std::unique_ptr<MemoryRegion>> r = source->Map(192 * kKiB, alignment);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(Addr((*r)->data()) % std::max<std::size_t>(alignment, 4096), 0u)
        << "alignment " << alignment;
    testing::FillPattern((*r)->data(), (*r)->size(), alignment);
    EXPECT_EQ(testing::FirstPatternMismatch((*r)->data(), (*r)->size(), alignment), -1);
    regions.push_back(std::move(*r));
  }
}

TEST(FileSourceTest, OffsetSelectsThePartOfTheFileMapped) {
  testing::TempDir dir;
  const std::string path = dir.File("offset");
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  std::vector<std::byte> page(4 * kKiB);
  for (int i = 0; i < 3; ++i) {
    testing::FillPattern(page.data(), page.size(), static_cast<std::uint64_t>(i));
    ASSERT_EQ(pwrite(fd, page.data(), page.size(), static_cast<off_t>(i * 4 * kKiB)),
              static_cast<ssize_t>(page.size()));
  }
  {
    Result<std::unique_ptr<MemoryRegion>> r =
        FileSource(path, /*create=*/false, /*offset=*/4 * kKiB)->Map(8 * kKiB);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(testing::FirstPatternMismatch((*r)->data(), 4 * kKiB, 1), -1);
    EXPECT_EQ(testing::FirstPatternMismatch((*r)->data() + 4 * kKiB, 4 * kKiB, 2), -1);
    testing::FillPattern((*r)->data(), 4 * kKiB, 77);
    (*r)->Persist((*r)->data(), 4 * kKiB);
  }
  std::vector<std::byte> back = ReadFile(fd, 4 * kKiB, 4 * kKiB);
  EXPECT_EQ(testing::FirstPatternMismatch(back.data(), back.size(), 77), -1);
  back = ReadFile(fd, 0, 4 * kKiB);
  EXPECT_EQ(testing::FirstPatternMismatch(back.data(), back.size(), 0), -1)
      << "the page before the offset must be untouched";
  close(fd);

  Result<std::unique_ptr<MemoryRegion>> past = FileSource(path, false, 8 * kKiB)->Map(8 * kKiB);
  ASSERT_TRUE(past.status().IsInvalidArgument()) << past.status().ToString();
  EXPECT_NE(past.status().message().find("offset 8.0 KiB"), std::string::npos)
      << past.status().message();
}

TEST(FileSourceTest, RejectsBadArguments) {
  testing::TempDir dir;
  const std::string path = dir.File("bad");
  EXPECT_TRUE(FileSource(path)->Map(0).status().IsInvalidArgument());
  EXPECT_TRUE(FileSource(path)->Map(kMiB, 3 * kKiB).status().IsInvalidArgument());
  Result<std::unique_ptr<MemoryRegion>> r = FileSource(path, true, 100)->Map(kMiB);
  ASSERT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(r.status().message().find("page size"), std::string::npos) << r.status().message();
  Result<std::unique_ptr<MemoryRegion>> directory = FileSource(dir.path())->Map(kMiB);
  EXPECT_TRUE(directory.status().IsInvalidArgument()) << directory.status().ToString();
  EXPECT_NE(directory.status().message().find(dir.path()), std::string::npos);
}

TEST(DevDaxSourceTest, RegularFileOrMemfdIsNotACharacterDevice) {
  testing::TempDir dir;
  const std::string path = dir.File("fake-dax");
  ASSERT_TRUE(FileSource(path)->Map(2 * kMiB).ok());  // create the file
  Memfd memfd(2 * kMiB);
  for (const std::string& p : {path, memfd.path()}) {
    Result<std::unique_ptr<MemoryRegion>> r = DaxSource(p)->Map(0);
    ASSERT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
    EXPECT_NE(r.status().message().find(p + " is not a character device"), std::string::npos)
        << r.status().message();
  }
}

TEST(DevDaxSourceTest, MissingDeviceIsNotFound) {
  Result<std::unique_ptr<MemoryRegion>> r = DaxSource("/dev/dax9.9")->Map(0);
  ASSERT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("/dev/dax9.9"), std::string::npos);
  EXPECT_TRUE(FindDaxDevice("/dev/dax9.9").status().IsNotFound());
}

TEST(DevDaxSourceTest, OtherCharacterDeviceIsRejected) {
  struct stat st {};
  if (stat("/dev/null", &st) != 0 || !S_ISCHR(st.st_mode)) {
    GTEST_SKIP() << "/dev/null is not a character device here";
  }
  Result<std::unique_ptr<MemoryRegion>> r = DaxSource("/dev/null")->Map(0);
  ASSERT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("not a device DAX"), std::string::npos)
      << r.status().message();
}

TEST(DevDaxSourceTest, RealDeviceMapsWholeAndRejectsBadRequests) {
  const std::string path = testing::EnvDevDaxPath();
  if (path.empty()) {
    CXLKV_SKIP_NO_HARDWARE("CXLKV_TEST_DEVDAX is not set: no /dev/dax device to map");
  }
  Result<DaxDeviceInfo> dax = FindDaxDevice(path);
  ASSERT_TRUE(dax.ok()) << dax.status().ToString();
  ASSERT_GT(dax->alignment, 0u);
  ASSERT_EQ(dax->mode, "devdax") << path << " is onlined as system RAM; it cannot be mapped";
  {
    Result<std::unique_ptr<MemoryRegion>> r = DaxSource(path)->Map(0, dax->alignment);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const MemoryRegion& region = **r;
    EXPECT_EQ(region.size(), dax->size);
    EXPECT_EQ(Addr(region.data()) % dax->alignment, 0u);
    EXPECT_EQ(region.info().kind, MemoryKind::kDevDax);
    EXPECT_EQ(region.info().page_size, dax->alignment);
    EXPECT_EQ(region.info().numa_node, dax->numa_node);
    EXPECT_NE(region.info().persistence, PersistGranularity::kNone);
    // The first and the last 2 MiB: writing a whole device would take minutes.
    const std::size_t chunk = std::min<std::size_t>(2 * kMiB, region.size() / 2);
    std::vector<std::byte> pattern(chunk);
    for (const std::size_t off : {std::size_t{0}, region.size() - chunk}) {
      testing::FillPattern(pattern.data(), chunk, off);
      region.CopyAndPersist(region.data() + off, pattern.data(), chunk);
      EXPECT_EQ(testing::FirstPatternMismatch(region.data() + off, chunk, off), -1);
    }
  }
  const std::string align_text = FormatBytes(dax->alignment);
  if (dax->alignment > 4096) {
    Result<std::unique_ptr<MemoryRegion>> r = DaxSource(path)->Map(0, 4096);
    ASSERT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
    EXPECT_EQ(r.status().message(), "alignment 4.0 KiB for " + path +
                                        " is not a multiple of the device alignment " +
                                        align_text);
    Result<std::unique_ptr<MemoryRegion>> off = DaxSource(path, 4096)->Map(dax->alignment);
    EXPECT_TRUE(off.status().IsInvalidArgument()) << off.status().ToString();
  }
  Result<std::unique_ptr<MemoryRegion>> big = DaxSource(path)->Map(dax->size + dax->alignment);
  ASSERT_TRUE(big.status().IsNoSpace()) << big.status().ToString();
  EXPECT_NE(big.status().message().find(FormatBytes(dax->size)), std::string::npos)
      << big.status().message();
  EXPECT_NE(big.status().message().find(FormatBytes(dax->size + dax->alignment)),
            std::string::npos)
      << big.status().message();
}

TEST(DaxDevicesTest, DiscoveryListsExactlyTheDaxCharacterDevices) {
  std::vector<std::string> expected;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev", ec)) {
    const std::string name = entry.path().filename();
    if (name.rfind("dax", 0) == 0 && entry.is_character_file(ec)) {
      expected.push_back(entry.path());
    }
  }
  std::vector<std::string> warnings;
  const std::vector<DaxDeviceInfo> devices = DiscoverDaxDevices(&warnings);
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  // A device onlined as system RAM (kmem) has no /dev node; the rest must all be listed.
  std::size_t devdax_mode = 0;
  for (const DaxDeviceInfo& d : devices) {
    if (d.mode == "devdax") {
      ++devdax_mode;
      EXPECT_TRUE(std::filesystem::exists(d.path)) << d.path;
    }
  }
  EXPECT_EQ(devdax_mode, expected.size());
  for (const DaxDeviceInfo& d : devices) {
    EXPECT_GT(d.size, 0u) << d.path;
    EXPECT_TRUE(IsPowerOfTwo(d.alignment)) << d.path << " alignment " << d.alignment;
    EXPECT_TRUE(d.mode == "devdax" || d.mode == "system-ram") << d.mode;
    Result<DaxDeviceInfo> found = FindDaxDevice(d.path);
    ASSERT_TRUE(found.ok()) << found.status().ToString();
    EXPECT_EQ(found->size, d.size);
  }
}

}  // namespace
}  // namespace cxlkv
