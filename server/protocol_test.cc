#include "server/protocol.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

namespace cxlkv::serve {
namespace {

constexpr std::size_t kMax = 64 << 20;

std::array<std::byte, kRequestHeaderSize> Header(std::int32_t command, std::int32_t length,
                                                 std::string_view key) {
  Request r;
  r.command = static_cast<Command>(command);
  r.length = length;
  r.layout = {1, 3, {2, 32, 256, 1024}};
  r.key = std::string(key);
  auto h = EncodeRequest(r);
  EXPECT_TRUE(h.ok());
  return *h;
}

TEST(ProtocolTest, LayoutMatchesLMCacheStructFormat) {
  // struct.pack("iiiiiiiii150s", 1, 4096, 1, 3, 0, 2, 32, 256, 1024, b"k".ljust(150))
  auto h = Header(1, 4096, "vllm@m@1@0@abc");
  std::int32_t ints[9];
  std::memcpy(ints, h.data(), sizeof(ints));
  EXPECT_EQ(ints[0], 1);
  EXPECT_EQ(ints[1], 4096);
  EXPECT_EQ(ints[2], 1);
  EXPECT_EQ(ints[3], 3);
  EXPECT_EQ(ints[4], 0);
  EXPECT_EQ(ints[5], 2);
  EXPECT_EQ(ints[8], 1024);
  EXPECT_EQ(std::memcmp(h.data() + 36, "vllm@m@1@0@abc ", 15), 0);
  EXPECT_EQ(static_cast<char>(h[kRequestHeaderSize - 1]), ' ');
  auto r = ParseRequest(h, kMax);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->command, Command::kPut);
  EXPECT_EQ(r->length, 4096);
  EXPECT_EQ(r->key, "vllm@m@1@0@abc");
  EXPECT_EQ(r->layout, (ChunkLayout{1, 3, {2, 32, 256, 1024}}));
}

TEST(ProtocolTest, ReplyPutsLocationFifthAsTheClientReads) {
  auto rep = EncodeReply(kReplySuccess, 77, ChunkLayout{2, 4, {5, 6, 7, 8}});
  std::int32_t ints[9];
  std::memcpy(ints, rep.data(), sizeof(ints));
  const std::int32_t want[9] = {200, 77, 2, 4, 0, 5, 6, 7, 8};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(ints[i], want[i]) << i;
}

TEST(ProtocolTest, KeysOfEveryLengthAndPadding) {
  EXPECT_EQ(ParseRequest(Header(2, 0, std::string(150, 'k')), kMax)->key, std::string(150, 'k'));
  EXPECT_FALSE(EncodeRequest(Request{Command::kGet, 0, {}, 0, std::string(151, 'k')}).ok());
  // NUL padding (struct's own) is accepted as well as spaces.
  auto h = Header(2, 0, "abc");
  std::memset(h.data() + 36 + 3, 0, 147);
  EXPECT_EQ(ParseRequest(h, kMax)->key, "abc");
  // HEALTH and LIST need no key.
  EXPECT_TRUE(ParseRequest(Header(5, 0, ""), kMax).ok());
  EXPECT_TRUE(ParseRequest(Header(4, 0, ""), kMax).ok());
}

TEST(ProtocolTest, BadInputIsRefusedWithAReason) {
  auto expect_bad = [](const std::array<std::byte, kRequestHeaderSize>& h, const char* word) {
    auto r = ParseRequest(h, kMax);
    ASSERT_FALSE(r.ok()) << word;
    EXPECT_TRUE(r.status().IsInvalidArgument());
    EXPECT_NE(r.status().message().find(word), std::string::npos) << r.status().message();
  };
  expect_bad(Header(0, 0, "k"), "unknown command 0");
  expect_bad(Header(6, 0, "k"), "unknown command 6");
  expect_bad(Header(-1, 0, "k"), "unknown command -1");
  expect_bad(Header(1, -5, "k"), "negative length");
  expect_bad(Header(2, -1, "k"), "negative length");
  expect_bad(Header(1, 0, "k"), "empty chunk");
  expect_bad(Header(1, static_cast<std::int32_t>(kMax + 1), "k"), "above the maximum");
  expect_bad(Header(1, 10, ""), "empty key");
  expect_bad(Header(2, 0, "a\x01z"), "control character");
  expect_bad(Header(3, 0, "   "), "empty key");
}

TEST(ProtocolTest, ArbitraryBytesNeverCrashAndKeysStayBounded) {
  std::mt19937_64 rng(42);
  std::array<std::byte, kRequestHeaderSize> h;
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    for (auto& b : h) b = static_cast<std::byte>(rng());
    // Half the time a plausible command and length, so the key checks run too.
    if (i % 2 == 0) {
      const std::int32_t ints[2] = {static_cast<std::int32_t>(1 + rng() % 5),
                                    static_cast<std::int32_t>(rng() % 4096)};
      std::memcpy(h.data(), ints, sizeof(ints));
      for (std::size_t k = 36; k < h.size(); ++k) {
        h[k] = static_cast<std::byte>(0x20 + rng() % 0x5f);  // printable ASCII
      }
    }
    auto r = ParseRequest(h, kMax);
    if (!r.ok()) continue;
    ++parsed;
    EXPECT_LE(r->key.size(), kMaxKeySize);
    EXPECT_GE(r->length, 0);
    for (char c : r->key) EXPECT_GE(static_cast<unsigned char>(c), 0x20);
  }
  EXPECT_GT(parsed, 0);
}

TEST(ProtocolTest, LayoutRoundTripsThroughChunkMeta) {
  const ChunkLayout l{2, 3, {2, 32, 256, -1}};
  auto back = LayoutFromMeta(LayoutToMeta(l));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, l);
  EXPECT_TRUE(LayoutFromMeta(ChunkMeta{}).status().IsCorruption());
}

}  // namespace
}  // namespace cxlkv::serve
