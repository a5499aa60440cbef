#include "backends/spill/chunk_record.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace cxlkv::internal::spill {
namespace {

std::array<std::byte, kBlockSize> Block() { return {}; }

TEST(ChunkLocationTest, PacksAndUnpacksEveryFieldAtItsLimits) {
  const ChunkLocation cases[] = {
      {0, 1, 1},
      {1, 2, 3},
      {(1u << 24) - 1, (1u << 20) - 1, (1u << 20) - 1},
      {12345, 678, 9},
  };
  for (const ChunkLocation& loc : cases) {
    EXPECT_EQ(ChunkLocation::Unpack(loc.Pack()), loc);
  }
  EXPECT_NE(ChunkLocation({0, 1, 1}).Pack(), 0u) << "0 is never a valid location";
}

TEST(ChunkRecordTest, SuperblockRoundTripsAndRejectsEveryFlippedByte) {
  const Superblock sb{0x1234abcd, 1u << 30, 64u << 20, 15, 7};
  auto block = Block();
  EncodeSuperblock(sb, block);
  auto back = DecodeSuperblock(block);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->log_id, sb.log_id);
  EXPECT_EQ(back->capacity, sb.capacity);
  EXPECT_EQ(back->segment_size, sb.segment_size);
  EXPECT_EQ(back->segment_count, sb.segment_count);
  EXPECT_EQ(back->epoch, sb.epoch);
  for (std::size_t i = 0; i < Superblock::kEncodedSize; ++i) {
    auto bad = block;
    bad[i] ^= std::byte{1};
    EXPECT_TRUE(DecodeSuperblock(bad).status().IsCorruption()) << "byte " << i;
  }
  EXPECT_TRUE(DecodeSuperblock(Block()).status().IsCorruption());
}

TEST(ChunkRecordTest, SuperblockWithImpossibleGeometryIsCorruption) {
  auto block = Block();
  // More segments than the capacity holds: a checksum-valid lie is still refused.
  EncodeSuperblock(Superblock{1, 1u << 20, 64u << 10, 100, 1}, block);
  EXPECT_TRUE(DecodeSuperblock(block).status().IsCorruption());
}

TEST(ChunkRecordTest, SegmentHeaderAndTrailerRoundTrip) {
  auto block = Block();
  EncodeSegmentHeader(SegmentHeader{9, (3ull << 32) | 5, 17, 1u << 20}, block);
  auto h = DecodeSegmentHeader(block);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->seq, (3ull << 32) | 5);
  EXPECT_EQ(h->index, 17u);
  block[20] ^= std::byte{0x80};
  EXPECT_TRUE(DecodeSegmentHeader(block).status().IsCorruption());

  SegmentTrailer t;
  t.log_id = 9;
  t.seq = 44;
  t.index = 3;
  t.chunk_count = 2;
  t.records_end = 8192;
  t.summary_offset = 12288;
  t.summary_size = 100;
  t.summary_checksum = 77;
  auto tb = Block();
  EncodeSegmentTrailer(t, tb);
  auto t2 = DecodeSegmentTrailer(tb);
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ(t2->summary_offset, 12288u);
  EXPECT_EQ(t2->summary_checksum, 77u);
  EXPECT_TRUE(DecodeSegmentTrailer(Block()).status().IsCorruption());
}

TEST(ChunkRecordTest, RecordHeaderChecksSizesAgainstItsLength) {
  RecordHeader h;
  h.log_id = 1;
  h.seq = 2;
  h.segment = 3;
  h.block = 4;
  h.key_size = 10;
  h.meta_size = 5;
  h.data_size = 5000;
  h.blocks = static_cast<std::uint32_t>(RecordBlocks(5000));
  h.key_hash = KeyHash{11, 22};
  h.payload_checksum = 33;
  std::array<std::byte, RecordHeader::kEncodedSize> buf{};
  EncodeRecordHeader(h, buf);
  auto back = DecodeRecordHeader(buf);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->blocks, 3u) << "the header block, then two blocks of data";
  EXPECT_EQ(back->key_hash, h.key_hash);
  EXPECT_EQ(back->payload_checksum, 33u);

  h.blocks = 4;  // longer than the data needs: refused even with a valid checksum
  EncodeRecordHeader(h, buf);
  EXPECT_TRUE(DecodeRecordHeader(buf).status().IsCorruption());
  h.blocks = 2;  // version 1's length (data right after the meta): refused
  EncodeRecordHeader(h, buf);
  EXPECT_TRUE(DecodeRecordHeader(buf).status().IsCorruption());
  h.blocks = 3;
  h.meta_size = 65;
  EncodeRecordHeader(h, buf);
  EXPECT_TRUE(DecodeRecordHeader(buf).status().IsCorruption());
}

TEST(ChunkRecordTest, SummaryEntriesDecodeInOrderAndRejectTruncation) {
  const std::string key1 = "vllm@model@1@0@abc";
  const std::string key2 = "k";
  const std::array<std::byte, 3> meta{std::byte{1}, std::byte{2}, std::byte{3}};
  std::vector<std::byte> bytes(SummaryEntrySize(key1.size(), meta.size()) +
                               SummaryEntrySize(key2.size(), 0));
  const SummaryEntry e1{1, 2, 100, KeyHash{1, 2}, key1, meta};
  const SummaryEntry e2{3, 4, 9000, KeyHash{3, 4}, key2, {}};
  EncodeSummaryEntry(e1, bytes);
  EncodeSummaryEntry(e2, std::span(bytes).subspan(SummaryEntrySize(key1.size(), meta.size())));
  std::size_t pos = 0;
  auto d1 = DecodeSummaryEntry(bytes, &pos);
  ASSERT_TRUE(d1.ok()) << d1.status().ToString();
  EXPECT_EQ(d1->key, key1);
  ASSERT_EQ(d1->meta.size(), 3u);
  EXPECT_EQ(d1->meta[2], std::byte{3});
  auto d2 = DecodeSummaryEntry(bytes, &pos);
  ASSERT_TRUE(d2.ok()) << d2.status().ToString();
  EXPECT_EQ(d2->key, key2);
  EXPECT_EQ(d2->data_size, 9000u);
  EXPECT_EQ(pos, bytes.size());

  std::size_t p2 = 0;
  const auto cut = std::span<const std::byte>(bytes).first(20);
  EXPECT_TRUE(DecodeSummaryEntry(cut, &p2).status().IsCorruption());
}

}  // namespace
}  // namespace cxlkv::internal::spill
