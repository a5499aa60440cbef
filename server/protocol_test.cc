#include "server/protocol.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

namespace cxlkv::serve {
namespace {

constexpr std::size_t kMax = 64 << 20;

// A header whose layout is a byte buffer of `length` bytes (any length is valid for it).
std::array<std::byte, kRequestHeaderSize> Header(std::int32_t command, std::int32_t length,
                                                 std::string_view key,
                                                 ChunkLayout layout = {kFormatBinaryBuffer,
                                                                       kDtypeNone,
                                                                       {0, 0, 0, 0}}) {
  Request r;
  r.command = static_cast<Command>(command);
  r.length = length;
  r.layout = layout;
  r.key = std::string(key);
  auto h = EncodeRequest(r);
  EXPECT_TRUE(h.ok());
  return *h;
}

TEST(ProtocolTest, LayoutMatchesLMCacheStructFormat) {
  // struct.pack("iiiiiiiii150s", 1, 4096, 1, 3, 0, 2, 32, 256, 1024, b"k".ljust(150)):
  // ClientMetaMessage.serialize, location fifth.
  auto h = Header(1, 2 * 32 * 256 * 1024 * 2, "vllm@m@1@0@abc", {1, 3, {2, 32, 256, 1024}});
  std::int32_t ints[9];
  std::memcpy(ints, h.data(), sizeof(ints));
  EXPECT_EQ(ints[0], 1);
  EXPECT_EQ(ints[1], 2 * 32 * 256 * 1024 * 2);
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
  EXPECT_EQ(r->length, 2 * 32 * 256 * 1024 * 2);
  EXPECT_EQ(r->key, "vllm@m@1@0@abc");
  EXPECT_EQ(r->layout, (ChunkLayout{1, 3, {2, 32, 256, 1024}}));
}

TEST(ProtocolTest, ReplyPutsLocationLastAsServerMetaMessageDoes) {
  // LMCache's ServerMetaMessage(200, 33554432, KV_2LTD, bfloat16, [2, 32, 256, 1024])
  // .serialize() is struct.pack("iiiiiiiii", 200, 33554432, 1, 3, 2, 32, 256, 1024, 0), and
  // its deserialize reads the same order (the kit's get-reply-header check runs both).
  auto rep = EncodeReply(kReplySuccess, 33554432, ChunkLayout{1, 3, {2, 32, 256, 1024}});
  std::int32_t ints[9];
  std::memcpy(ints, rep.data(), sizeof(ints));
  const std::int32_t want[9] = {200, 33554432, 1, 3, 2, 32, 256, 1024, 0};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(ints[i], want[i]) << i;
}

TEST(ProtocolTest, KeysOfEveryLengthAndPadding) {
  EXPECT_EQ(ParseRequest(Header(2, 0, std::string(150, 'k')), kMax)->key, std::string(150, 'k'));
  EXPECT_FALSE(EncodeRequest(Request{Command::kGet, 0, {}, 0, std::string(151, 'k')}).ok());
  // NUL padding (struct's own) is accepted as well as spaces.
  auto h = Header(2, 0, "abc");
  std::memset(h.data() + 36 + 3, 0, 147);
  EXPECT_EQ(ParseRequest(h, kMax)->key, "abc");
  // Only the right padding goes: leading spaces and inner spaces are part of the key.
  EXPECT_EQ(ParseRequest(Header(2, 0, "  a b"), kMax)->key, "  a b");
  // UTF-8 keys are kept byte for byte; broken UTF-8 is refused.
  EXPECT_EQ(ParseRequest(Header(2, 0, "mod\xc3\xa9le@\xe2\x82\xac"), kMax)->key,
            "mod\xc3\xa9le@\xe2\x82\xac");
  for (const char* bad : {"a\xc3", "a\xc3(", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                          "\xff"}) {
    auto r = ParseRequest(Header(2, 0, bad), kMax);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("not UTF-8"), std::string::npos);
  }
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

TEST(ProtocolTest, PutLayoutsAreCheckedAgainstLMCacheEnumsAndTheLength) {
  auto parse = [](std::int32_t length, ChunkLayout l) {
    return ParseRequest(Header(1, length, "k", l), kMax);
  };
  // What LMCache sends: KV_2LTD bf16, MLA bf16, a 3-D tensor padded with a zero, fp8, bytes.
  EXPECT_TRUE(parse(2 * 32 * 256 * 1024 * 2, {1, 3, {2, 32, 256, 1024}}).ok());
  EXPECT_TRUE(parse(61 * 256 * 576 * 2, {6, 3, {1, 61, 256, 576}}).ok());
  EXPECT_TRUE(parse(256 * 2 * 128 * 4, {2, 4, {256, 2, 128, 0}}).ok());
  EXPECT_TRUE(parse(2 * 2 * 16 * 64, {1, 7, {2, 2, 16, 64}}).ok());
  EXPECT_TRUE(parse(100000, {kFormatBinaryBuffer, kDtypeNone, {100000, 0, 0, 0}}).ok());
  EXPECT_TRUE(parse(12345, {kFormatBinary, kDtypeUint8, {12345, 0, 0, 0}}).ok());
  auto bad = [&](std::int32_t length, ChunkLayout l, const char* word) {
    auto r = parse(length, l);
    ASSERT_FALSE(r.ok()) << word;
    EXPECT_NE(r.status().message().find(word), std::string::npos) << r.status().message();
  };
  bad(4096, {7, 3, {2, 2, 16, 32}}, "unknown memory format 7");
  bad(4096, {-1, 3, {2, 2, 16, 32}}, "unknown memory format -1");
  bad(4096, {1, 9, {2, 2, 16, 32}}, "unknown dtype 9");
  bad(4096, {1, 3, {2, -2, 16, 32}}, "negative dimension");
  bad(4096, {1, 0, {2, 2, 16, 32}}, "without a dtype");
  bad(4096, {1, 3, {2, 2, 16, 33}}, "not the size of the tensor");
  // A header shifted by one int (an older client putting location elsewhere): the length
  // lands in fmt's place and is refused.
  bad(4096, {4096, 1, {3, 0, 2, 2}}, "unknown memory format");
  // Dimensions whose product overflows 64 bits are refused, not wrapped.
  bad(4096, {1, 8, {INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX}}, "not the size");
  // A GET's layout fields are not looked at (LMCache sends fmt 1, float16, zeros).
  EXPECT_TRUE(ParseRequest(Header(2, 0, "k", {99, 99, {-1, -1, -1, -1}}), kMax).ok());
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
  const ChunkLayout l{2, 3, {2, 32, 256, 7}};
  auto back = LayoutFromMeta(LayoutToMeta(l));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, l);
  EXPECT_TRUE(LayoutFromMeta(ChunkMeta{}).status().IsCorruption());
  // Stored layouts are checked on the way out too: a damaged one is not sent to a client.
  EXPECT_TRUE(LayoutFromMeta(LayoutToMeta({42, 3, {1, 1, 1, 1}})).status().IsCorruption());
}

}  // namespace
}  // namespace cxlkv::serve
