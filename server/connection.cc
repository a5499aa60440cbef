#include "server/connection.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace cxlkv::serve {
namespace {

// Bytes one OnReadable call takes before yielding to the loop's other connections.
constexpr std::size_t kReadBudget = std::size_t{8} << 20;
// A transfer's first second is not held to the minimum rate (a client may start a little late).
constexpr auto kRateGrace = std::chrono::seconds(1);

std::uint64_t NsSince(Connection::Clock::time_point start) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        Connection::Clock::now() - start)
                                        .count());
}

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

std::string Ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

}  // namespace

Connection::Connection(UniqueFd fd, std::string peer, const ServeContext& ctx,
                       Clock::time_point now)
    : fd_(std::move(fd)), peer_(std::move(peer)), ctx_(ctx), last_active_(now) {
  ctx_.metrics->connections_accepted.fetch_add(1, std::memory_order_relaxed);
  ctx_.metrics->connections_open.fetch_add(1, std::memory_order_relaxed);
}

Connection::~Connection() { ctx_.metrics->connections_open.fetch_sub(1, std::memory_order_relaxed); }

void Connection::Log(const std::string& line) const {
  if (ctx_.log != nullptr) ctx_.log->Line(peer_ + ": " + line);
}

Connection::Step Connection::BadInput(const std::string& why) {
  ctx_.metrics->connections_closed_bad_input.fetch_add(1, std::memory_order_relaxed);
  // Logged even when quiet: bad input is what an operator must see (within the log rate).
  Log("closing the connection: " + why);
  reservation_.reset();  // a half-received PUT is never visible
  return Step::kClose;
}

Connection::Step Connection::TimedOut(const std::string& why) {
  ctx_.metrics->connections_closed_timeout.fetch_add(1, std::memory_order_relaxed);
  Log("closing the connection: " + why);
  reservation_.reset();
  lease_.reset();
  return Step::kClose;
}

bool Connection::TooSlow(std::size_t bytes, Clock::time_point since, Clock::time_point now) const {
  if (ctx_.min_transfer_rate == 0 || now - since <= kRateGrace) return false;
  const double seconds = std::chrono::duration<double>(now - since - kRateGrace).count();
  return static_cast<double>(bytes) < seconds * static_cast<double>(ctx_.min_transfer_rate);
}

Connection::Step Connection::CheckTimers(Clock::time_point now) {
  if (sending_) {
    const std::string what = std::string(CommandName(command_)) + " reply of " +
                             std::to_string(reply_.size() + body_size_) + " bytes";
    if (ctx_.reply_timeout.count() > 0 && now - reply_started_ > ctx_.reply_timeout) {
      return TimedOut(what + " not read within the reply timeout (" + Ms(ctx_.reply_timeout) +
                      "; " + std::to_string(sent_) + " bytes sent)");
    }
    if (TooSlow(sent_, reply_started_, now)) {
      return TimedOut(what + " read slower than the minimum rate (" +
                      std::to_string(ctx_.min_transfer_rate) + " bytes/s; " +
                      std::to_string(sent_) + " bytes sent)");
    }
    return Step::kKeep;
  }
  if (waiting_) {
    if (ctx_.request_timeout.count() > 0 && now - request_started_ > ctx_.request_timeout) {
      return TimedOut("GET " + key_ + " not read from its tier within the request timeout (" +
                      Ms(ctx_.request_timeout) + ")");
    }
    return Step::kKeep;
  }
  if (!idle()) {
    const std::string what = payload_total_ != 0
                                 ? "PUT " + key_ + " (" + std::to_string(payload_got_) + " of " +
                                       std::to_string(payload_total_) + " bytes received)"
                                 : "a request header (" + std::to_string(header_got_) + " of " +
                                       std::to_string(kRequestHeaderSize) + " bytes received)";
    if (ctx_.request_timeout.count() > 0 && now - request_started_ > ctx_.request_timeout) {
      return TimedOut(what + " not complete within the request timeout (" +
                      Ms(ctx_.request_timeout) + "); nothing stored");
    }
    if (payload_total_ != 0 && TooSlow(payload_got_, request_started_, now)) {
      return TimedOut(what + " arriving slower than the minimum rate (" +
                      std::to_string(ctx_.min_transfer_rate) + " bytes/s); nothing stored");
    }
    return Step::kKeep;
  }
  if (ctx_.idle_timeout.count() > 0 && now - last_active_ > ctx_.idle_timeout) {
    ctx_.metrics->connections_closed_idle.fetch_add(1, std::memory_order_relaxed);
    if (!ctx_.quiet) Log("closing the connection: idle for " + Ms(ctx_.idle_timeout));
    return Step::kClose;
  }
  return Step::kKeep;
}

