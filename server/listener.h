// Listening sockets for the server: TCP and Unix domain, non-blocking, close-on-exec.
//
// Thread-safety: functions only; all are thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "cxlkv/status.h"
#include "util/unique_fd.h"

namespace cxlkv::serve {

// Binds host:port (IPv4 or IPv6 literal, or a name getaddrinfo resolves; port 0 picks a free
// one) and listens. Errors name the address.
Result<UniqueFd> ListenTcp(const std::string& host, int port);
// A listening Unix domain socket and the lock that keeps other servers off its path.
struct UnixListener {
  UniqueFd socket;
  UniqueFd lock;  // flock'ed PATH.lock, holding this process's pid
  std::uint64_t device = 0, inode = 0;  // of the socket file, so Remove unlinks only ours
};
// Binds a Unix domain socket at path and listens. A path a live server holds is refused
// (Busy, naming the pid in PATH.lock, or saying that a connection to it succeeded); a socket
// file left by a server that died is replaced; anything else there is never removed. The
// lock file PATH.lock is created beside the socket and left there.
Result<UnixListener> ListenUnix(const std::string& path);
// Removes the socket file if it is still the one `listener` bound (another server may own
// the path by now).
void RemoveUnixSocket(const UnixListener& listener, const std::string& path);
// The port a bound TCP socket got.
Result<int> BoundPort(int fd);
// "127.0.0.1:40000", "[::1]:40000" or "unix" for the peer of an accepted socket.
std::string PeerName(int fd);
// Who the peer is, for per-peer limits: its address without the port ("127.0.0.1"), or
// "uid 1000" for a Unix socket client.
std::string PeerIdentity(int fd);

}  // namespace cxlkv::serve
