#include "server/protocol.h"

#include <cstring>

namespace cxlkv::serve {
namespace {

// Native-endian int32 fields, as Python's struct "i" packs them.
std::int32_t ReadInt(const std::byte* p) {
  std::int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

void WriteInt(std::byte* p, std::int32_t v) { std::memcpy(p, &v, sizeof(v)); }

bool IsPadding(char c) { return c == ' ' || c == '\0' || c == '\t' || c == '\n' || c == '\r'; }

// The key without the padding around it (the client strips whitespace the same way).
std::string_view TrimKey(std::string_view raw) {
  while (!raw.empty() && IsPadding(raw.back())) raw.remove_suffix(1);
  while (!raw.empty() && IsPadding(raw.front())) raw.remove_prefix(1);
  return raw;
}

constexpr std::uint8_t kLayoutMetaTag = 1;  // first metadata byte: the encoding's version
constexpr std::size_t kLayoutMetaSize = 1 + 6 * sizeof(std::int32_t);

}  // namespace

const char* CommandName(Command c) {
  switch (c) {
    case Command::kPut: return "PUT";
    case Command::kGet: return "GET";
    case Command::kExist: return "EXIST";
    case Command::kList: return "LIST";
    case Command::kHealth: return "HEALTH";
  }
  return "UNKNOWN";
}

Result<Request> ParseRequest(std::span<const std::byte, kRequestHeaderSize> header,
                             std::size_t max_payload) {
  const std::byte* p = header.data();
  const std::int32_t command = ReadInt(p);
  if (command < static_cast<std::int32_t>(Command::kPut) ||
      command > static_cast<std::int32_t>(Command::kHealth)) {
    return Status::InvalidArgument("unknown command " + std::to_string(command));
  }
  Request r;
  r.command = static_cast<Command>(command);
  r.length = ReadInt(p + 4);
  r.layout.fmt = ReadInt(p + 8);
  r.layout.dtype = ReadInt(p + 12);
  r.location = ReadInt(p + 16);
  for (int i = 0; i < 4; ++i) r.layout.shape[i] = ReadInt(p + 20 + 4 * i);
  const char* name = CommandName(r.command);
  if (r.length < 0) {
    return Status::InvalidArgument(std::string(name) + " with a negative length " +
                                   std::to_string(r.length));
  }
  if (r.command == Command::kPut) {
    if (r.length == 0) return Status::InvalidArgument("PUT of an empty chunk");
    if (static_cast<std::size_t>(r.length) > max_payload) {
      return Status::InvalidArgument("PUT length " + std::to_string(r.length) +
                                     " is above the maximum " + std::to_string(max_payload));
    }
  }
  const std::string_view raw(reinterpret_cast<const char*>(p + 36), kMaxKeySize);
  const std::string_view key = TrimKey(raw);
  const bool needs_key = r.command == Command::kPut || r.command == Command::kGet ||
                         r.command == Command::kExist;
  if (needs_key && key.empty()) return Status::InvalidArgument(std::string(name) + " with an empty key");
  for (char c : key) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return Status::InvalidArgument(std::string(name) + " key holds control character " +
                                     std::to_string(u));
    }
  }
  r.key.assign(key);
  return r;
}

Result<std::array<std::byte, kRequestHeaderSize>> EncodeRequest(const Request& request) {
  if (request.key.size() > kMaxKeySize) {
    return Status::InvalidArgument("key of " + std::to_string(request.key.size()) +
                                   " bytes is longer than " + std::to_string(kMaxKeySize));
  }
  std::array<std::byte, kRequestHeaderSize> out;
  std::byte* p = out.data();
  WriteInt(p, static_cast<std::int32_t>(request.command));
  WriteInt(p + 4, request.length);
  WriteInt(p + 8, request.layout.fmt);
  WriteInt(p + 12, request.layout.dtype);
  WriteInt(p + 16, request.location);
  for (int i = 0; i < 4; ++i) WriteInt(p + 20 + 4 * i, request.layout.shape[i]);
  std::memset(p + 36, ' ', kMaxKeySize);
  std::memcpy(p + 36, request.key.data(), request.key.size());
  return out;
}

std::array<std::byte, kReplyHeaderSize> EncodeReply(std::int32_t code, std::int32_t length,
                                                    const ChunkLayout& layout) {
  std::array<std::byte, kReplyHeaderSize> out;
  std::byte* p = out.data();
  WriteInt(p, code);
  WriteInt(p + 4, length);
  WriteInt(p + 8, layout.fmt);
  WriteInt(p + 12, layout.dtype);
  WriteInt(p + 16, 0);  // location, where the client's deserializer reads it
  for (int i = 0; i < 4; ++i) WriteInt(p + 20 + 4 * i, layout.shape[i]);
  return out;
}

ChunkMeta LayoutToMeta(const ChunkLayout& layout) {
  ChunkMeta m;
  m.bytes[0] = std::byte{kLayoutMetaTag};
  std::int32_t fields[6] = {layout.fmt, layout.dtype, layout.shape[0], layout.shape[1],
                            layout.shape[2], layout.shape[3]};
  std::memcpy(m.bytes.data() + 1, fields, sizeof(fields));
  m.size = kLayoutMetaSize;
  return m;
}

Result<ChunkLayout> LayoutFromMeta(const ChunkMeta& meta) {
  if (meta.size != kLayoutMetaSize || meta.bytes[0] != std::byte{kLayoutMetaTag}) {
    return Status::Corruption("chunk metadata of " + std::to_string(meta.size) +
                              " bytes is not an lm:// chunk layout");
  }
  std::int32_t fields[6];
  std::memcpy(fields, meta.bytes.data() + 1, sizeof(fields));
  return ChunkLayout{fields[0], fields[1], {fields[2], fields[3], fields[4], fields[5]}};
}

}  // namespace cxlkv::serve
