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

// The key without the padding on its right: LMCache's client pads with spaces
// (`key.encode().ljust(150)`), a C client may pad with NULs. Nothing else is trimmed: a key is
// stored as sent.
std::string_view StripPadding(std::string_view raw) {
  while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\0')) raw.remove_suffix(1);
  return raw;
}

// Whether `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most
// U+10FFFF), as Python's bytes.decode() requires of a key.
bool IsUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) { ++i; continue; }
    std::size_t len;
    std::uint32_t cp;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto t = static_cast<unsigned char>(s[i + k]);
      if ((t & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (t & 0x3f);
    }
    static constexpr std::uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

bool IsTensorFormat(std::int32_t fmt) {
  return fmt == kFormatKv2LTD || fmt == kFormatKvT2D || fmt == kFormatKv2TD ||
         fmt == kFormatKvMla;
}

std::string LayoutString(const ChunkLayout& l) {
  return "fmt " + std::to_string(l.fmt) + ", dtype " + std::to_string(l.dtype) + ", shape [" +
         std::to_string(l.shape[0]) + ", " + std::to_string(l.shape[1]) + ", " +
         std::to_string(l.shape[2]) + ", " + std::to_string(l.shape[3]) + "]";
}

constexpr std::uint8_t kLayoutMetaTag = 1;  // first metadata byte: the encoding's version
constexpr std::size_t kLayoutMetaSize = 1 + 6 * sizeof(std::int32_t);

}  // namespace

std::size_t DtypeSize(std::int32_t dtype) {
  switch (dtype) {
    case kDtypeHalf: case kDtypeFloat16: case kDtypeBfloat16: return 2;
    case kDtypeFloat32: return 4;
    case kDtypeFloat64: return 8;
    case kDtypeUint8: case kDtypeFp8E4M3: case kDtypeFp8E5M2: return 1;
    default: return 0;
  }
}

Status ValidateLayout(const ChunkLayout& l, std::int64_t length) {
  if (l.fmt < 0 || l.fmt > kMaxFormat) {
    return Status::InvalidArgument("unknown memory format " + std::to_string(l.fmt) + " (" +
                                   LayoutString(l) + ")");
  }
  if (l.dtype < 0 || l.dtype > kMaxDtype) {
    return Status::InvalidArgument("unknown dtype " + std::to_string(l.dtype) + " (" +
                                   LayoutString(l) + ")");
  }
  for (std::int32_t d : l.shape) {
    if (d < 0) return Status::InvalidArgument("negative dimension (" + LayoutString(l) + ")");
  }
  if (!IsTensorFormat(l.fmt)) return Status::Ok();  // bytes: any length, any shape
  if (l.dtype == kDtypeNone) {
    return Status::InvalidArgument("a tensor format without a dtype (" + LayoutString(l) + ")");
  }
  // The shape with its right padding of zeros removed (LMCache pads shapes of under four
  // dimensions that way); the tensor's bytes must be the payload's length. Stops as soon as
  // the product passes the length, so it cannot overflow.
  int dims = 4;
  while (dims > 1 && l.shape[dims - 1] == 0) --dims;
  std::int64_t bytes = static_cast<std::int64_t>(DtypeSize(l.dtype));
  for (int i = 0; i < dims && bytes <= length; ++i) bytes *= l.shape[i];
  if (bytes != length) {
    return Status::InvalidArgument("length " + std::to_string(length) +
                                   " is not the size of the tensor (" + LayoutString(l) + ")");
  }
  return Status::Ok();
}

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
  const std::string_view key = StripPadding(raw);
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
  if (!IsUtf8(key)) return Status::InvalidArgument(std::string(name) + " key is not UTF-8");
  if (r.command == Command::kPut) {
    if (Status s = ValidateLayout(r.layout, r.length); !s.ok()) {
      return Status::InvalidArgument("PUT with a bad layout: " + s.message());
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
  for (int i = 0; i < 4; ++i) WriteInt(p + 16 + 4 * i, layout.shape[i]);
  WriteInt(p + 32, 0);  // location last, as ServerMetaMessage writes and reads it
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
  const ChunkLayout l{fields[0], fields[1], {fields[2], fields[3], fields[4], fields[5]}};
  if (l.fmt < 0 || l.fmt > kMaxFormat || l.dtype < 0 || l.dtype > kMaxDtype) {
    return Status::Corruption("stored chunk layout out of range (" + LayoutString(l) + ")");
  }
  return l;
}

}  // namespace cxlkv::serve
