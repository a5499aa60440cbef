// bench_serve: `cxlkv serve`'s GET and PUT throughput over loopback against a plain TCP
// stream of the same bytes, measured in the same run.
//
// For each chunk size (2 MiB, 32 MiB) and connection count (1, 8), the same client code
// moves the same bytes two ways:
//   lm://   the protocol against a Server on a Store with one DRAM tier (PUT: header and
//           payload, received into reserved slots; GET: request, reply header, chunk sent
//           from its pinned slot); a PUT phase ends with an EXIST round trip per connection,
//           so every byte has been stored when the clock stops;
//   stream  a server thread per connection that recv()s the chunk into one reused buffer
//           (PUT) or, for each 4-byte request, send()s it from one (GET): the loopback's own
//           limit, with no protocol, no store and no page faults; stream-mem, the same
//           through as much memory as the store uses. And after each run, stream-mem's GETs
//           once more, each reply framed as lm://'s (its 36-byte header, then the chunk, in
//           one sendmsg; the client reads the header first): what the protocol's framing
//           costs a plain stream (most likely because its bytes then sit 36 bytes off their
//           alignment in the kernel's copies; not measured apart).
// --zerocopy also measures the stream's GET sent with MSG_ZEROCOPY (pages pinned, not copied;
// completions read from the error queue) against the copying send.
// Ratios lm:// / stream: the median of the runs' ratios (7 runs, after a warm-up that faults
// the tier in); throughputs are medians too.
// Goal: >= 0.9x (issue 21).
//
// Each cell also prints the CPU time per GB moved, of the server side (every thread but the
// clients') and of all threads: the clients and servers share the machine's cores, so where
// the cores are busy a side's rate follows its CPU cost per byte (on loopback the kernel's
// TCP work falls on whichever thread wakes the other, so the server/client split is rough).
// --split-cores gives each side one core of its own: the client threads CPU 0, the servers
// (lm://'s event loops, the stream's threads) CPU 1. --one-core puts both sides on CPU 0: what
// loopback gives a server whose client shares its core (the cached stream runs about twice as
// fast there as on split cores), for lm:// and the streams alike. Placed by the scheduler, a cell gets either,
// run by run, and not always the same for lm:// as for the streams.
// --cell MIB:CONNS runs that cell alone (for a profiler).
// --hostile measures something else: a well-behaved client's latency while each of the
// attacks of issue 18 runs (serve_bench_hostile.cc).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/errqueue.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "cxlkv/store.h"
#include "server/protocol.h"
#include "server/server.h"
#include "bench/serve_bench_util.h"
#include "util/cpu.h"
#include "util/unique_fd.h"

