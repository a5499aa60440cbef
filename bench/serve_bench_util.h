// What bench_serve's two parts share: a client's socket calls over loopback, each fatal on
// failure (a benchmark has no use for a half-measured run), and the median.
#pragma once


#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "server/wire_client.h"
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
  UniqueFd fd = serve::wire::ConnectLoopback(port, receive_buffer);
  if (fd.get() < 0) Die("connect: " + std::string(std::strerror(errno)));
  return fd;
}

inline void SendAll(int fd, const void* p, std::size_t n) {
  if (!serve::wire::SendAll(fd, p, n)) Die("send: " + std::string(std::strerror(errno)));
}

using serve::wire::RecvAll;  // false on EOF or error

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// --hostile: a good client's latency beside each attack (serve_bench_hostile.cc).
int RunHostile(bool quick);

}  // namespace cxlkv::bench_serve
