// One store per pool, device and spill log: a second opener, in another process or in this
// one, is refused with an error naming the holder; once the holder closes (or dies), the next
// open succeeds; a store closed and reopened in one process (LMCache's MP restart) works.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "backends/pool/pool_fsck.h"
#include "backends/store_test_util.h"
#include "cxlkv/memory_source.h"
#include "cxlkv/store.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

using namespace store_testing;

StoreOptions PoolOptions(const std::string& pool, const std::string& spill = "") {
  StoreOptions o;
  TierOptions t;
  t.name = "pool";
  t.source_spec = "file:" + pool;
  t.capacity = Slabs(8);
  t.durability = "persist-on-put";
  o.tiers.push_back(std::move(t));
  if (!spill.empty()) {
    o.spill.path = spill;
    o.spill.capacity = 64 * kKiB + 4 * kSlab;
    o.spill.segment_size = kSlab;
  }
  o.chunk_sizes = {kChunk};
  o.slab_size = kSlab;
  o.background_thread = false;
  return o;
}

void ExpectBusyNaming(const Status& s, const std::string& path, pid_t holder) {
  EXPECT_EQ(s.code(), StatusCode::kBusy) << s.ToString();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("pid " + std::to_string(holder)), std::string::npos) << s.ToString();
}

TEST(StoreMediaLockTest, SecondOpenInThisProcessIsRefusedUntilTheFirstCloses) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool");
  auto first = Store::Open(PoolOptions(pool));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE((*first)->Put(Key(1), Bytes(kChunk, Seed(1))).ok());

  auto second = Store::Open(PoolOptions(pool));
  ASSERT_FALSE(second.ok());
  ExpectBusyNaming(second.status(), pool, getpid());
  EXPECT_NE(second.status().message().find("this process"), std::string::npos);

  // fsck and a plain mapping of the file are refused too.
  FileOptions fo;
  fo.path = pool;
  fo.create = false;
  auto mapped = MemorySource::File(fo)->Map(Slabs(8));
  ASSERT_FALSE(mapped.ok());
  ExpectBusyNaming(mapped.status(), pool, getpid());

  // The first store is untouched by the attempts.
  ExpectChunk(**first, 1);
  first->reset();
  // Closed, then reopened in the same process: works, with its chunk.
  auto again = Store::Open(PoolOptions(pool));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ExpectChunk(**again, 1);
  again->reset();
  auto third = Store::Open(PoolOptions(pool));
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ((*third)->Stats().tiers[0].recovered, 1u);
}

TEST(StoreMediaLockTest, SpillLogIsLockedToo) {
  testing::TempDir dir;
  const std::string spill = dir.File("spill.log");
  auto first = Store::Open(PoolOptions(dir.File("a"), spill));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  // Another pool, the same spill log.
  auto second = Store::Open(PoolOptions(dir.File("b"), spill));
  ASSERT_FALSE(second.ok());
  ExpectBusyNaming(second.status(), spill, getpid());
  first->reset();
  auto after = Store::Open(PoolOptions(dir.File("b"), spill));
  EXPECT_TRUE(after.ok()) << after.status().ToString();
}

// A child holds the store open until told to close (or dies); the parent's opens in between
// are refused and name the child.
TEST(StoreMediaLockTest, AnotherProcessIsRefusedWhileTheHolderLives) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool"), spill = dir.File("spill.log");
  for (const bool killed : {false, true}) {
    SCOPED_TRACE(killed ? "holder killed" : "holder closes");
    int ready[2], done[2];
    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(done), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(ready[0]);
      close(done[1]);
      auto s = Store::Open(PoolOptions(pool, spill));
      char ok = s.ok() ? 'y' : 'n';
      if (s.ok() && !(*s)->Put(Key(7), Bytes(kChunk, Seed(7))).ok()) ok = 'n';
      if (write(ready[1], &ok, 1) != 1) _exit(3);
      char c;
      if (read(done[0], &c, 1) != 1) _exit(4);
      s = Status::Ok();  // closed cleanly
      _exit(0);
    }
    close(ready[1]);
    close(done[0]);
    char ok = 0;
    ASSERT_EQ(read(ready[0], &ok, 1), 1);
    ASSERT_EQ(ok, 'y');

    auto second = Store::Open(PoolOptions(pool, spill));
    ASSERT_FALSE(second.ok());
    ExpectBusyNaming(second.status(), pool, child);
    // The command line is named too (this test binary's).
    EXPECT_NE(second.status().message().find("store_media_lock_test"), std::string::npos)
        << second.status().ToString();
    auto spill_only = Store::Open(PoolOptions(dir.File("other"), spill));
    ASSERT_FALSE(spill_only.ok());
    ExpectBusyNaming(spill_only.status(), spill, child);

    if (killed) {
      ASSERT_EQ(kill(child, SIGKILL), 0);
    } else {
      ASSERT_EQ(write(done[1], "x", 1), 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    close(ready[0]);
    close(done[1]);
    // The holder is gone: the lock went with it.
    auto after = Store::Open(PoolOptions(pool, spill));
    ASSERT_TRUE(after.ok()) << after.status().ToString();
    ExpectChunk(**after, 7);
  }
}

// Whoever may open a pool or a log reads every chunk in it, and may lock it: files cxlkv
// creates are their owner's alone.
TEST(StoreMediaLockTest, NewPoolAndLogFilesAreTheOwnersAlone) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool"), spill = dir.File("spill.log");
  {
    auto s = Store::Open(PoolOptions(pool, spill));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  for (const std::string& path : {pool, spill}) {
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 077, 0u) << path << ": mode " << std::oct << (st.st_mode & 0777);
  }
}

}  // namespace
}  // namespace cxlkv