namespace cxlkv {
namespace {

using bench_serve::Connect;
using bench_serve::Die;
using bench_serve::Median;
using bench_serve::RecvAll;
using bench_serve::SendAll;
using Clock = std::chrono::steady_clock;

std::vector<std::byte> Buffer(std::size_t size) {
  std::vector<std::byte> b(size);
  for (std::size_t i = 0; i < size; i += 64) b[i] = static_cast<std::byte>(i >> 6);
  return b;
}

// Memory of the kind the store's DRAM tier maps (anonymous, transparent huge pages asked
// for), faulted in; unmapped on destruction.
class Region {
 public:
  explicit Region(std::size_t size) : size_(size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) Die("mmap " + std::to_string(size));
    ::madvise(p, size, MADV_HUGEPAGE);  // best effort, as the tier does
    data_ = static_cast<std::byte*>(p);
    for (std::size_t i = 0; i < size; i += 64) data_[i] = static_cast<std::byte>(i >> 6);
  }
  ~Region() { ::munmap(data_, size_); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  std::byte* data() const { return data_; }

 private:
  std::size_t size_;
  std::byte* data_;
};

// --- the plain stream ---

// send() with MSG_ZEROCOPY: the kernel pins the pages instead of copying them, and reports on
// the socket's error queue when it is done with them; the buffer is reused only after that
// (as a server would end the chunk's lease only then). Counts the sends the kernel reports
// it copied anyway (SO_EE_CODE_ZEROCOPY_COPIED: what it does on loopback).
class ZeroCopySender {
 public:
  explicit ZeroCopySender(int fd) : fd_(fd) {
    const int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) != 0) {
      Die("SO_ZEROCOPY: " + std::string(std::strerror(errno)));
    }
  }
  void Send(const std::byte* p, std::size_t n) {
    while (n > 0) {
      const ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL | MSG_ZEROCOPY);
      if (k < 0 && (errno == EINTR || errno == ENOBUFS)) {
        Reap(false);  // ENOBUFS: too many notifications pending
        continue;
      }
      if (k <= 0) Die("send MSG_ZEROCOPY: " + std::string(std::strerror(errno)));
      ++issued_;
      p += k;
      n -= static_cast<std::size_t>(k);
    }
    while (done_ < issued_) Reap(true);
  }
  std::uint64_t sends() const { return done_; }
  std::uint64_t copied() const { return copied_; }

 private:
  void Reap(bool wait) {
    if (wait) {
      pollfd pfd{fd_, 0, 0};  // POLLERR is always reported
      ::poll(&pfd, 1, 1000);
    }
    for (;;) {
      char control[128];
      msghdr msg{};
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      if (::recvmsg(fd_, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        sock_extended_err err;
        std::memcpy(&err, CMSG_DATA(c), sizeof(err));
        if (err.ee_origin != SO_EE_ORIGIN_ZEROCOPY) continue;
        const std::uint64_t count = err.ee_data - err.ee_info + 1;  // a range of sends
        done_ += count;
        if ((err.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) != 0) copied_ += count;
      }
    }
  }
  int fd_;
  std::uint64_t issued_ = 0, done_ = 0, copied_ = 0;
};

// A header and a body in sendmsg calls of two iovecs, as the lm:// server sends a GET reply (so,
// as we read tcp_sendmsg, the body's bytes land in the socket's pages 36 bytes off alignment).
void SendFramed(int fd, std::span<const std::byte> header, const std::byte* body,
                std::size_t size) {
  std::size_t sent = 0;
  const std::size_t total = header.size() + size;
  while (sent < total) {
    iovec iov[2];
    int count = 0;
    if (sent < header.size()) {
      iov[count++] = {const_cast<std::byte*>(header.data()) + sent, header.size() - sent};
    }
    const std::size_t body_sent = sent > header.size() ? sent - header.size() : 0;
    iov[count++] = {const_cast<std::byte*>(body) + body_sent, size - body_sent};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Die("sendmsg: " + std::string(std::strerror(errno)));
    sent += static_cast<std::size_t>(n);
  }
}

class StreamServer {
 public:
  // Each connection moves its chunks through `window` bytes of its own memory, one chunk
  // after another: a window of one chunk keeps the buffer in cache; a window as large as the
  // connection's share of the run touches as much memory as the store does.
  StreamServer(std::size_t chunk, std::size_t window) : chunk_(chunk), window_(window) {
    listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::listen(listener_.get(), 64) != 0 ||
        ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      Die("stream listener");
    }
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~StreamServer() {
    ::shutdown(listener_.get(), SHUT_RDWR);
    acceptor_.join();
    for (auto& t : handlers_) t.join();
  }
  int port() const { return port_; }

 private:
  // Each connection says what it wants in its first byte: 'p' (receive chunks), 'g' (send
  // one per 4-byte request), 'f' (likewise, each framed as lm:// frames a GET reply: its
  // 36-byte header, then the chunk, in one sendmsg) or 'z' (as 'g', with MSG_ZEROCOPY).
  void AcceptLoop() {
    for (;;) {
      int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      handlers_.emplace_back([this, fd] {
        NameThisThread("stream-server");
        UniqueFd c(fd);
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        Region buf(window_);
        const std::size_t slots = window_ / chunk_;
        std::size_t next = 0;
        auto slot = [&] { return buf.data() + (next++ % slots) * chunk_; };
        char mode = 0;
        if (!RecvAll(fd, &mode, 1)) return;
        const char ready = 'r';  // the buffer is allocated and faulted in: timing may start
        SendAll(fd, &ready, 1);
        if (mode == 'p') {
          while (RecvAll(fd, slot(), chunk_)) {
            char ack = 'a';  // one byte per chunk: the client's end-of-phase round trip
            SendAll(fd, &ack, 1);
          }
        } else if (mode == 'z') {
          ZeroCopySender z(fd);
          std::uint32_t req;
          while (RecvAll(fd, &req, sizeof(req))) {
            const std::uint64_t sends = z.sends(), copied = z.copied();
            z.Send(slot(), chunk_);  // returns once the kernel is done with the pages
            sends_.fetch_add(z.sends() - sends);
            copied_.fetch_add(z.copied() - copied);
          }
        } else if (mode == 'f') {
          std::uint32_t req;
          const auto header = serve::EncodeReply(serve::kReplySuccess,
                                                 static_cast<std::int32_t>(chunk_), {});
          while (RecvAll(fd, &req, sizeof(req))) SendFramed(fd, header, slot(), chunk_);
        } else {
          std::uint32_t req;
          while (RecvAll(fd, &req, sizeof(req))) SendAll(fd, slot(), chunk_);
        }
      });
    }
  }

