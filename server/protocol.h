// The wire format of LMCache's remote protocol (`remote_url: lm://host:port`), as its client
// (lmcache/v1/protocol.py) writes and reads it. Pure parsing and encoding: no sockets here,
// so every byte sequence can be tested.
//
// A request is a 186-byte header: nine native-endian int32 (command, length, fmt, dtype,
// location, shape[0..3]) and the key, 150 bytes of UTF-8 padded on the right with spaces
// (`key.encode().ljust(150)`). A PUT is followed by `length` payload bytes and gets no reply;
// every other command gets a 36-byte reply of nine int32: code (200 or 400), length, fmt,
// dtype, shape[0..3], location, and GET (on success) and LIST are followed by `length` bytes.
//
// Note the two orders: the request carries location fifth, the reply carries it last. That is
// what LMCache's ClientMetaMessage and ServerMetaMessage both write and read (checked against
// lmcache/v1/protocol.py @c1a02cc8 and the later enum-based generation by the LMCache kit,
// ../shared/lmcache-kit, in CI; docs/lmcache.md cites the commits).
//
// A PUT's layout is validated against LMCache's enums (MemoryFormat 0..6, dtype 0..8, no
// negative dimension) and, for the tensor formats, its length must be the tensor's size: a
// header from a client of another wire generation, or one shifted by a byte, is refused
// rather than stored as garbage.
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

// LMCache's enums, as lmcache/v1/memory_management.py (MemoryFormat) and protocol.py
// (DTYPE_TO_INT) number them.
inline constexpr std::int32_t kFormatUndefined = 0, kFormatKv2LTD = 1, kFormatKvT2D = 2,
                              kFormatKv2TD = 3, kFormatBinary = 4, kFormatBinaryBuffer = 5,
                              kFormatKvMla = 6, kMaxFormat = 6;
inline constexpr std::int32_t kDtypeNone = 0, kDtypeHalf = 1, kDtypeFloat16 = 2,
                              kDtypeBfloat16 = 3, kDtypeFloat32 = 4, kDtypeFloat64 = 5,
                              kDtypeUint8 = 6, kDtypeFp8E4M3 = 7, kDtypeFp8E5M2 = 8,
                              kMaxDtype = 8;
// Bytes per element of a dtype code; 0 for kDtypeNone and unknown codes.
std::size_t DtypeSize(std::int32_t dtype);

// How the engine describes a chunk's tensor: stored with the chunk, returned on GET.
struct ChunkLayout {
  std::int32_t fmt = 0;    // LMCache's MemoryFormat value
  std::int32_t dtype = 0;  // LMCache's dtype number (3 = bfloat16, 4 = float32, ...)
  std::array<std::int32_t, 4> shape{};
  friend bool operator==(const ChunkLayout&, const ChunkLayout&) = default;
};

// What LMCache's own server puts in replies that carry no chunk (MemoryFormat 1, float16):
// values its client's deserializer accepts.
inline constexpr ChunkLayout kNoChunkLayout{kFormatKv2LTD, kDtypeFloat16, {0, 0, 0, 0}};

struct Request {
  Command command = Command::kHealth;
  std::int32_t length = 0;  // payload bytes of a PUT; ignored for the others
  ChunkLayout layout;
  std::int32_t location = 0;
  std::string key;          // without its padding; empty for LIST and HEALTH when sent so
};


// Checks a PUT's layout against its payload length: InvalidArgument naming the field.
Status ValidateLayout(const ChunkLayout& layout, std::int64_t length);

// Parses a request header. InvalidArgument, with a message fit for a log line, for an unknown
// command, a negative length, a PUT of 0 bytes or of more than max_payload, a PUT whose
// layout ValidateLayout refuses, and a GET, EXIST or PUT whose key is empty, is not valid
// UTF-8 or holds control characters. The key is taken as sent: only the padding on its right
// (spaces or NULs) is removed, so a key cannot end in a space.
Result<Request> ParseRequest(std::span<const std::byte, kRequestHeaderSize> header,
                             std::size_t max_payload);

// Encodes a request header (for clients and tests). InvalidArgument for a key over 150 bytes.
Result<std::array<std::byte, kRequestHeaderSize>> EncodeRequest(const Request& request);

// Encodes a reply header; location (last) is 0, LMCache's "None".
std::array<std::byte, kReplyHeaderSize> EncodeReply(std::int32_t code, std::int32_t length,
                                                    const ChunkLayout& layout);

// A ChunkLayout as ChunkMeta bytes and back (Corruption when the metadata is not one).
ChunkMeta LayoutToMeta(const ChunkLayout& layout);
Result<ChunkLayout> LayoutFromMeta(const ChunkMeta& meta);

}  // namespace cxlkv::serve
