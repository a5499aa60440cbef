#include "server/server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "server/connection.h"
#include "util/cpu.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv::serve {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kMaxEvents = 64;
// How often each loop checks its connections' deadlines: timeouts are exact to about this.
constexpr auto kTick = std::chrono::milliseconds(100);
// Descriptors kept for everything but lm:// connections: tiers, the spill file, listeners,
// epoll and event fds, the metrics endpoint's clients (at most 64).
constexpr rlim_t kReservedDescriptors = 128;
// accept() out of descriptors: paused this long, doubling up to the maximum while it lasts.
constexpr auto kAcceptBackoffMin = std::chrono::milliseconds(10);
constexpr auto kAcceptBackoffMax = std::chrono::milliseconds(1000);
// Each loop drops unwanted payloads through one buffer of this size.
constexpr std::size_t kScratchBytes = std::size_t{256} << 10;

Status AddToEpoll(int epoll_fd, int fd, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return Status::FromErrno("epoll_ctl add", errno);
  }
  return Status::Ok();
}

// The connection limit that the descriptor limit allows: raises the soft RLIMIT_NOFILE toward
// the hard one when `wanted` needs it; when that is not enough, the most that fits.
unsigned FitConnectionLimit(unsigned wanted, std::string* note) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return wanted;
  const rlim_t needed = static_cast<rlim_t>(wanted) + kReservedDescriptors;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < needed) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max == RLIM_INFINITY ? needed : std::min(needed, rl.rlim_max);
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= needed) return wanted;
  const rlim_t fit = rl.rlim_cur > 2 * kReservedDescriptors ? rl.rlim_cur - kReservedDescriptors
                                                            : std::max<rlim_t>(1, rl.rlim_cur / 2);
  *note = "max_connections lowered from " + std::to_string(wanted) + " to " +
          std::to_string(fit) + ": the descriptor limit (ulimit -n) is " +
          std::to_string(rl.rlim_cur);
  return static_cast<unsigned>(fit);
}

// The SO_RCVBUF to give connections (0: leave the kernel's autotuning), from the option
// (see ServerOptions::receive_buffer) and net.core.rmem_max: above it the kernel would cap the
// window below what autotuning reaches, so it is not set then.
int FitReceiveBuffer(int wanted, std::string* note) {
  if (wanted == 0) return 0;
  long rmem_max = -1;
  if (std::FILE* f = std::fopen("/proc/sys/net/core/rmem_max", "re")) {
    if (std::fscanf(f, "%ld", &rmem_max) != 1) rmem_max = -1;
    std::fclose(f);
  }
  const int size = wanted < 0 ? kDefaultReceiveBuffer : wanted;
  if (rmem_max < 0 || size <= rmem_max) return size;
  if (wanted > 0) {
    *note = "receive_buffer " + std::to_string(wanted) + " exceeds net.core.rmem_max (" +
            std::to_string(rmem_max) + "): connections keep the kernel's autotuning (raise " +
            "rmem_max to use it)";
  }
  return 0;
}

bool OutOfResources(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

}  // namespace

// An accepted connection on its way to the loop that will serve it.
struct Handoff {
  UniqueFd fd;
  ConnectionTicket ticket;
  std::string peer;
};

// A reader thread's pin, on its way back to the connection's loop.
struct PinDone {
  int fd;
  std::uint64_t serial;
  Result<std::unique_ptr<ChunkStore::Lease>> pin;
};

// One event loop: its epoll set, and an inbox through which other loops hand it connections.
// Balancing by count matters: the kernel wakes one loop per burst of connections (a client
// opening 8 at once), and that loop drained the backlog, so 8 connections could land 6 and 2
// on two loops and the busy loop's share of the CPU capped their throughput.
struct Server::Loop {
  UniqueFd epoll;
  UniqueFd wake;  // eventfd: the inbox has connections
  // Open connections plus those in the inbox; written by the loop that accepts (+1) and the
  // loop that closes (-1), read by every accepting loop.
  std::atomic<std::size_t> connections{0};
  internal::Mutex mu;
  std::vector<Handoff> inbox GUARDED_BY(mu);
  std::vector<PinDone> pinned GUARDED_BY(mu);  // reader threads' results for this loop
};