 public:
  std::atomic<std::uint64_t> sends_{0};   // MSG_ZEROCOPY sends completed
  std::atomic<std::uint64_t> copied_{0};  // of those, ones the kernel copied after all

 private:
  std::size_t chunk_;
  std::size_t window_;
  UniqueFd listener_;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> handlers_;
};

// --split-cores: the client threads run on this CPU alone, every other thread of the process
// (the lm:// server's loops and the store's threads, the stream's server threads) on
// g_server_cpu, the other; --one-core: both on CPU 0; -1 leaves the scheduler to place them.
int g_client_cpu = -1;
int g_server_cpu = -1;

void PinOrDie(int cpu) {
  if (!PinThisThread(cpu)) Die("pinning a thread to CPU " + std::to_string(cpu));
}

// A timed phase: its wall time, and the CPU time of the server side: every thread of the
// process but the client threads and the one that runs the phase (the lm:// server's loops and
// readers, the store's threads, or the stream's server threads).
struct Timing {
  double seconds = 0;
  double server_cpu = 0;
  double total_cpu = 0;  // clients included
};

// Runs fn(connection index) on `conns` threads from a common start.
template <typename Fn>
Timing Timed(int conns, Fn fn) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<double> client_cpu(static_cast<std::size_t>(conns));
  std::vector<std::thread> threads;
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&, c] {
      NameThisThread("client");
      if (g_client_cpu >= 0) PinOrDie(g_client_cpu);
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      const double cpu = ThreadCpuSeconds();
      fn(c);
      client_cpu[static_cast<std::size_t>(c)] = ThreadCpuSeconds() - cpu;
    });
  }
  while (ready.load() < conns) std::this_thread::yield();
  const double process_cpu = ProcessCpuSeconds();
  const double own_cpu = ThreadCpuSeconds();
  const auto start = Clock::now();
  go.store(true);
  for (auto& t : threads) t.join();
  Timing t;
  t.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  t.server_cpu = ProcessCpuSeconds() - process_cpu - (ThreadCpuSeconds() - own_cpu);
  t.total_cpu = t.server_cpu;
  for (double c : client_cpu) t.server_cpu -= c;
  return t;
}

// One run of a case: GB/s, and the server side's CPU seconds per GB moved, of each phase.
struct Run {
  double put = 0, get = 0;
  double put_server_cpu = 0, get_server_cpu = 0;
  double put_all_cpu = 0, get_all_cpu = 0;
};

Run Rates(double bytes, const Timing& put, const Timing& get) {
  const double gb = bytes / 1e9;
  return {gb / put.seconds,      gb / get.seconds,     put.server_cpu / gb,
          get.server_cpu / gb,    put.total_cpu / gb,   get.total_cpu / gb};
}

struct Case {
  std::size_t chunk;
  int conns;
  std::size_t per_conn;  // chunks each connection moves per run
};

std::string Key(int run, int conn, std::size_t i) {
  return "vllm@bench@1@0@" + std::to_string(run) + "-" + std::to_string(conn) + "-" +
         std::to_string(i);
}

