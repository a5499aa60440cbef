// HashIndex against std::unordered_map under random inserts and erases, with hashes crowded
// onto few home slots so long probe runs and wrap-around shifts are exercised.
#include "backends/chunk_index.h"

#include <gtest/gtest.h>

#include <random>
#include <unordered_map>
#include <vector>

namespace cxlkv::internal {
namespace {

TEST(HashIndexTest, MatchesAReferenceMapUnderCrowdedRandomOps) {
  for (std::uint64_t home_bits : {3u, 20u}) {
    SCOPED_TRACE(home_bits);
    EntryPool pool;
    HashIndex index(pool);
    std::unordered_map<std::uint64_t, std::uint32_t> model;  // hash.hi -> local
    std::mt19937_64 rng(home_bits);
    for (int op = 0; op < 60000; ++op) {
      // hi is unique per key; lo is crowded into the top 2^home_bits values, so home slots sit
      // at the end of the table and probe runs wrap around to its start.
      const std::uint64_t k = rng() % 3000;
      const std::uint64_t spread = (k * 0x9e3779b97f4a7c15ULL) >> (64 - home_bits);
      const KeyHash h{~std::uint64_t{0} - spread, k + 1};
      auto it = model.find(h.hi);
      if (it == model.end()) {
        ASSERT_EQ(index.Find(h), kNoLocal);
        const std::uint32_t local = pool.Allocate();
        pool.at(local).hash = h;
        ASSERT_TRUE(index.Insert(h, local));
        model.emplace(h.hi, local);
      } else {
        ASSERT_EQ(index.Find(h), it->second);
        if (rng() % 2 == 0) {
          index.Erase(h, it->second);
          pool.Free(it->second);
          model.erase(it);
          ASSERT_EQ(index.Find(h), kNoLocal);
        }
      }
      ASSERT_EQ(index.size(), model.size());
    }
    std::size_t seen = 0;
    index.ForEach([&](std::uint32_t local) {
      ++seen;
      EXPECT_EQ(model.at(pool.at(local).hash.hi), local);
    });
    EXPECT_EQ(seen, model.size());
    EXPECT_GE(index.bytes() / 4 * 4, model.size() * 5);  // never past 80% full
  }
}

TEST(EntryPoolTest, IdsAreStableAndReused) {
  EntryPool pool;
  std::vector<std::uint32_t> ids;
  std::vector<Entry*> where;
  for (int i = 0; i < 5000; ++i) {  // crosses several block boundaries
    ids.push_back(pool.Allocate());
    where.push_back(&pool.at(ids.back()));
    where.back()->size = static_cast<std::uint32_t>(i);
  }
  for (int i = 0; i < 5000; ++i) {
    EXPECT_EQ(&pool.at(ids[i]), where[i]);
    EXPECT_EQ(pool.at(ids[i]).size, static_cast<std::uint32_t>(i));
  }
  EXPECT_EQ(pool.live(), 5000u);
  EXPECT_EQ(pool.touched_bytes(), 5000 * sizeof(Entry));
  pool.Free(ids[10]);
  const std::uint32_t again = pool.Allocate();
  EXPECT_EQ(again, ids[10]);
  EXPECT_EQ(pool.at(again).size, 0u);  // handed out fresh
  EXPECT_EQ(pool.touched_bytes(), 5000 * sizeof(Entry));
}

}  // namespace
}  // namespace cxlkv::internal
