// What a hostile client can make the server hold or wait for (issue 18, items 5-10), each
// attack run against a real Server on loopback beside a well-behaved client that must keep
// being served: stalled and trickled PUTs, unread GET and LIST replies, payloads read and
// dropped, connection floods and idle connections, accept() out of descriptors, stderr that
// nobody reads, and a slow metrics client. Budgets are set small so each test takes about a
// second; nothing here asserts a duration.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <dirent.h>
#include <fstream>
#include <thread>
#include <vector>

#include "server/server.h"
#include "server/test_client.h"
#include "tests/test_util.h"

namespace cxlkv::serve {
namespace {

using namespace std::chrono_literals;
using testing::ClosedByServer;
using testing::Connect;
using testing::Exist;
using testing::Health;
using testing::SendHeader;
using testing::WaitFor;

constexpr std::size_t kMiB = std::size_t{1} << 20;

// One DRAM tier of `capacity`, 4 MiB slabs, an exact class for `chunk`.
std::unique_ptr<Store> OpenStore(std::size_t capacity, std::size_t chunk) {
  StoreOptions o;
  TierOptions t;
  t.name = "dram";
  t.source = MemorySource::Dram(DramOptions{HugePages::kNone, false});
  t.capacity = capacity;
  o.tiers.push_back(std::move(t));
  o.slab_size = 4 * kMiB;
  o.chunk_sizes = {chunk};
  o.background_thread = false;
  auto s = Store::Open(std::move(o));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

// Defaults for these tests: no deadline, no minimum rate, no log lines; each test sets what
// it exercises.
ServerOptions Quiet() {
  ServerOptions o;
  o.quiet = true;
  o.request_timeout = 0ms;
  o.reply_timeout = 0ms;
  o.min_transfer_rate = 0;
  return o;
}

std::vector<std::byte> Chunk(std::size_t size, std::uint64_t seed) {
  std::vector<std::byte> c(size);
  cxlkv::testing::FillPattern(c.data(), c.size(), seed);
  return c;
}

bool ReadsBack(int fd, const std::string& key, std::size_t size, std::uint64_t seed) {
  std::vector<std::byte> got;
  return testing::Get(fd, key, &got) == kReplySuccess && got.size() == size &&
         cxlkv::testing::FirstPatternMismatch(got.data(), got.size(), seed) == -1;
}

// A socket whose receive buffer is as small as the kernel allows (set before connecting, so
// the window stays small): a reply to it stalls in the server instead of in the kernel.
UniqueFd ConnectSmallWindow(int port) {
  UniqueFd fd = wire::ConnectLoopback(port, 4096);
  EXPECT_GE(fd.get(), 0);
  return fd;
}

// Resident bytes of this process (what per-connection buffers would add to).
std::size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

std::uint64_t Requests(const Server& s, Command c) {
  return s.metrics().requests[ServerMetrics::Index(c)].load();
}

// Item 5: three connections each send a PUT header and one byte. Only what fits the half of
// max_reserved_bytes open to new connections is reserved (the rest is dropped), the good
// client's PUTs are stored meanwhile, nothing cached is evicted for the stalled ones, and
// the deadline aborts them all and frees their slots.
TEST(ServerLimitsTest, StalledPutsHoldAtMostTheirBudgetUntilTheDeadline) {
  auto store = OpenStore(64 * kMiB, 4 * kMiB);
  ASSERT_NE(store, nullptr);
  ServerOptions o = Quiet();
  o.max_reserved_bytes = 8 * kMiB;
  o.request_timeout = 2s;  // the checks below run while the attack holds (a loaded CI too)
  auto server = Server::Start(*store, o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Server& s = **server;
  UniqueFd good = Connect(s.port());
  testing::SetReceiveTimeout(good.get(), 5s);
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(testing::Put(good.get(), "cached" + std::to_string(i), Chunk(4 * kMiB, i)));
  }
  ASSERT_EQ(Exist(good.get(), "cached7"), kReplySuccess);

  std::vector<UniqueFd> stalled;
  for (int i = 0; i < 3; ++i) {
    stalled.push_back(Connect(s.port()));
    ASSERT_TRUE(SendHeader(stalled.back().get(), Command::kPut, 4 * kMiB, "stalled" + std::to_string(i)));
    const char one = 1;
    ASSERT_TRUE(testing::SendAll(stalled.back().get(), &one, 1));
  }
  ASSERT_TRUE(WaitFor([&] { return Requests(s, Command::kPut) == 11; }));
  // A request is counted when its header is parsed, before its budget is decided: wait for
  // all three decisions, whatever they were.
  ASSERT_TRUE(WaitFor([&] {
    return s.gauges().reserved_bytes / (4 * kMiB) + s.metrics().puts_over_budget.load() == 3;
  }));
  // New connections share half the budget: one reserved, two dropped.
  EXPECT_EQ(s.gauges().reserved_bytes, 4 * kMiB);
  EXPECT_EQ(s.metrics().puts_over_budget.load(), 2u);
  // The good client, which has sent 32 MiB, keeps the other half: its PUT is stored now.
  ASSERT_TRUE(testing::Put(good.get(), "during", Chunk(4 * kMiB, 50)));
  EXPECT_EQ(Exist(good.get(), "during"), kReplySuccess);
  EXPECT_TRUE(ReadsBack(good.get(), "during", 4 * kMiB, 50));
  for (UniqueFd& fd : stalled) {
    testing::SetReceiveTimeout(fd.get(), 5s);
    EXPECT_TRUE(ClosedByServer(fd.get()));
  }
  EXPECT_EQ(s.metrics().connections_closed_timeout.load(), 3u);
  EXPECT_TRUE(WaitFor([&] { return s.gauges().reserved_bytes == 0; }));
  EXPECT_EQ(store->Stats().tiers[0].evictions, 0u);
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(ReadsBack(good.get(), "cached" + std::to_string(i), 4 * kMiB, i));
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(testing::Put(good.get(), "after" + std::to_string(i), Chunk(4 * kMiB, 100 + i)));
  }
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(ReadsBack(good.get(), "after" + std::to_string(i), 4 * kMiB, 100 + i));
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(store->Contains("stalled" + std::to_string(i)));
}

// Item 5, slowly: a PUT that trickles (1 KiB every 100 ms) cannot hold its slot for the whole
// deadline: after its first second it must average the minimum rate.
TEST(ServerLimitsTest, ATrickledPutIsCutAtTheMinimumRate) {
  auto store = OpenStore(16 * kMiB, 4 * kMiB);
  ASSERT_NE(store, nullptr);
  ServerOptions o = Quiet();
  o.min_transfer_rate = kMiB;  // per second
  auto server = Server::Start(*store, o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Server& s = **server;
  UniqueFd slow = Connect(s.port());
  ASSERT_TRUE(SendHeader(slow.get(), Command::kPut, 4 * kMiB, "trickled"));
  const std::vector<std::byte> piece(1024);
  bool cut = false;
  for (int i = 0; i < 50 && !cut; ++i) {  // 5 s at most; the cut comes after about one
    cut = !testing::SendAll(slow.get(), piece.data(), piece.size()) ||
          s.metrics().connections_closed_timeout.load() == 1;
    ::usleep(100000);
  }
  EXPECT_TRUE(cut);
  EXPECT_EQ(s.metrics().connections_closed_timeout.load(), 1u);
  EXPECT_TRUE(WaitFor([&] { return s.gauges().reserved_bytes == 0; }));
  EXPECT_FALSE(store->Contains("trickled"));
}

// Item 6: connections that never read their GET replies pin at most the half of
// max_reply_bytes open to new connections (a GET over it is answered as a miss), the good
// client's GETs are served meanwhile, and each pin is released at the reply deadline, with
// its connection closed.
TEST(ServerLimitsTest, UnreadGetsPinAtMostTheirBudgetUntilTheDeadline) {
  auto store = OpenStore(48 * kMiB, 4 * kMiB);
  ASSERT_NE(store, nullptr);
  ServerOptions o = Quiet();
  o.max_reply_bytes = 8 * kMiB;
  o.reply_timeout = 2s;  // the checks below run while the attack holds (a loaded CI too)
  o.send_buffer = 64 << 10;  // a 4 MiB reply cannot sit in the kernel's buffers
  auto server = Server::Start(*store, o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Server& s = **server;
  UniqueFd good = Connect(s.port());
  testing::SetReceiveTimeout(good.get(), 5s);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(testing::Put(good.get(), "c" + std::to_string(i), Chunk(4 * kMiB, i)));
  }
  ASSERT_EQ(Exist(good.get(), "c3"), kReplySuccess);
  std::vector<UniqueFd> unread;
  for (int i = 0; i < 3; ++i) {
    unread.push_back(ConnectSmallWindow(s.port()));
    ASSERT_TRUE(SendHeader(unread.back().get(), Command::kGet, 0, "c" + std::to_string(i)));
  }
  ASSERT_TRUE(WaitFor([&] { return Requests(s, Command::kGet) == 3; }));
  // A request is counted when its header is parsed, before its budget is decided (a CI run
  // once saw the count at 3 and one miss not yet counted): wait for all three decisions.
  ASSERT_TRUE(WaitFor([&] {
    return s.gauges().reply_bytes / (4 * kMiB) + s.metrics().gets_over_budget.load() == 3;
  }));
  // New connections share half the budget: one pinned, two answered as misses.
  EXPECT_EQ(s.gauges().reply_bytes, 4 * kMiB);
  EXPECT_EQ(s.metrics().gets_over_budget.load(), 2u);
  // The good client, which has sent 16 MiB, keeps the other half: its GET is served now.
  EXPECT_TRUE(ReadsBack(good.get(), "c3", 4 * kMiB, 3));
  EXPECT_TRUE(WaitFor([&] { return s.metrics().connections_closed_timeout.load() == 1; }));
  // The close is counted before the connection lets its pinned reply go (a TSan run read the
  // pin still held): wait for it too.
  EXPECT_TRUE(WaitFor([&] { return s.gauges().reply_bytes == 0; }));
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(ReadsBack(good.get(), "c" + std::to_string(i), 4 * kMiB, i));
}

// Item 7: a PUT that is read and dropped (a key already stored) costs its connection no
// buffer: 200 connections that each sent one add far less than 200 x 256 KiB.
TEST(ServerLimitsTest, DroppedPayloadsKeepNoBufferPerConnection) {
  auto store = OpenStore(16 * kMiB, 64 << 10);
  ASSERT_NE(store, nullptr);
  auto server = Server::Start(*store, Quiet());
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Server& s = **server;
  const std::vector<std::byte> chunk = Chunk(64 << 10, 1);
  {
    UniqueFd first = Connect(s.port());
    ASSERT_TRUE(testing::Put(first.get(), "dup", chunk));
    ASSERT_EQ(Exist(first.get(), "dup"), kReplySuccess);
  }
  const std::size_t before = ResidentBytes();
  std::vector<UniqueFd> conns;
  for (int i = 0; i < 200; ++i) {
    conns.push_back(Connect(s.port()));
    ASSERT_TRUE(testing::Put(conns.back().get(), "dup", chunk));
    ASSERT_EQ(Exist(conns.back().get(), "dup"), kReplySuccess);
  }
  EXPECT_EQ(s.metrics().puts_already_stored.load(), 200u);
  const std::size_t grown = ResidentBytes() - std::min(before, ResidentBytes());
  EXPECT_LT(grown, 16 * kMiB) << "200 connections that dropped a payload added " << grown << " bytes";
}

// Item 7: LIST replies are capped, and unread ones hold only what the reply budget allows:
// 40 connections that never read a LIST of 4,000 150-byte keys do not copy the list 40 times.
TEST(ServerLimitsTest, UnreadListsAreCappedAndBudgeted) {
  auto store = OpenStore(16 * kMiB, 256);
  ASSERT_NE(store, nullptr);
  ServerOptions o = Quiet();
  o.max_list_bytes = 16 << 10;
  o.max_reply_bytes = 256 << 10;
  o.send_buffer = 4096;
  auto server = Server::Start(*store, o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Server& s = **server;
  UniqueFd good = Connect(s.port());
  testing::SetReceiveTimeout(good.get(), 5s);
  const std::vector<std::byte> tiny = Chunk(256, 3);
  for (int i = 0; i < 4000; ++i) {
    std::string key = "k" + std::to_string(i);
    key.resize(kMaxKeySize, 'x');
    ASSERT_TRUE(testing::Put(good.get(), key, tiny));
  }
  ASSERT_TRUE(SendHeader(good.get(), Command::kList, 0, ""));
  std::int32_t reply[9];
  ASSERT_TRUE(testing::RecvAll(good.get(), reply, sizeof(reply)));
  ASSERT_EQ(reply[0], kReplySuccess);
  EXPECT_LE(static_cast<std::size_t>(reply[1]), o.max_list_bytes);
  EXPECT_GT(reply[1], 0);
  std::vector<char> list(static_cast<std::size_t>(reply[1]));
  ASSERT_TRUE(testing::RecvAll(good.get(), list.data(), list.size()));
  EXPECT_EQ(s.metrics().lists_truncated.load(), 1u);

  const std::size_t before = ResidentBytes();
  std::vector<UniqueFd> unread;
  for (int i = 0; i < 40; ++i) {
    unread.push_back(ConnectSmallWindow(s.port()));
    ASSERT_TRUE(SendHeader(unread.back().get(), Command::kList, 0, ""));
  }
  ASSERT_TRUE(WaitFor([&] { return Requests(s, Command::kList) == 41; }));
  EXPECT_LE(s.gauges().reply_bytes, o.max_reply_bytes);
  // Counted at the header, decided just after: wait for a refusal rather than read it once.
  EXPECT_TRUE(WaitFor([&] { return s.metrics().lists_over_budget.load() > 0; }));
  const std::size_t grown = ResidentBytes() - std::min(before, ResidentBytes());
  EXPECT_LT(grown, 8 * kMiB) << "40 unread LISTs added " << grown << " bytes";
  EXPECT_EQ(Health(good.get()), kReplySuccess);
}

// Item 8: at max_connections a new connection is closed at once, unless an idle one can make
// room: then the idle one goes and the new one is served.
TEST(ServerLimitsTest, AtTheConnectionLimitIdleConnectionsMakeRoom) {
  auto store = OpenStore(16 * kMiB, kMiB);
  ASSERT_NE(store, nullptr);
  ServerOptions o = Quiet();
  o.max_connections = 8;
  // A new connection replaces an idle one of the event loop that accepted it: with one loop,
  // which loop took which connection cannot decide the outcome (with two, all eight idle ones
  // could sit on the loop that does not accept the ninth, as a loaded CI machine showed).
  o.threads = 1;
  auto server = Server::Start(*store, o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Server& s = **server;
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 8; ++i) {
    idle.push_back(Connect(s.port()));
    ASSERT_EQ(Health(idle.back().get()), kReplySuccess);
  }
  UniqueFd refused = Connect(s.port());
  testing::SetReceiveTimeout(refused.get(), 5s);
  EXPECT_TRUE(ClosedByServer(refused.get()));  // none idle for a second yet
  EXPECT_EQ(s.metrics().connections_refused.load(), 1u);
  ::usleep(1500000);  // idle over the 1 s that makes a connection replaceable, with margin
  UniqueFd served = Connect(s.port());
  testing::SetReceiveTimeout(served.get(), 5s);
  EXPECT_EQ(Health(served.get()), kReplySuccess);
  EXPECT_EQ(s.metrics().connections_replaced.load(), 1u);
  EXPECT_EQ(s.metrics().connections_open.load(), 8u);
}

// Item 8, per peer: a third connection from 127.0.0.1 is refused; once one closes, a new one
// is served.
TEST(ServerLimitsTest, ThePerPeerLimitRefusesAndFreesPlaces) {
  auto store = OpenStore(16 * kMiB, kMiB);
  ASSERT_NE(store, nullptr);
  ServerOptions o = Quiet();
  o.max_connections_per_peer = 2;
  auto server = Server::Start(*store, o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Server& s = **server;
  UniqueFd a = Connect(s.port()), b = Connect(s.port());
  ASSERT_EQ(Health(a.get()), kReplySuccess);
  ASSERT_EQ(Health(b.get()), kReplySuccess);
  UniqueFd c = Connect(s.port());
  testing::SetReceiveTimeout(c.get(), 5s);
  EXPECT_TRUE(ClosedByServer(c.get()));
  a = UniqueFd();
  ASSERT_TRUE(WaitFor([&] { return s.metrics().connections_open.load() == 1; }));
  UniqueFd d = Connect(s.port());
  testing::SetReceiveTimeout(d.get(), 5s);
  EXPECT_EQ(Health(d.get()), kReplySuccess);
}

// Item 8: the idle timeout closes a connection that sends nothing, not one that keeps asking.
TEST(ServerLimitsTest, TheIdleTimeoutClosesOnlyIdleConnections) {
  auto store = OpenStore(16 * kMiB, kMiB);
  ASSERT_NE(store, nullptr);
  ServerOptions o = Quiet();
  o.idle_timeout = 1s;
  auto server = Server::Start(*store, o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Server& s = **server;
  UniqueFd idle = Connect(s.port());
  UniqueFd busy = Connect(s.port());
  testing::SetReceiveTimeout(busy.get(), 5s);
  for (int i = 0; i < 25; ++i) {  // 2.5 s, asking every 100 ms
    ASSERT_EQ(Health(busy.get()), kReplySuccess);
    ::usleep(100000);
  }
  testing::SetReceiveTimeout(idle.get(), 5s);
  EXPECT_TRUE(ClosedByServer(idle.get()));
  EXPECT_EQ(s.metrics().connections_closed_idle.load(), 1u);
  EXPECT_EQ(Health(busy.get()), kReplySuccess);
}

int OpenDescriptors() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n - 3;  // ".", "..", and the directory's own descriptor
}

// Item 8: accept() out of descriptors pauses accepting with a growing back-off, instead of
// failing (and logging) about a hundred times a second per loop; the connection waiting in
// the backlog is served once descriptors are free again.
TEST(ServerLimitsTest, AcceptOutOfDescriptorsBacksOff) {
  auto store = OpenStore(16 * kMiB, kMiB);
  ASSERT_NE(store, nullptr);
  auto server = Server::Start(*store, Quiet());
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Server& s = **server;
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(OpenDescriptors() + 16);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> filler;
  for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) filler.push_back(fd);
  ASSERT_EQ(errno, EMFILE);
  ::close(filler.back());  // exactly one free: the client's socket takes it
  filler.pop_back();
  UniqueFd waiting = Connect(s.port());  // in the backlog: the server has no descriptor for it
  ::usleep(1000000);
  const std::uint64_t failures = s.metrics().accept_failures.load();
  for (int fd : filler) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_GE(failures, 1u);
  // Back-off from 10 ms doubling: under ten tries a loop in a second (2 loops); the 10 ms
  // retry it replaced made about a hundred.
  EXPECT_LE(failures, 24u);
  testing::SetReceiveTimeout(waiting.get(), 5s);
  EXPECT_EQ(Health(waiting.get()), kReplySuccess);
}

// Item 9: with stderr on a pipe that nobody reads, a flood of bad frames (each logged) does
// not stop the event loops: lines over the log rate or the pipe are dropped and counted.
TEST(ServerLimitsTest, LoggingNeverBlocksTheEventLoops) {
  auto store = OpenStore(16 * kMiB, kMiB);
  ASSERT_NE(store, nullptr);
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  ::fcntl(pipe_fds[1], F_SETPIPE_SZ, 4096);
  std::fflush(stderr);
  // Restores stderr and SIGPIPE however the test ends; declared before the server, so the
  // pipe's read end (closed by `unblock` below) goes first: a writer blocked on the pipe then
  // fails with EPIPE instead of hanging the server's Stop.
  struct RestoreStderr {
    int saved = ::dup(2);
    void (*sigpipe)(int) = std::signal(SIGPIPE, SIG_IGN);
    int pipe_write;
    ~RestoreStderr() {
      ::dup2(saved, 2);
      ::close(saved);
      ::close(pipe_write);
      std::signal(SIGPIPE, sigpipe);
    }
  } restore{.pipe_write = pipe_fds[1]};
  ASSERT_GE(restore.saved, 0);
  ASSERT_EQ(::dup2(pipe_fds[1], 2), 2);
  ServerOptions o = Quiet();
  o.quiet = false;
  auto server = Server::Start(*store, o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Server& s = **server;
  struct CloseFd {
    int fd;
    ~CloseFd() { ::close(fd); }
  } unblock{pipe_fds[0]};
  UniqueFd good = Connect(s.port());
  testing::SetReceiveTimeout(good.get(), 3s);
  int served = 0;
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 100; ++i) {
      UniqueFd bad = Connect(s.port());
      ASSERT_TRUE(SendHeader(bad.get(), static_cast<Command>(9), 0, "x"));
    }
    if (Health(good.get()) != kReplySuccess) break;  // a stuck loop: stop before the backlog fills
    ++served;
  }
  EXPECT_EQ(served, 10);
  EXPECT_TRUE(WaitFor([&] { return s.metrics().connections_closed_bad_input.load() == 1000; }));
  EXPECT_GT(s.gauges().log_lines_dropped, 0u);
}

// Item 10: a metrics client that sends a byte every 1.5 s does not hold up other scrapes,
// and is itself cut after MetricsEndpoint::kTimeout.
TEST(ServerLimitsTest, TheMetricsEndpointServesOthersWhileOneTrickles) {
  auto store = OpenStore(16 * kMiB, kMiB);
  ASSERT_NE(store, nullptr);
  ServerOptions o = Quiet();
  o.metrics_port = 0;
  auto server = Server::Start(*store, o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Server& s = **server;
  std::atomic<bool> stop{false};
  std::thread slow([&] {
    UniqueFd fd = Connect(s.metrics_port());
    for (const char* p = "GET /metrics"; *p != '\0' && !stop.load(); ++p) {
      if (!testing::SendAll(fd.get(), p, 1)) return;  // cut by the server
      for (int i = 0; i < 15 && !stop.load(); ++i) ::usleep(100000);
    }
  });
  ::usleep(200000);  // the slow client is connected and has sent its first byte
  for (int i = 0; i < 3; ++i) {
    UniqueFd fd = Connect(s.metrics_port());
    testing::SetReceiveTimeout(fd.get(), 3s);  // the slow client would hold it for 18 s
    const std::string request = "GET /metrics HTTP/1.0\r\n\r\n";
    ASSERT_TRUE(testing::SendAll(fd.get(), request.data(), request.size()));
    std::string reply;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd.get(), buf, sizeof(buf), 0)) > 0;) reply.append(buf, static_cast<std::size_t>(n));
    EXPECT_EQ(reply.rfind("HTTP/1.0 200 OK", 0), 0u) << "scrape " << i << ": " << reply.substr(0, 80);
    EXPECT_NE(reply.find("cxlkv_requests_total"), std::string::npos);
  }
  EXPECT_TRUE(WaitFor([&] { return s.metrics().metrics_clients_dropped.load() == 1; }, 5s));
  stop = true;
  slow.join();
}

}  // namespace
}  // namespace cxlkv::serve
