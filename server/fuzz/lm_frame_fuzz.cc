// libFuzzer target: the lm:// request header parser (server/protocol.h) on any 186 bytes.
//
// Input: a 186-byte request header; 4 more bytes, when present, give max_payload (1 to
// 2^31 - 1; else 1 GiB). Shorter inputs are padded with zeros.
//
// Invariants (a violation traps): ParseRequest accepts only what the protocol allows (a known
// command, a non-negative length, a PUT of 1..max_payload bytes with a layout ValidateLayout
// accepts, a key of printable UTF-8 without trailing padding, non-empty for PUT/GET/EXIST),
// and what it accepts encodes back to the same fields and to the same bytes up to the key's
// padding; a refusal carries a message. A PUT's layout survives LayoutToMeta/LayoutFromMeta;
// a reply header decodes to what was encoded.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "server/protocol.h"

namespace {

#define CHECK(cond) \
  do {              \
    if (!(cond)) __builtin_trap(); \
  } while (0)

std::int32_t IntAt(const std::byte* p, std::size_t offset) {
  std::int32_t v;
  std::memcpy(&v, p + offset, sizeof(v));
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cxlkv::serve;  // NOLINT(google-build-using-namespace)
  std::array<std::byte, kRequestHeaderSize> header{};
  std::memcpy(header.data(), data, std::min(size, header.size()));
  std::size_t max_payload = std::size_t{1} << 30;
  if (size >= header.size() + 4) {
    std::uint32_t v;
    std::memcpy(&v, data + header.size(), sizeof(v));
    max_payload = 1 + v % 0x7fffffffu;
  }
  cxlkv::Result<Request> r = ParseRequest(header, max_payload);
  if (!r.ok()) {
    CHECK(r.status().IsInvalidArgument());
    CHECK(!r.status().message().empty());
    return 0;
  }
  const Request& q = *r;
  const std::int32_t command = static_cast<std::int32_t>(q.command);
  CHECK(command >= 1 && command <= 5);
  CHECK(q.length >= 0);
  if (q.command == Command::kPut) {
    CHECK(q.length > 0 && static_cast<std::size_t>(q.length) <= max_payload);
    CHECK(ValidateLayout(q.layout, q.length).ok());
    const cxlkv::ChunkMeta meta = LayoutToMeta(q.layout);
    cxlkv::Result<ChunkLayout> back = LayoutFromMeta(meta);
    CHECK(back.ok() && *back == q.layout);
  }
  CHECK(q.key.size() <= cxlkv::kMaxKeySize);
  if (q.command == Command::kPut || q.command == Command::kGet || q.command == Command::kExist) {
    CHECK(!q.key.empty());
  }
  for (char c : q.key) {
    const auto u = static_cast<unsigned char>(c);
    CHECK(u >= 0x20 && u != 0x7f);
  }
  CHECK(q.key.empty() || (q.key.back() != ' ' && q.key.back() != '\0'));
  // The fields are where the wire puts them, and the key is the sent bytes before padding.
  CHECK(IntAt(header.data(), 0) == command && IntAt(header.data(), 4) == q.length);
  CHECK(IntAt(header.data(), 8) == q.layout.fmt && IntAt(header.data(), 12) == q.layout.dtype);
  CHECK(IntAt(header.data(), 16) == q.location);
  for (int i = 0; i < 4; ++i) CHECK(IntAt(header.data(), 20 + 4 * i) == q.layout.shape[i]);
  const std::string_view sent(reinterpret_cast<const char*>(header.data()) + 36, cxlkv::kMaxKeySize);
  CHECK(sent.substr(0, q.key.size()) == q.key);
  for (char c : sent.substr(q.key.size())) CHECK(c == ' ' || c == '\0');

  // Encoding what was parsed gives the same request back.
  cxlkv::Result<std::array<std::byte, kRequestHeaderSize>> encoded = EncodeRequest(q);
  CHECK(encoded.ok());
  CHECK(std::memcmp(encoded->data(), header.data(), 36) == 0);
  cxlkv::Result<Request> again = ParseRequest(*encoded, max_payload);
  CHECK(again.ok());
  CHECK(again->command == q.command && again->length == q.length && again->key == q.key &&
        again->layout == q.layout && again->location == q.location);

  // A reply header carries its fields in LMCache's order, location last.
  const std::array<std::byte, kReplyHeaderSize> reply = EncodeReply(kReplySuccess, q.length, q.layout);
  CHECK(IntAt(reply.data(), 0) == kReplySuccess && IntAt(reply.data(), 4) == q.length);
  CHECK(IntAt(reply.data(), 8) == q.layout.fmt && IntAt(reply.data(), 12) == q.layout.dtype);
  for (int i = 0; i < 4; ++i) CHECK(IntAt(reply.data(), 16 + 4 * i) == q.layout.shape[i]);
  CHECK(IntAt(reply.data(), 32) == 0);
  return 0;
}