Result<std::unique_ptr<Server>> Server::Start(Store& store, ServerOptions options) {
  if (options.threads == 0 || options.threads > 64) {
    return Status::InvalidArgument("server threads must be 1 to 64, not " +
                                   std::to_string(options.threads));
  }
  if (options.max_payload == 0 || options.max_payload > static_cast<std::size_t>(INT32_MAX)) {
    return Status::InvalidArgument("max payload must be 1 byte to 2 GiB - 1 (the protocol's "
                                   "int32 length)");
  }
  if (options.max_list_bytes > static_cast<std::size_t>(INT32_MAX)) {
    return Status::InvalidArgument("max list bytes must be at most 2 GiB - 1 (the protocol's "
                                   "int32 length)");
  }
  if (options.max_connections == 0) {
    return Status::InvalidArgument("max connections must be at least 1");
  }
  if (options.request_timeout.count() < 0 || options.reply_timeout.count() < 0 ||
      options.idle_timeout.count() < 0) {
    return Status::InvalidArgument("server timeouts must not be negative");
  }
  if (options.host.empty() && options.unix_path.empty()) {
    return Status::InvalidArgument("the server needs a TCP host or a unix socket path");
  }
  std::unique_ptr<Server> s(new Server(store));
  s->log_ = std::make_unique<ServerLog>(options.log_lines_per_second);
  const StoreStats stats = store.Stats();
  const std::size_t quarter = stats.tiers.empty() ? 0 : stats.tiers.front().capacity / 4;
  if (options.max_reserved_bytes == 0) options.max_reserved_bytes = quarter;
  if (options.max_reply_bytes == 0) options.max_reply_bytes = quarter;
  std::string note;
  options.max_connections = FitConnectionLimit(options.max_connections, &note);
  if (!note.empty()) s->log_->Line(note);
  note.clear();
  options.receive_buffer = FitReceiveBuffer(options.receive_buffer, &note);
  if (!note.empty()) s->log_->Line(note);
  s->options_ = options;
  s->chunks_ = StoreChunks(store);
  s->reserved_ = std::make_unique<ByteBudget>(options.max_reserved_bytes);
  s->replies_ = std::make_unique<ByteBudget>(options.max_reply_bytes);
  s->limits_ = std::make_unique<ConnectionLimits>(options.max_connections,
                                                  options.max_connections_per_peer);
  if (!options.host.empty()) {
    CXLKV_ASSIGN_OR_RETURN(s->tcp_, ListenTcp(options.host, options.port));
    CXLKV_ASSIGN_OR_RETURN(s->port_, BoundPort(s->tcp_.get()));
  }
  if (!options.unix_path.empty()) {
    CXLKV_ASSIGN_OR_RETURN(s->unix_, ListenUnix(options.unix_path));
  }
  s->stop_event_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (s->stop_event_.get() < 0) return Status::FromErrno("eventfd", errno);
  if (options.metrics_port >= 0) {
    CXLKV_ASSIGN_OR_RETURN(UniqueFd listener, ListenTcp(options.metrics_host, options.metrics_port));
    CXLKV_ASSIGN_OR_RETURN(s->metrics_port_, BoundPort(listener.get()));
    Server* srv = s.get();
    CXLKV_ASSIGN_OR_RETURN(
        s->metrics_endpoint_,
        MetricsEndpoint::Start(
            std::move(listener),
            [srv] { return srv->metrics_.RenderPrometheus(srv->store_, srv->gauges()); },
            &s->metrics_.metrics_clients_dropped, s->log_.get()));
  }
  for (unsigned i = 0; i < options.threads; ++i) {
    auto loop = std::make_unique<Loop>();
    loop->epoll = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (loop->epoll.get() < 0) return Status::FromErrno("epoll_create1", errno);
    loop->wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (loop->wake.get() < 0) return Status::FromErrno("eventfd", errno);
    // Every loop waits on the listeners; EPOLLEXCLUSIVE wakes one of them per connection.
    for (int l : {s->tcp_.get(), s->unix_.socket.get()}) {
      if (l >= 0) {
        CXLKV_RETURN_IF_ERROR(AddToEpoll(loop->epoll.get(), l, EPOLLIN | EPOLLEXCLUSIVE));
      }
    }
    CXLKV_RETURN_IF_ERROR(AddToEpoll(loop->epoll.get(), s->stop_event_.get(), EPOLLIN));
    CXLKV_RETURN_IF_ERROR(AddToEpoll(loop->epoll.get(), loop->wake.get(), EPOLLIN));
    s->loops_.push_back(std::move(loop));
  }
  for (std::size_t i = 0; i < s->loops_.size(); ++i) {
    s->threads_.emplace_back([srv = s.get(), i] {
      NameThisThread("cxlkv-loop-" + std::to_string(i));
      srv->LoopMain(i);
    });
    s->readers_.emplace_back([srv = s.get(), i] {
      NameThisThread("cxlkv-read-" + std::to_string(i));
      srv->ReaderMain();
    });
  }
  return s;
}

