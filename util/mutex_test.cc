#include "util/mutex.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

namespace cxlkv::internal {
namespace {

using namespace std::chrono_literals;

struct Flag {
  Mutex mu;
  CondVar cv;
  bool set GUARDED_BY(mu) = false;
};

TEST(MutexTest, LockExcludesOtherThreads) {
  Mutex mu;
  MutexLock lock(mu);
  EXPECT_FALSE(std::async(std::launch::async, [&] {
                 const bool got = mu.TryLock();
                 if (got) mu.Unlock();
                 return got;
               }).get());
}

TEST(MutexTest, ScopedUnlockLetsOthersIn) {
  Mutex mu;
  MutexLock lock(mu);
  lock.Unlock();
  EXPECT_TRUE(std::async(std::launch::async, [&] {
                const bool got = mu.TryLock();
                if (got) mu.Unlock();
                return got;
              }).get());
  lock.Lock();  // the destructor releases it again
}

TEST(CondVarTest, WaitWakesOnSignal) {
  Flag f;
  std::thread setter([&] {
    std::this_thread::sleep_for(10ms);
    MutexLock lock(f.mu);
    f.set = true;
    f.cv.SignalAll();
  });
  {
    MutexLock lock(f.mu);
    while (!f.set) f.cv.Wait(f.mu);
    EXPECT_TRUE(f.set);
  }
  setter.join();
}

TEST(CondVarTest, WaitUntilTimesOutAndKeepsTheLock) {
  Flag f;
  MutexLock lock(f.mu);
  // Nobody signals: every wait ends at the deadline (or wakes spuriously before it).
  const auto deadline = std::chrono::steady_clock::now() + 20ms;
  while (f.cv.WaitUntil(f.mu, deadline)) {
  }
  EXPECT_GE(std::chrono::steady_clock::now(), deadline);
  // Still held: another thread cannot take it.
  EXPECT_FALSE(std::async(std::launch::async, [&] {
                 const bool got = f.mu.TryLock();
                 if (got) f.mu.Unlock();
                 return got;
               }).get());
}

// What another thread gets of mu right now: a shared hold, an exclusive one.
struct Tries {
  bool shared;
  bool exclusive;
};
Tries TryFromAnotherThread(SharedMutex& mu) {
  return std::async(std::launch::async, [&] {
           Tries t{};
           if (mu.TryLockShared()) {
             t.shared = true;
             mu.UnlockShared();
           }
           if (mu.TryLock()) {
             t.exclusive = true;
             mu.Unlock();
           }
           return t;
         }).get();
}

// What another thread can take while `Lock` holds mu, and that both are free again after.
template <typename Lock>
void ExpectOthersMayTake(bool shared, bool exclusive) {
  SharedMutex mu;
  {
    Lock lock(mu);
    const Tries t = TryFromAnotherThread(mu);
    EXPECT_EQ(t.shared, shared);
    EXPECT_EQ(t.exclusive, exclusive);
  }
  const Tries after = TryFromAnotherThread(mu);
  EXPECT_TRUE(after.shared);
  EXPECT_TRUE(after.exclusive);
}

TEST(SharedMutexTest, ReaderLockAdmitsReadersAndExcludesWriters) {
  ExpectOthersMayTake<ReaderLock>(/*shared=*/true, /*exclusive=*/false);
}

TEST(SharedMutexTest, WriterLockExcludesEveryone) {
  ExpectOthersMayTake<WriterLock>(/*shared=*/false, /*exclusive=*/false);
}

}  // namespace
}  // namespace cxlkv::internal