Connection::Step Connection::OnReadable(Clock::time_point now) {
  std::size_t budget = kReadBudget;
  while (!sending_ && !waiting_ && budget > 0) {
    if (payload_total_ != 0) {
      std::byte* dst;
      std::size_t want = payload_total_ - payload_got_;
      if (!payload_dst_.empty()) {
        dst = payload_dst_.data() + payload_got_;
      } else {  // dropped: through the loop's scratch buffer, no memory of its own
        dst = ctx_.scratch.data();
        want = std::min(want, ctx_.scratch.size());
      }
      want = std::min(want, budget);
      const ssize_t n = ::recv(fd_.get(), dst, want, 0);
      if (n == 0) {
        return BadInput("closed in the middle of a PUT of " + key_ + " (" +
                        std::to_string(payload_got_) + " of " + std::to_string(payload_total_) +
                        " bytes received); nothing stored");
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (WouldBlock(errno)) {
          // Wake this loop again only once a good part of the rest has arrived.
          if (ctx_.receive_low_water > 0) {
            SetLowWater(std::min(payload_total_ - payload_got_, ctx_.receive_low_water));
          }
          return Step::kKeep;
        }
        return BadInput("recv failed during a PUT: " + std::string(std::strerror(errno)));
      }
      last_active_ = now;
      payload_got_ += static_cast<std::size_t>(n);
      budget -= static_cast<std::size_t>(n);
      ctx_.metrics->bytes_received.fetch_add(static_cast<std::uint64_t>(n),
                                             std::memory_order_relaxed);
      if (payload_got_ == payload_total_ && FinishPut() == Step::kClose) return Step::kClose;
      continue;
    }
    const ssize_t n = ::recv(fd_.get(), header_.data() + header_got_,
                             header_.size() - header_got_, 0);
    if (n == 0) {
      if (header_got_ == 0) return Step::kClose;  // a clean close between requests
      return BadInput("closed in the middle of a request header (" + std::to_string(header_got_) +
                      " of " + std::to_string(kRequestHeaderSize) + " bytes)");
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (WouldBlock(errno)) return Step::kKeep;
      if (errno == ECONNRESET && header_got_ == 0) return Step::kClose;
      return BadInput("recv failed: " + std::string(std::strerror(errno)));
    }
    if (header_got_ == 0) request_started_ = now;
    last_active_ = now;
    header_got_ += static_cast<std::size_t>(n);
    budget -= std::min(budget, static_cast<std::size_t>(n));
    if (header_got_ == header_.size()) {
      header_got_ = 0;
      if (HandleHeader() == Step::kClose) return Step::kClose;
      if (sending_) reply_started_ = now;
      if (sending_ && OnWritable(now) == Step::kClose) return Step::kClose;
    }
  }
  return Step::kKeep;
}

Connection::Step Connection::HandleHeader() {
  Result<Request> parsed = ParseRequest(header_, ctx_.max_payload);
  if (!parsed.ok()) return BadInput(parsed.status().message());
  Request& r = *parsed;
  command_ = r.command;
  key_ = std::move(r.key);
  started_ = Clock::now();
  ServerMetrics& m = *ctx_.metrics;
  m.requests[ServerMetrics::Index(command_)].fetch_add(1, std::memory_order_relaxed);
  ChunkStore& store = *ctx_.store;
  switch (command_) {
    case Command::kPut:
      return StartPut(r);
    case Command::kGet: {
      Result<std::unique_ptr<ChunkStore::Lease>> pin = store.PinWithoutIo(key_);
      if (!pin.ok() && pin.status().code() == StatusCode::kBusy) {
        // In a tier read through I/O (the spill log): the loop has a reader thread pin it and
        // calls OnPinned; meanwhile this loop's other connections go on.
        waiting_ = true;
        return Step::kKeep;
      }
      return StartGet(std::move(pin));
    }
    case Command::kExist: {
      const bool found = store.Contains(key_);
      (found ? m.exist_hits : m.exist_misses).fetch_add(1, std::memory_order_relaxed);
      return StartReply(found ? kReplySuccess : kReplyFail, 0, kNoChunkLayout);
    }
    case Command::kList: {
      bool truncated = false;
      list_ = ctx_.keys->Snapshot(store, ctx_.max_list_bytes, &truncated);
      if (truncated) m.lists_truncated.fetch_add(1, std::memory_order_relaxed);
      reply_hold_ = ctx_.replies->TryAcquire(list_.size(), credit_);
      if (!reply_hold_.held()) {
        list_ = std::string();  // frees it
        m.lists_over_budget.fetch_add(1, std::memory_order_relaxed);
        Log("LIST answered FAIL: the replies not yet read hold " +
            std::to_string(ctx_.replies->used()) + " of " + std::to_string(ctx_.replies->cap()) +
            " bytes (max_reply_bytes)");
        return StartReply(kReplyFail, 0, kNoChunkLayout);
      }
      body_ = reinterpret_cast<const std::byte*>(list_.data());
      body_size_ = list_.size();
      return StartReply(kReplySuccess, static_cast<std::int32_t>(body_size_), kNoChunkLayout);
    }
    case Command::kHealth:
      return StartReply(kReplySuccess, 0, kNoChunkLayout);
  }
  return BadInput("unhandled command");  // unreachable: ParseRequest checked it
}

