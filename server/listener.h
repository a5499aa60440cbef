// Listening sockets for the server: TCP and Unix domain, non-blocking, close-on-exec.
//
// Thread-safety: functions only; all are thread-safe.
#pragma once

#include <string>

#include "cxlkv/status.h"
#include "util/unique_fd.h"

namespace cxlkv::serve {

// Binds host:port (IPv4 or IPv6 literal, or a name getaddrinfo resolves; port 0 picks a free
// one) and listens. Errors name the address.
Result<UniqueFd> ListenTcp(const std::string& host, int port);
// Binds a Unix domain socket at path (a stale socket file there is replaced) and listens.
Result<UniqueFd> ListenUnix(const std::string& path);
// The port a bound TCP socket got.
Result<int> BoundPort(int fd);
// "127.0.0.1:40000", "[::1]:40000" or "unix" for the peer of an accepted socket.
std::string PeerName(int fd);

}  // namespace cxlkv::serve