void Server::ReaderMain() {
  for (;;) {
    PinJob job;
    {
      internal::MutexLock lock(jobs_mu_);
      while (jobs_.empty() && !readers_stop_) jobs_cv_.Wait(jobs_mu_);
      if (readers_stop_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    // Reads the chunk into a memory tier (the store's Pin); the lease then holds it there.
    Result<std::unique_ptr<ChunkStore::Lease>> pin = chunks_->Pin(job.key);
    metrics_.gets_pinned_off_loop.fetch_add(1, std::memory_order_relaxed);
    Loop& loop = *loops_[job.loop];
    {
      internal::MutexLock lock(loop.mu);
      loop.pinned.push_back(PinDone{job.fd, job.serial, std::move(pin)});
    }
    const std::uint64_t one = 1;
    if (::write(loop.wake.get(), &one, sizeof(one)) != sizeof(one)) {
      log_->Line("waking a loop for a pinned chunk: " + std::string(std::strerror(errno)));
    }
  }
}

void Server::StopReaders() {
  {
    internal::MutexLock lock(jobs_mu_);
    readers_stop_ = true;
    jobs_.clear();
  }
  jobs_cv_.SignalAll();
  for (std::thread& t : readers_) t.join();
  readers_.clear();
  // Pins made for connections that are gone end here, with the chunks they held.
  for (auto& loop : loops_) {
    internal::MutexLock lock(loop->mu);
    loop->pinned.clear();
    loop->inbox.clear();
  }
}

Server::Server(Store& store) : store_(store) {}

Server::~Server() { Stop(); }

std::vector<std::size_t> Server::ConnectionsPerLoop() const {
  std::vector<std::size_t> counts;
  for (const auto& loop : loops_) {
    counts.push_back(loop->connections.load(std::memory_order_relaxed));
  }
  return counts;
}

std::size_t Server::PickLoop(std::size_t self) const {
  std::size_t best = self;
  std::size_t fewest = loops_[self]->connections.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    const std::size_t n = loops_[i]->connections.load(std::memory_order_relaxed);
    if (n < fewest) {
      best = i;
      fewest = n;
    }
  }
  return best;
}

ServerGauges Server::gauges() const {
  ServerGauges g;
  g.reserved_bytes = reserved_->used();
  g.max_reserved_bytes = reserved_->cap();
  g.reply_bytes = replies_->used();
  g.max_reply_bytes = replies_->cap();
  g.max_connections = options_.max_connections;
  g.log_lines_dropped = log_->dropped();
  return g;
}

void Server::Stop() {
  if (stopped_.exchange(true)) return;
  const std::uint64_t one = 1;
  if (stop_event_.get() >= 0 && ::write(stop_event_.get(), &one, sizeof(one)) != sizeof(one)) {
    log_->Line("cannot signal the event loops to stop: " + std::string(std::strerror(errno)));
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  StopReaders();
  metrics_endpoint_.reset();
  if (!options_.unix_path.empty()) RemoveUnixSocket(unix_, options_.unix_path);
}

void Server::LoopMain(std::size_t index) {
  Loop& self = *loops_[index];
  const int epoll_fd = self.epoll.get();
  std::vector<std::byte> scratch(kScratchBytes);
  ServeContext ctx;
  ctx.store = chunks_.get();
  ctx.keys = &keys_;
  ctx.metrics = &metrics_;
  ctx.log = log_.get();
  ctx.reserved = reserved_.get();
  ctx.replies = replies_.get();
  ctx.scratch = scratch;
  ctx.max_payload = options_.max_payload;
  ctx.max_list_bytes = options_.max_list_bytes;
  ctx.receive_low_water = options_.receive_low_water;
  ctx.request_timeout = options_.request_timeout;
  ctx.reply_timeout = options_.reply_timeout;
  ctx.idle_timeout = options_.idle_timeout;
  ctx.min_transfer_rate = options_.min_transfer_rate;
  ctx.quiet = options_.quiet;
  struct Entry {
    ConnectionTicket ticket;  // declared first, destroyed last: the place is freed once closed
    std::unique_ptr<Connection> conn;
    std::uint64_t serial = 0;  // tells a reader's result for this connection from a later one's
    // Registered for EPOLLIN (reading requests), EPOLLOUT (a reply in flight) or nothing (a
    // GET's pin being made by a reader thread; hang-ups are still reported).
    std::uint32_t events = EPOLLIN;
  };
  std::unordered_map<int, Entry> conns;
  std::uint64_t next_serial = 0;
  const int listeners[2] = {tcp_.get(), unix_.socket.get()};
  // Accepting pauses (the listeners leave this loop's epoll set) while out of descriptors.
  bool accept_paused = false;
  Clock::time_point accept_resume;
  Clock::duration accept_backoff = kAcceptBackoffMin;
  Clock::time_point next_check = Clock::now() + kTick;

  auto close_conn = [&](std::unordered_map<int, Entry>::iterator it) {
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, it->first, nullptr);
    conns.erase(it);  // closes the socket, aborts a partial PUT, ends a lease, frees its place
    self.connections.fetch_sub(1, std::memory_order_relaxed);
  };
  // Starts serving a connection in this loop (its count already includes it).
  auto take_in = [&](Handoff h, Clock::time_point now) {
    const int cfd = h.fd.get();
    if (!AddToEpoll(epoll_fd, cfd, EPOLLIN).ok()) {
      log_->Line("cannot watch a new connection: " + std::string(std::strerror(errno)));
      self.connections.fetch_sub(1, std::memory_order_relaxed);
      return;  // h.fd closes it, h.ticket frees its place
    }
    conns[cfd] = Entry{std::move(h.ticket),
                       std::make_unique<Connection>(std::move(h.fd), std::move(h.peer), ctx, now),
                       ++next_serial, EPOLLIN};
  };
  // After a connection's step: closes it, or watches for what it waits on next; a GET that
  // began waiting for its pin goes to the reader threads.
  auto settle = [&](std::unordered_map<int, Entry>::iterator it, Connection::Step step) {
    if (step == Connection::Step::kClose) {
      close_conn(it);
      return;
    }
    Entry& e = it->second;
    const Connection& c = *e.conn;
    const std::uint32_t want = c.waiting() ? 0u : c.sending() ? EPOLLOUT : EPOLLIN;
    if (want == e.events) return;
    if (c.waiting()) {
      {
        internal::MutexLock lock(jobs_mu_);
        jobs_.push_back(PinJob{index, it->first, e.serial, c.key()});
      }
      jobs_cv_.Signal();
    }
    e.events = want;
    epoll_event ev{};
    ev.events = want;
    ev.data.fd = it->first;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, it->first, &ev) != 0) {
      log_->Line("epoll_ctl: " + std::string(std::strerror(errno)) + "; closing a connection");
      close_conn(it);
    }
  };
  // The connections other loops handed over.
  auto drain_inbox = [&](Clock::time_point now) {
    std::uint64_t ignored;
    if (::read(self.wake.get(), &ignored, sizeof(ignored)) < 0 && errno != EAGAIN) {
      log_->Line("reading a loop's wake-up event: " + std::string(std::strerror(errno)));
    }
    std::vector<Handoff> arrived;
    std::vector<PinDone> pinned;
    {
      internal::MutexLock lock(self.mu);
      arrived.swap(self.inbox);
      pinned.swap(self.pinned);
    }
    for (Handoff& h : arrived) take_in(std::move(h), now);
    for (PinDone& d : pinned) {
      auto it = conns.find(d.fd);
      // Closed meanwhile (a hang-up, a timeout): the lease ends here.
      if (it == conns.end() || it->second.serial != d.serial) continue;
      settle(it, it->second.conn->OnPinned(std::move(d.pin), now));
    }
  };
  // At max_connections: this loop's longest-idle connection, if idle for long enough.
  auto longest_idle = [&](Clock::time_point now) {
    auto best = conns.end();
    for (auto it = conns.begin(); it != conns.end(); ++it) {
      const Connection& c = *it->second.conn;
      if (!c.idle() || now - c.last_active() < ServerOptions::kReplaceIdleAfter) continue;
      if (best == conns.end() || c.last_active() < best->second.conn->last_active()) best = it;
    }
    return best;
  };
  auto accept_from = [&](int listener, Clock::time_point now) {
    for (;;) {
      UniqueFd c(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (c.get() < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        const int err = errno;
        metrics_.accept_failures.fetch_add(1, std::memory_order_relaxed);
        if (OutOfResources(err)) {
          // The listener stays readable: pause this loop's accepts instead of spinning.
          for (int l : listeners) {
            if (l >= 0) ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, l, nullptr);
          }
          accept_paused = true;
          accept_resume = now + accept_backoff;
          log_->Line("accept failed: " + std::string(std::strerror(err)) + "; accepting paused for " +
                     std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        accept_backoff).count()) + " ms");
          accept_backoff = std::min<Clock::duration>(2 * accept_backoff, kAcceptBackoffMax);
        } else {
          log_->Line("accept failed: " + std::string(std::strerror(err)));
        }
        return;
      }
      accept_backoff = kAcceptBackoffMin;
      ConnectionLimits::Verdict verdict;
      ConnectionTicket ticket = limits_->Admit(PeerIdentity(c.get()), &verdict);
      if (verdict == ConnectionLimits::Verdict::kServerFull) {
        auto idle = longest_idle(now);
        if (idle != conns.end()) {
          metrics_.connections_replaced.fetch_add(1, std::memory_order_relaxed);
          close_conn(idle);
          ticket = limits_->Admit(PeerIdentity(c.get()), &verdict);
        }
      }
      if (!ticket.admitted()) {
        metrics_.connections_refused.fetch_add(1, std::memory_order_relaxed);
        log_->Line(PeerName(c.get()) + ": connection refused: " +
                   (verdict == ConnectionLimits::Verdict::kPeerFull
                        ? "max_connections_per_peer (" +
                              std::to_string(options_.max_connections_per_peer) + ") reached"
                        : "max_connections (" + std::to_string(options_.max_connections) +
                              ") reached, none idle to replace"));
        continue;  // c closes it
      }
      if (listener == tcp_.get()) {
        const int one = 1;  // small replies must not wait for Nagle
        if (::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
          log_->Line("TCP_NODELAY: " + std::string(std::strerror(errno)));
        }
      }
      if (options_.send_buffer > 0) {
        // A send buffer that holds a whole chunk lets one sendmsg queue a GET's reply,
        // instead of a wake-up per partial send (the kernel caps it at wmem_max).
        const int bytes = options_.send_buffer;
        if (::setsockopt(c.get(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)) != 0) {
          log_->Line("SO_SNDBUF: " + std::string(std::strerror(errno)));
        }
      }
      if (options_.receive_buffer > 0) {
        // A fixed receive window (the kernel doubles it for its own overhead): a new
        // connection's PUTs start at full speed instead of waiting for autotuning to grow it.
        const int bytes = options_.receive_buffer;
        if (::setsockopt(c.get(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) != 0) {
          log_->Line("SO_RCVBUF: " + std::string(std::strerror(errno)));
        }
      }
      std::string peer = PeerName(c.get());
      const std::size_t target = PickLoop(index);
      Loop& to = *loops_[target];
      to.connections.fetch_add(1, std::memory_order_relaxed);
      Handoff h{std::move(c), std::move(ticket), std::move(peer)};
      if (target == index) {
        take_in(std::move(h), now);
        continue;
      }
      {
        internal::MutexLock lock(to.mu);
        to.inbox.push_back(std::move(h));
      }
      const std::uint64_t one = 1;
      if (::write(to.wake.get(), &one, sizeof(one)) != sizeof(one)) {
        // Only a full counter (2^64 - 2 wake-ups unread) fails: the loop is awake anyway.
        log_->Line("waking a loop for a new connection: " + std::string(std::strerror(errno)));
      }
    }
  };

  epoll_event events[kMaxEvents];
  for (;;) {
    const int n = ::epoll_wait(epoll_fd, events, kMaxEvents,
                               static_cast<int>(std::chrono::milliseconds(kTick).count()));
    if (n < 0 && errno != EINTR) {
      log_->Line("epoll_wait failed: " + std::string(std::strerror(errno)));
      return;
    }
    const Clock::time_point now = Clock::now();
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == stop_event_.get()) return;  // connections close with the map
      if (fd == self.wake.get()) {
        drain_inbox(now);
        continue;
      }
      if (fd == listeners[0] || fd == listeners[1]) {
        accept_from(fd, now);
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      Connection& c = *it->second.conn;
      if (c.waiting()) {  // only a hang-up or an error is reported while its pin is made
        close_conn(it);
        continue;
      }
      settle(it, c.sending() ? c.OnWritable(now) : c.OnReadable(now));
    }
    if (accept_paused && now >= accept_resume) {
      accept_paused = false;
      for (int l : listeners) {
        if (l >= 0 && !AddToEpoll(epoll_fd, l, EPOLLIN | EPOLLEXCLUSIVE).ok()) {
          log_->Line("cannot watch a listener again: " + std::string(std::strerror(errno)));
        }
      }
    }
    if (now >= next_check) {
      next_check = now + kTick;
      for (auto it = conns.begin(); it != conns.end();) {
        auto next = std::next(it);
        if (it->second.conn->CheckTimers(now) == Connection::Step::kClose) close_conn(it);
        it = next;
      }
    }
  }
}

}  // namespace cxlkv::serve
