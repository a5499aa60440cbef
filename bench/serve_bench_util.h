// What bench_serve's two parts share: a client's socket calls over loopback, each fatal on
// failure (a benchmark has no use for a half-measured run), and the median.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "util/unique_fd.h"

namespace cxlkv::bench_serve {

// Prints to the descriptor stderr was when the benchmark started (--hostile points fd 2 at a
// pipe nobody reads while it runs), then exits.
inline int& ErrorFd() {
  static int fd = 2;
  return fd;
}

[[noreturn]] inline void Die(const std::string& what) {
  dprintf(ErrorFd(), "bench_serve: %s\n", what.c_str());
  std::exit(1);
}

inline UniqueFd Connect(int port, int receive_buffer = 0) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) Die("socket: " + std::string(std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (receive_buffer > 0) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    Die("connect: " + std::string(std::strerror(errno)));
  }
  return fd;
}

inline void SendAll(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t k = ::send(fd, c, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) Die("send: " + std::string(std::strerror(errno)));
    c += k;
    n -= static_cast<std::size_t>(k);
  }
}

// False on EOF or error.
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

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// --hostile: a good client's latency beside each attack (serve_bench_hostile.cc).
int RunHostile(bool quick);

}  // namespace cxlkv::bench_serve
