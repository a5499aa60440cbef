// A raw lm:// client for the server's tests: real sockets on loopback (or a Unix socket),
// every call checked, replies read exactly. Header-only, tests only.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "server/protocol.h"
#include "server/wire_client.h"
#include "util/unique_fd.h"

namespace cxlkv::serve::testing {

// A TCP connection to 127.0.0.1:port (the test fails when it cannot connect).
inline UniqueFd Connect(int port) {
  UniqueFd fd = wire::ConnectLoopback(port);
  EXPECT_GE(fd.get(), 0) << std::strerror(errno);
  return fd;
}

inline UniqueFd ConnectUnix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0)
      << path << ": " << std::strerror(errno);
  return fd;
}

// Replies that do not come within this fail the test instead of hanging it.
inline void SetReceiveTimeout(int fd, std::chrono::milliseconds t) {
  const timeval tv{static_cast<time_t>(t.count() / 1000),
                   static_cast<suseconds_t>((t.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

using wire::RecvAll;
using wire::SendAll;

// A request header; PUTs describe `length` bytes as KV_2LTD bf16 [2, 4, 8, length / 128]
// (a tensor of exactly `length` bytes when length is a multiple of 128).
inline std::array<std::byte, kRequestHeaderSize> Header(Command c, std::int32_t length,
                                                        const std::string& key) {
  EXPECT_LE(key.size(), kMaxKeySize);
  return wire::Header(c, length, key, {1, 3, {2, 4, 8, length / 128}});
}

inline bool SendHeader(int fd, Command c, std::int32_t length, const std::string& key) {
  const auto h = Header(c, length, key);
  return SendAll(fd, h.data(), h.size());
}

inline bool Put(int fd, const std::string& key, const std::vector<std::byte>& chunk) {
  return SendHeader(fd, Command::kPut, static_cast<std::int32_t>(chunk.size()), key) &&
         SendAll(fd, chunk.data(), chunk.size());
}

// The reply's code (200, 400), or -1 when none came.
inline std::int32_t Exist(int fd, const std::string& key) {
  if (!SendHeader(fd, Command::kExist, 0, key)) return -1;
  std::int32_t reply[9];
  if (!RecvAll(fd, reply, sizeof(reply))) return -1;
  return reply[0];
}

inline std::int32_t Health(int fd) {
  if (!SendHeader(fd, Command::kHealth, 0, "")) return -1;
  std::int32_t reply[9];
  if (!RecvAll(fd, reply, sizeof(reply))) return -1;
  return reply[0];
}

// GET: the reply's code, and the chunk in *out on a hit; -1 when no reply came.
inline std::int32_t Get(int fd, const std::string& key, std::vector<std::byte>* out) {
  if (!SendHeader(fd, Command::kGet, 0, key)) return -1;
  std::int32_t reply[9];
  if (!RecvAll(fd, reply, sizeof(reply))) return -1;
  if (reply[0] == kReplySuccess) {
    out->resize(static_cast<std::size_t>(reply[1]));
    if (!RecvAll(fd, out->data(), out->size())) return -1;
  }
  return reply[0];
}

// Whether the server closed the connection (EOF or reset) within the receive timeout.
inline bool ClosedByServer(int fd) {
  char byte;
  for (;;) {
    const ssize_t k = ::recv(fd, &byte, 1, 0);
    if (k == 0 || (k < 0 && errno == ECONNRESET)) return true;
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return false;  // timed out
  }
}

// Polls `done` every 10 ms for up to `limit`; whether it became true.
template <typename Fn>
bool WaitFor(Fn done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    ::usleep(10000);
  }
  return true;
}

}  // namespace cxlkv::serve::testing
