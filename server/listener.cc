#include "server/listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace cxlkv::serve {
namespace {
constexpr int kBacklog = 256;
}

Result<UniqueFd> ListenTcp(const std::string& host, int port) {
  const std::string where = host + ":" + std::to_string(port);
  if (port < 0 || port > 65535) return Status::InvalidArgument("port out of range in " + where);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) {
    return Status::InvalidArgument("cannot resolve listen address " + where + ": " +
                                   ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> list(found, ::freeaddrinfo);
  Status last = Status::NotFound("no address for " + where);
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
      last = Status::FromErrno("socket for " + where, errno);
      continue;
    }
    const int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
      last = Status::FromErrno("SO_REUSEADDR on " + where, errno);
      continue;
    }
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last = Status::FromErrno("bind " + where, errno);
      continue;
    }
    if (::listen(fd.get(), kBacklog) != 0) {
      last = Status::FromErrno("listen on " + where, errno);
      continue;
    }
    return fd;
  }
  return last;
}

namespace {

// Takes PATH.lock (created if missing) with flock, without waiting, and writes this process's
// pid into it. Busy, naming the holder, when another process holds it.
Result<UniqueFd> LockSocketPath(const std::string& path) {
  const std::string lock_path = path + ".lock";
  UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (fd.get() < 0) return Status::FromErrno("opening the socket's lock file " + lock_path, errno);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return Status::FromErrno("locking " + lock_path, errno);
    char pid[32] = {};
    const ssize_t n = ::pread(fd.get(), pid, sizeof(pid) - 1, 0);
    std::string holder = n > 0 ? std::string(pid, static_cast<std::size_t>(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return Status::Busy("unix socket " + path + " is held by a running server" +
                        (holder.empty() ? "" : " (pid " + holder + ")") + ": " + lock_path +
                        " is locked; not taking it over");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return Status::FromErrno("writing the pid into " + lock_path, errno);
  }
  return fd;
}

// Whether something accepts connections at path now (a server that is not ours, or one
// started without the lock file).
bool SomeoneListens(const sockaddr_un& addr) {
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (probe.get() < 0) return false;
  // Non-blocking: a listener whose backlog is full says EAGAIN, which is alive too.
  const int rc = ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  return rc == 0 || errno == EAGAIN || errno == EINPROGRESS;
}

}  // namespace

Result<UnixListener> ListenUnix(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("unix socket path '" + path + "' is empty or longer than " +
                                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UnixListener l;
  // The lock first: of two servers started on one path at once, exactly one goes on.
  CXLKV_ASSIGN_OR_RETURN(l.lock, LockSocketPath(path));
  l.socket = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (l.socket.get() < 0) return Status::FromErrno("socket for " + path, errno);
  // Replace a socket left by a server that died; never one that still answers, never
  // anything that is not a socket.
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::InvalidArgument(path + " exists and is not a socket; not replacing it");
    }
    if (SomeoneListens(addr)) {
      return Status::Busy("unix socket " + path +
                          " is held by a running server (a connection to it succeeded); "
                          "not taking it over");
    }
    if (::unlink(path.c_str()) != 0) return Status::FromErrno("removing stale socket " + path, errno);
  }
  if (::bind(l.socket.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Status::FromErrno("bind " + path, errno);
  }
  if (::listen(l.socket.get(), kBacklog) != 0) return Status::FromErrno("listen on " + path, errno);
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno("stat " + path, errno);
  l.device = st.st_dev;
  l.inode = st.st_ino;
  return l;
}

void RemoveUnixSocket(const UnixListener& listener, const std::string& path) {
  struct stat st{};
  if (listener.socket.get() < 0 || ::lstat(path.c_str(), &st) != 0) return;
  if (st.st_dev == listener.device && st.st_ino == listener.inode) ::unlink(path.c_str());
}

Result<int> BoundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return Status::FromErrno("getsockname", errno);
  }
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return Status::InvalidArgument("socket is not TCP");
}

std::string PeerName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unknown peer";
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "unix";
}

std::string PeerIdentity(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unknown peer";
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, host, sizeof(host));
    return host;
  }
  if (ss.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, host, sizeof(host));
    return host;
  }
  ucred cred{};
  socklen_t cred_len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0) {
    return "uid " + std::to_string(cred.uid);
  }
  return "unix";
}

}  // namespace cxlkv::serve