// GB/s of lm:// PUTs (then GETs of what was put) for one case.
Run MeasureLm(Store& store, int port, const Case& k, int run) {
  std::vector<UniqueFd> fds;
  for (int c = 0; c < k.conns; ++c) fds.push_back(Connect(port));
  std::vector<std::vector<std::byte>> bufs;
  for (int c = 0; c < k.conns; ++c) bufs.push_back(Buffer(k.chunk));
  const double bytes = static_cast<double>(k.chunk * k.per_conn) * k.conns;
  const Timing put_t = Timed(k.conns, [&](int c) {
    const int fd = fds[static_cast<std::size_t>(c)].get();
    for (std::size_t i = 0; i < k.per_conn; ++i) {
      serve::Request r;
      r.command = serve::Command::kPut;
      r.length = static_cast<std::int32_t>(k.chunk);
      r.layout = {1, 3, {2, 32, static_cast<std::int32_t>(k.chunk / 131072), 1024}};
      r.key = Key(run, c, i);
      auto h = serve::EncodeRequest(r);
      SendAll(fd, h->data(), h->size());
      SendAll(fd, bufs[static_cast<std::size_t>(c)].data(), k.chunk);
    }
    serve::Request e;
    e.command = serve::Command::kExist;
    e.key = Key(run, c, k.per_conn - 1);
    auto h = serve::EncodeRequest(e);
    SendAll(fd, h->data(), h->size());
    std::int32_t reply[9];
    if (!RecvAll(fd, reply, sizeof(reply)) || reply[0] != serve::kReplySuccess) Die("PUT lost");
  });
  const Timing get_t = Timed(k.conns, [&](int c) {
    const int fd = fds[static_cast<std::size_t>(c)].get();
    for (std::size_t i = 0; i < k.per_conn; ++i) {
      serve::Request r;
      r.command = serve::Command::kGet;
      r.key = Key(run, c, i);
      auto h = serve::EncodeRequest(r);
      SendAll(fd, h->data(), h->size());
      std::int32_t reply[9];
      if (!RecvAll(fd, reply, sizeof(reply)) || reply[0] != serve::kReplySuccess ||
          static_cast<std::size_t>(reply[1]) != k.chunk) {
        Die("GET missed " + r.key);
      }
      if (!RecvAll(fd, bufs[static_cast<std::size_t>(c)].data(), k.chunk)) Die("GET cut");
    }
  });
  for (int c = 0; c < k.conns; ++c) {
    for (std::size_t i = 0; i < k.per_conn; ++i) {
      if (!store.Remove(Key(run, c, i)).ok()) Die("remove");
    }
  }
  return Rates(bytes, put_t, get_t);
}

// The stream's PUTs and GETs; with get_mode "f" the GET replies come framed (SendFramed) and the
// client reads each header before its chunk, as it reads lm://'s.
Run MeasureStream(int port, const Case& k, const char* get_mode = "g") {
  std::vector<UniqueFd> put_fds, get_fds;
  for (int c = 0; c < k.conns; ++c) {
    put_fds.push_back(Connect(port));
    SendAll(put_fds.back().get(), "p", 1);
    get_fds.push_back(Connect(port));
    SendAll(get_fds.back().get(), get_mode, 1);
  }
  for (auto* fds : {&put_fds, &get_fds}) {
    for (const UniqueFd& fd : *fds) {
      char ready;
      if (!RecvAll(fd.get(), &ready, 1)) Die("stream server not ready");
    }
  }
  std::vector<std::vector<std::byte>> bufs;
  for (int c = 0; c < k.conns; ++c) bufs.push_back(Buffer(k.chunk));
  const double bytes = static_cast<double>(k.chunk * k.per_conn) * k.conns;
  const bool framed = get_mode[0] == 'f';
  const Timing put_t = Timed(k.conns, [&](int c) {
    const int fd = put_fds[static_cast<std::size_t>(c)].get();
    char ack;
    for (std::size_t i = 0; i < k.per_conn; ++i) {
      SendAll(fd, bufs[static_cast<std::size_t>(c)].data(), k.chunk);
    }
    for (std::size_t i = 0; i < k.per_conn; ++i) {
      if (!RecvAll(fd, &ack, 1)) Die("stream ack");
    }
  });
  const Timing get_t = Timed(k.conns, [&](int c) {
    const int fd = get_fds[static_cast<std::size_t>(c)].get();
    for (std::size_t i = 0; i < k.per_conn; ++i) {
      const std::uint32_t req = 1;
      SendAll(fd, &req, sizeof(req));
      if (framed) {
        std::int32_t reply[9];
        if (!RecvAll(fd, reply, sizeof(reply)) || reply[0] != serve::kReplySuccess) {
          Die("framed stream get");
        }
      }
      if (!RecvAll(fd, bufs[static_cast<std::size_t>(c)].data(), k.chunk)) Die("stream get");
    }
  });
  return Rates(bytes, put_t, get_t);
}

}  // namespace
}  // namespace cxlkv