Connection::Step Connection::StartGet(Result<std::unique_ptr<ChunkStore::Lease>> pin) {
  ServerMetrics& m = *ctx_.metrics;
  if (!pin.ok()) {
    if (!pin.status().IsNotFound()) Log("GET " + key_ + ": " + pin.status().ToString());
    m.get_misses.fetch_add(1, std::memory_order_relaxed);
    return StartReply(kReplyFail, 0, kNoChunkLayout);
  }
  std::unique_ptr<ChunkStore::Lease> lease = std::move(pin).value();
  const std::span<const std::byte> bytes = lease->bytes();
  reply_hold_ = ctx_.replies->TryAcquire(bytes.size(), credit_);
  if (!reply_hold_.held()) {
    // Answered as a miss (LMCache recomputes) rather than pin more of the cache for
    // replies that clients are not reading.
    m.gets_over_budget.fetch_add(1, std::memory_order_relaxed);
    Log("GET " + key_ + " answered as a miss: " + std::to_string(ctx_.replies->used()) +
        " of " + std::to_string(ctx_.replies->cap()) +
        " bytes are held by unsent replies (max_reply_bytes)");
    return StartReply(kReplyFail, 0, kNoChunkLayout);
  }
  m.get_hits.fetch_add(1, std::memory_order_relaxed);
  Result<ChunkLayout> layout = LayoutFromMeta(lease->meta());
  // A chunk stored without a layout (through the library) goes out as bytes, the way
  // LMCache describes a byte buffer: BINARY_BUFFER, dtype None, shape [size, 0, 0, 0].
  const ChunkLayout l =
      layout.ok() ? *layout
                  : ChunkLayout{kFormatBinaryBuffer, kDtypeNone,
                                {static_cast<std::int32_t>(bytes.size()), 0, 0, 0}};
  lease_ = std::move(lease);
  body_ = bytes.data();
  body_size_ = bytes.size();
  return StartReply(kReplySuccess, static_cast<std::int32_t>(body_size_), l);
}

Connection::Step Connection::OnPinned(Result<std::unique_ptr<ChunkStore::Lease>> pin,
                                      Clock::time_point now) {
  waiting_ = false;
  last_active_ = now;
  if (StartGet(std::move(pin)) == Step::kClose) return Step::kClose;
  reply_started_ = now;
  return OnWritable(now);
}

