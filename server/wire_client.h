// The client side of lm:// over a socket, for the server's tests and bench_serve: connect to
// loopback, send and receive exactly, encode a request header. Header-only; no test
// framework, no policy on errors (callers assert or die).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/protocol.h"
#include "util/unique_fd.h"

namespace cxlkv::serve::wire {

// A TCP connection to 127.0.0.1:port with TCP_NODELAY (receive_buffer > 0: SO_RCVBUF, set
// before connecting so the window stays that small); -1 inside when it failed (errno says why).
inline UniqueFd ConnectLoopback(int port, int receive_buffer = 0) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return fd;
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (receive_buffer > 0) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return UniqueFd();
  return fd;
}

// False when the peer closed the connection or the send failed.
inline bool SendAll(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t k = ::send(fd, c, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    c += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

// Reads exactly n bytes; false on EOF, an error or a receive timeout.
inline bool RecvAll(int fd, void* p, std::size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t k = ::recv(fd, c, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    c += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

// A request header for `length` payload bytes laid out as `layout`; all zeros when the key
// is longer than the protocol allows.
inline std::array<std::byte, kRequestHeaderSize> Header(Command c, std::int32_t length,
                                                        const std::string& key,
                                                        const ChunkLayout& layout) {
  Request r;
  r.command = c;
  r.length = length;
  r.layout = layout;
  r.key = key;
  auto h = EncodeRequest(r);
  return h.ok() ? *h : std::array<std::byte, kRequestHeaderSize>{};
}

}  // namespace cxlkv::serve::wire
