// The wire format of LMCache's remote protocol (`remote_url: lm://host:port`), as its client
// (lmcache/v1/protocol.py) writes and reads it. Pure parsing and encoding: no sockets here,
// so every byte sequence can be tested.
//
// A request is a 186-byte header: nine native-endian int32 (command, length, fmt, dtype,
// location, shape[0..3]) and the key, 150 bytes of UTF-8 padded with spaces. A PUT is
// followed by `length` payload bytes and gets no reply; every other command gets a 36-byte
// reply of nine int32: code (200 or 400), length, fmt, dtype, location, shape[0..3], and GET
// (on success) and LIST are followed by `length` bytes.
//
// The reply's field order is the one the client's deserializer reads. LMCache's own
// ServerMetaMessage.serialize writes location last, after the shape; its deserialize (what
// the client runs) reads it fifth. We write what the client reads; location is always 0
// (LMCache's "None"), so only the shape's position matters, and it is right this way.
//
// Thread-safety: functions only; all are thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "cxlkv/status.h"
#include "cxlkv/store.h"

namespace cxlkv::serve {

inline constexpr std::size_t kRequestHeaderSize = 9 * 4 + kMaxKeySize;  // 186
inline constexpr std::size_t kReplyHeaderSize = 9 * 4;                  // 36

enum class Command : std::int32_t { kPut = 1, kGet = 2, kExist = 3, kList = 4, kHealth = 5 };
const char* CommandName(Command c);  // "PUT", "GET", ...

inline constexpr std::int32_t kReplySuccess = 200;
inline constexpr std::int32_t kReplyFail = 400;

// How the engine describes a chunk's tensor: stored with the chunk, returned on GET.
struct ChunkLayout {
  std::int32_t fmt = 0;    // LMCache's MemoryFormat value
  std::int32_t dtype = 0;  // LMCache's dtype number (3 = bfloat16, 4 = float32, ...)
  std::array<std::int32_t, 4> shape{};
  friend bool operator==(const ChunkLayout&, const ChunkLayout&) = default;
};

// What LMCache's own server puts in replies that carry no chunk (MemoryFormat 1, float16):
// values its client's deserializer accepts.
inline constexpr ChunkLayout kNoChunkLayout{1, 2, {0, 0, 0, 0}};

struct Request {
  Command command = Command::kHealth;
  std::int32_t length = 0;  // payload bytes of a PUT; ignored for the others
  ChunkLayout layout;
  std::int32_t location = 0;
  std::string key;          // without its padding; empty for LIST and HEALTH when sent so
};

// Parses a request header. InvalidArgument, with a message fit for a log line, for an unknown
// command, a negative length, a PUT of 0 bytes or of more than max_payload, and a GET, EXIST
// or PUT whose key is empty or holds control characters.
Result<Request> ParseRequest(std::span<const std::byte, kRequestHeaderSize> header,
                             std::size_t max_payload);

// Encodes a request header (for clients and tests). InvalidArgument for a key over 150 bytes.
Result<std::array<std::byte, kRequestHeaderSize>> EncodeRequest(const Request& request);

// Encodes a reply header, location 0.
std::array<std::byte, kReplyHeaderSize> EncodeReply(std::int32_t code, std::int32_t length,
                                                    const ChunkLayout& layout);

// A ChunkLayout as ChunkMeta bytes and back (Corruption when the metadata is not one).
ChunkMeta LayoutToMeta(const ChunkLayout& layout);
Result<ChunkLayout> LayoutFromMeta(const ChunkMeta& meta);

}  // namespace cxlkv::serve