Connection::Step Connection::StartPut(const Request& r) {
  payload_total_ = static_cast<std::size_t>(r.length);
  payload_got_ = 0;
  payload_dst_ = {};
  ServerMetrics& m = *ctx_.metrics;
  reserved_hold_ = ctx_.reserved->TryAcquire(payload_total_, credit_);
  if (!reserved_hold_.held()) {
    // Read and dropped: stalled or slow PUTs of other clients hold the budget; none of them
    // may evict the cache to hold more.
    m.puts_over_budget.fetch_add(1, std::memory_order_relaxed);
    Log("PUT " + key_ + " of " + std::to_string(payload_total_) + " bytes not stored: " +
        std::to_string(ctx_.reserved->used()) + " of " + std::to_string(ctx_.reserved->cap()) +
        " bytes are reserved by PUTs in flight (max_reserved_bytes; past half of it, only for "
        "connections that have moved half as much)");
    return Step::kKeep;
  }
  Result<std::unique_ptr<ChunkStore::Reservation>> reserved =
      ctx_.store->Reserve(key_, payload_total_, LayoutToMeta(r.layout));
  if (!reserved.ok()) {
    reserved_hold_.Release();
    // Not the client's fault (the store is full of pinned chunks, the chunk is bigger than
    // any slot): the payload is read and dropped, the connection goes on. LMCache expects no
    // reply to a PUT; a later GET misses.
    m.puts_refused.fetch_add(1, std::memory_order_relaxed);
    if (!ctx_.quiet) {
      Log("PUT " + key_ + " of " + std::to_string(payload_total_) +
          " bytes not stored: " + reserved.status().ToString());
    }
    return Step::kKeep;
  }
  reservation_ = std::move(reserved).value();
  payload_dst_ = reservation_->bytes();
  if (payload_dst_.empty()) reserved_hold_.Release();  // already stored: nothing is held
  return Step::kKeep;
}

Connection::Step Connection::FinishPut() {
  ServerMetrics& m = *ctx_.metrics;
  credit_ += payload_total_;
  payload_total_ = 0;
  payload_got_ = 0;
  payload_dst_ = {};
  SetLowWater(1);  // headers: wake on any byte
  if (reservation_ != nullptr) {
    Result<bool> committed = reservation_->Commit();
    reservation_.reset();
    if (!committed.ok()) {
      m.puts_refused.fetch_add(1, std::memory_order_relaxed);
      if (!ctx_.quiet) Log("PUT " + key_ + " not stored: " + committed.status().ToString());
    } else if (*committed) {
      m.puts_stored.fetch_add(1, std::memory_order_relaxed);
      ctx_.keys->Add(key_, *ctx_.store);
    } else {  // the key was stored already, or a racing PUT of it committed first
      m.puts_already_stored.fetch_add(1, std::memory_order_relaxed);
    }
  }
  reserved_hold_.Release();
  FinishRequest();
  return Step::kKeep;
}

Connection::Step Connection::StartReply(std::int32_t code, std::int32_t length,
                                        const ChunkLayout& layout) {
  reply_ = EncodeReply(code, length, layout);
  if (code != kReplySuccess) {
    lease_.reset();
    reply_hold_.Release();
    body_ = nullptr;
    body_size_ = 0;
  }
  sent_ = 0;
  sending_ = true;
  return Step::kKeep;  // the caller sends: most replies fit in the socket buffer at once
}

Connection::Step Connection::OnWritable(Clock::time_point now) {
  const std::size_t total = reply_.size() + body_size_;
  while (sent_ < total) {
    iovec iov[2];
    int count = 0;
    if (sent_ < reply_.size()) {
      iov[count++] = {reply_.data() + sent_, reply_.size() - sent_};
    }
    if (body_size_ > 0) {
      const std::size_t body_sent = sent_ > reply_.size() ? sent_ - reply_.size() : 0;
      // The lease keeps the chunk in place; the kernel copies from the tier's mapping.
      iov[count++] = {const_cast<std::byte*>(body_) + body_sent, body_size_ - body_sent};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    const ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (WouldBlock(errno)) return Step::kKeep;
      if (!ctx_.quiet) {
        Log(std::string(CommandName(command_)) + " reply failed: " + std::strerror(errno));
      }
      return Step::kClose;  // the client went away; not bad input
    }
    last_active_ = now;
    sent_ += static_cast<std::size_t>(n);
  }
  ctx_.metrics->bytes_sent.fetch_add(body_size_, std::memory_order_relaxed);
  if (lease_ != nullptr) credit_ += body_size_;  // chunks, not LIST copies
  lease_.reset();
  list_ = std::string();  // frees the copy, not just its contents
  reply_hold_.Release();
  body_ = nullptr;
  body_size_ = 0;
  sending_ = false;
  FinishRequest();
  return Step::kKeep;
}

void Connection::SetLowWater(std::size_t bytes) {
  const int value = static_cast<int>(std::clamp<std::size_t>(bytes, 1, INT32_MAX));
  if (value == low_water_) return;
  if (::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVLOWAT, &value, sizeof(value)) == 0) {
    low_water_ = value;
  }
}

void Connection::FinishRequest() {
  ctx_.metrics->latency[ServerMetrics::Index(command_)].Record(NsSince(started_));
}

}  // namespace cxlkv::serve
