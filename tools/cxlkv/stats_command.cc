// `cxlkv stats`: prints a running `cxlkv serve`'s metrics (the Prometheus text its
// --metrics-port endpoint serves), fetched over HTTP.
#include <CLI/CLI.hpp>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "tools/cxlkv/commands.h"
#include "util/unique_fd.h"

namespace cxlkv::cli {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "cxlkv stats: %s\n", message.c_str());
  return kExitFailure;
}

int RunStats(const std::string& host, int port) {
  const std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) return Fail("cannot resolve " + where + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> list(found, ::freeaddrinfo);
  UniqueFd fd;
  int err = 0;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    UniqueFd s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0));
    if (s.get() >= 0 && ::connect(s.get(), ai->ai_addr, ai->ai_addrlen) == 0) {
      fd = std::move(s);
      break;
    }
    err = errno;
  }
  if (fd.get() < 0) {
    return Fail("cannot connect to " + where + " (is `cxlkv serve --metrics-port " +
                std::to_string(port) + "` running?): " + std::strerror(err));
  }
  const timeval timeout{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: " + where + "\r\n\r\n";
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return Fail("cannot send the request to " + where + ": " + std::strerror(errno));
  }
  std::string response;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail("reading from " + where + ": " + std::strerror(errno));
    if (n == 0) break;
    response.append(buf, static_cast<std::size_t>(n));
  }
  const std::size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.0 200", 0) != 0 || body == std::string::npos) {
    return Fail(where + " did not answer with metrics: " +
                response.substr(0, response.find('\r')));
  }
  std::fwrite(response.data() + body + 4, 1, response.size() - body - 4, stdout);
  return kExitOk;
}

}  // namespace

Command AddStatsCommand(CLI::App& root) {
  auto host = std::make_shared<std::string>("127.0.0.1");
  auto port = std::make_shared<int>(0);
  CLI::App* app = root.add_subcommand(
      "stats", "Print a running `cxlkv serve`'s metrics (Prometheus text format)");
  app->add_option("--host", *host, "Where the server's metrics endpoint is (default 127.0.0.1)");
  app->add_option("--port", *port, "The server's --metrics-port")
      ->required()
      ->check(CLI::Range(1, 65535));
  return {app, [host, port] { return RunStats(*host, *port); }};
}

}  // namespace cxlkv::cli