int main(int argc, char** argv) {
  using namespace cxlkv;  // NOLINT(google-build-using-namespace)
  bool quick = false, zerocopy = false, hostile = false;
  std::size_t only_mib = 0;  // --cell: 0 runs every cell
  int only_conns = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--zerocopy") == 0) {
      zerocopy = true;
    } else if (std::strcmp(argv[i], "--hostile") == 0) {
      hostile = true;
    } else if (std::strcmp(argv[i], "--split-cores") == 0) {
      g_client_cpu = 0;
      g_server_cpu = 1;
    } else if (std::strcmp(argv[i], "--one-core") == 0) {
      g_client_cpu = 0;
      g_server_cpu = 0;
    } else if (std::strcmp(argv[i], "--cell") == 0 && i + 1 < argc) {
      // MIB:CONNS, e.g. 2:8: that cell alone (for a profiler).
      if (std::sscanf(argv[++i], "%zu:%d", &only_mib, &only_conns) != 2) Die("--cell MIB:CONNS");
    } else {
      Die(std::string("unknown option ") + argv[i] +
          " (--quick, --zerocopy, --hostile, --split-cores, --one-core, --cell MIB:CONNS)");
    }
  }
  if (g_server_cpu >= 0) {
    // This thread, and so every thread it starts (the server's, the stream's), on the servers'
    // CPU; the client threads move themselves to CPU 0.
    if (g_server_cpu >= static_cast<int>(std::thread::hardware_concurrency())) {
      Die("--split-cores needs two CPUs");
    }
    PinOrDie(g_server_cpu);
  }
  if (hostile) return bench_serve::RunHostile(quick);
  // --quick (the ctest smoke run) moves 2 MiB chunks only, 16 MiB per run: it must stay
  // light on a loaded 2-core machine.
  const std::size_t run_bytes = quick ? (std::size_t{16} << 20) : (std::size_t{256} << 20);
  const std::vector<std::size_t> chunk_sizes =
      quick ? std::vector<std::size_t>{std::size_t{2} << 20}
            : std::vector<std::size_t>{std::size_t{2} << 20, std::size_t{32} << 20};
  const int runs = quick ? 1 : 7;

  StoreOptions o;
  TierOptions t;
  t.name = "dram";
  t.source = MemorySource::Dram();
  // Room for a run's chunks (at least one 32 MiB chunk per connection) and their headers:
  // nothing is evicted while a run is measured.
  t.capacity = std::max(run_bytes, std::size_t{8} * chunk_sizes.back()) +
               (std::size_t{64} << 20);
  o.tiers.push_back(std::move(t));
  o.chunk_sizes = {std::size_t{2} << 20, std::size_t{32} << 20};
  o.slab_size = std::size_t{32} << 20;  // a 32 MiB chunk in one slab
  auto store = Store::Open(std::move(o));
  if (!store.ok()) Die(store.status().ToString());
  serve::ServerOptions so;
  so.quiet = true;
  // 8 fresh connections each with a 32 MiB PUT in flight. The default budget (a quarter of the
  // first tier) is sized for tiers of gigabytes; connections that have moved little may hold
  // only its first half; and on this small tier it would drop PUTs of the 8-connection 32 MiB
  // case (an overloaded server drops a PUT rather than stall the connection's GETs behind it).
  so.max_reserved_bytes = 2 * std::size_t{8} * chunk_sizes.back() + (std::size_t{64} << 20);
  // Likewise the replies: 8 GETs of 32 MiB pinned while they are sent (over it a GET is
  // answered as a miss).
  so.max_reply_bytes = so.max_reserved_bytes;
  if (const char* sndbuf = std::getenv("CXLKV_BENCH_SNDBUF")) so.send_buffer = std::atoi(sndbuf);
  if (const char* rcvbuf = std::getenv("CXLKV_BENCH_RCVBUF")) {
    so.receive_buffer = std::atoi(rcvbuf);
  }
  if (const char* lowat = std::getenv("CXLKV_BENCH_RCVLOWAT")) {
    so.receive_low_water = static_cast<std::size_t>(std::atoll(lowat));
  }
  if (const char* threads = std::getenv("CXLKV_BENCH_THREADS")) {
    so.threads = static_cast<unsigned>(std::atoi(threads));
  }
  auto server = serve::Server::Start(**store, so);
  if (!server.ok()) Die(server.status().ToString());

  std::printf("lm:// server (%u event loops, one DRAM tier) vs a plain TCP stream of the same "
              "bytes over loopback, same run; %s per run, median of %d; %s\n",
              so.threads, quick ? "16 MiB" : "256 MiB", runs,
              g_server_cpu == 1   ? "clients on CPU 0, servers on CPU 1 (--split-cores)"
              : g_server_cpu == 0 ? "clients and servers on CPU 0 (--one-core)"
                                  : "threads placed by the scheduler");
  std::printf("stream: the same bytes through one chunk-sized buffer per connection (cached); "
              "stream-mem: through as much memory as the store uses (each chunk its own)\n");
  std::printf("%8s %5s %9s %8s %6s %10s %6s %9s %8s %6s %10s %6s\n", "chunk", "conns",
              "put GB/s", "stream", "ratio", "stream-mem", "ratio", "get GB/s", "stream", "ratio",
              "stream-mem", "ratio");
  double worst = 1e9, worst_mem = 1e9;
  for (std::size_t chunk : chunk_sizes) {
    for (int conns : {1, 8}) {
      if (only_mib != 0 && (chunk >> 20 != only_mib || conns != only_conns)) continue;
      const std::size_t per_conn =
          std::max<std::size_t>(1, run_bytes / chunk / static_cast<std::size_t>(conns));
      const Case k{chunk, conns, per_conn};
      StreamServer stream(chunk, chunk);
      StreamServer stream_mem(chunk, chunk * per_conn);
      MeasureLm(**store, (*server)->port(), k, -1);  // warm-up: faults the tier's pages in
      std::vector<double> lm_put, lm_get, st_put, st_get, sm_put, sm_get, zc_ratio;
      std::vector<double> framed_ratio, lm_framed_ratio;  // GETs, per run
      // Per run, of lm://, stream and stream-mem: CPU seconds per GB of each phase, of the
      // server side and of all threads.
      struct Cpu {
        std::vector<double> put_server, put_all, get_server, get_all;
      } cpu[3];
      for (int r = 0; r < runs; ++r) {
        // Rotate which of the three goes first: a run disturbs the one after it (fresh memory
        // freed, socket buffers), and a fixed order would hand that cost to one column.
        Run lm_run, stream_run, mem_run;
        for (int step = 0; step < 3; ++step) {
          switch ((r + step) % 3) {
            case 0: lm_run = MeasureLm(**store, (*server)->port(), k, r); break;
            case 1: stream_run = MeasureStream(stream.port(), k); break;
            default: mem_run = MeasureStream(stream_mem.port(), k); break;
          }
        }
        lm_put.push_back(lm_run.put);
        lm_get.push_back(lm_run.get);
        st_put.push_back(stream_run.put);
        st_get.push_back(stream_run.get);
        sm_put.push_back(mem_run.put);
        sm_get.push_back(mem_run.get);
        for (auto [to, from] : {std::pair{&cpu[0], &lm_run}, {&cpu[1], &stream_run},
                                {&cpu[2], &mem_run}}) {
          to->put_server.push_back(from->put_server_cpu);
          to->put_all.push_back(from->put_all_cpu);
          to->get_server.push_back(from->get_server_cpu);
          to->get_all.push_back(from->get_all_cpu);
        }
        if (zerocopy) {
          zc_ratio.push_back(MeasureStream(stream_mem.port(), k, "z").get / mem_run.get);
        }
        // stream-mem's GETs framed as lm://'s: what the protocol's framing costs a plain
        // stream. Right after the three, so not in their rotation.
        const double framed_get = MeasureStream(stream_mem.port(), k, "f").get;
        framed_ratio.push_back(framed_get / mem_run.get);
        lm_framed_ratio.push_back(lm_run.get / framed_get);
      }
      // Ratios are taken run by run (each lm:// run beside the stream runs made right after
      // it) and their median reported: the machine is shared, and its speed drifts.
      std::vector<double> r_put, r_get, rm_put, rm_get, limit_put, limit_get;
      for (int r = 0; r < runs; ++r) {
        const auto i = static_cast<std::size_t>(r);
        r_put.push_back(lm_put[i] / st_put[i]);
        r_get.push_back(lm_get[i] / st_get[i]);
        rm_put.push_back(lm_put[i] / sm_put[i]);
        rm_get.push_back(lm_get[i] / sm_get[i]);
        // The plain stream itself, once it moves as much memory as the store holds: what the
        // cached buffer alone was worth.
        limit_put.push_back(sm_put[i] / st_put[i]);
        limit_get.push_back(sm_get[i] / st_get[i]);
      }
      const double mp = Median(lm_put), mg = Median(lm_get);
      const double sp = Median(st_put), sg = Median(st_get);
      const double xp = Median(sm_put), xg = Median(sm_get);
      const double rp = Median(r_put), rg = Median(r_get), rmp = Median(rm_put), rmg = Median(rm_get);
      worst = std::min({worst, rp, rg});
      worst_mem = std::min({worst_mem, rmp, rmg});
      std::printf("%6zuMiB %5d %9.2f %8.2f %5.2fx %10.2f %5.2fx %9.2f %8.2f %5.2fx %10.2f %5.2fx\n",
                  chunk >> 20, conns, mp, sp, rp, xp, rmp, mg, sg, rg, xg, rmg);
      std::printf("%8s %5s   CPU ms/GB, server / all threads: PUT lm:// %.0f / %.0f, stream %.0f / "
                  "%.0f, stream-mem %.0f / %.0f; GET lm:// %.0f / %.0f, stream %.0f / %.0f, "
                  "stream-mem %.0f / %.0f\n",
                  "", "", 1e3 * Median(cpu[0].put_server), 1e3 * Median(cpu[0].put_all),
                  1e3 * Median(cpu[1].put_server), 1e3 * Median(cpu[1].put_all),
                  1e3 * Median(cpu[2].put_server), 1e3 * Median(cpu[2].put_all),
                  1e3 * Median(cpu[0].get_server), 1e3 * Median(cpu[0].get_all),
                  1e3 * Median(cpu[1].get_server), 1e3 * Median(cpu[1].get_all),
                  1e3 * Median(cpu[2].get_server), 1e3 * Median(cpu[2].get_all));
      std::printf("%8s %5s   the stream through the store's memory / through one cached buffer: "
                  "PUT %.2fx, GET %.2fx\n",
                  "", "", Median(limit_put), Median(limit_get));
      std::printf("%8s %5s   stream-mem GETs framed as lm://'s replies (36-byte header, then the "
                  "chunk): %.2fx stream-mem; lm:// GET %.2fx them\n",
                  "", "", Median(framed_ratio), Median(lm_framed_ratio));
      if (zerocopy) {
        std::printf("%6zuMiB %5d   stream-mem GET with MSG_ZEROCOPY: %.2fx the copying send; %llu "
                    "of %llu sends reported so far copied by the kernel anyway\n",
                    chunk >> 20, conns, Median(zc_ratio),
                    static_cast<unsigned long long>(stream_mem.copied_.load()),
                    static_cast<unsigned long long>(stream_mem.sends_.load()));
      }
      std::fflush(stdout);
    }
  }
  // Issue 21's goal: every cell, 1 and 8 connections, at 0.9x the plain stream.
  constexpr double kGoal = 0.9;
  std::printf("worst ratio %.2fx vs stream, %.2fx vs stream-mem (goal >= %.2fx): %s, %s\n",
              worst, worst_mem, kGoal, worst >= kGoal ? "met" : "not met",
              worst_mem >= kGoal ? "met" : "not met");
  return 0;
}
