#include "server/connection.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace cxlkv::serve {
namespace {

// Bytes one OnReadable call takes before yielding to the loop's other connections.
constexpr std::size_t kReadBudget = std::size_t{8} << 20;
constexpr std::size_t kDrainBuffer = std::size_t{256} << 10;

std::uint64_t NsSince(std::chrono::steady_clock::time_point start) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now() - start)
                                        .count());
}

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

}  // namespace

Connection::Connection(UniqueFd fd, std::string peer, const ServeContext& ctx)
    : fd_(std::move(fd)), peer_(std::move(peer)), ctx_(ctx) {
  ctx_.metrics->connections_accepted.fetch_add(1, std::memory_order_relaxed);
  ctx_.metrics->connections_open.fetch_add(1, std::memory_order_relaxed);
}

Connection::~Connection() { ctx_.metrics->connections_open.fetch_sub(1, std::memory_order_relaxed); }

void Connection::Log(const std::string& line) const {
  if (!ctx_.quiet) std::fprintf(stderr, "cxlkv serve: %s: %s\n", peer_.c_str(), line.c_str());
}

Connection::Step Connection::BadInput(const std::string& why) {
  ctx_.metrics->connections_closed_bad_input.fetch_add(1, std::memory_order_relaxed);
  // Always logged, even when quiet: bad input is what an operator must see.
  std::fprintf(stderr, "cxlkv serve: %s: closing the connection: %s\n", peer_.c_str(),
               why.c_str());
  reserved_.Abort();  // a half-received PUT is never visible
  return Step::kClose;
}

Connection::Step Connection::OnReadable() {
  std::size_t budget = kReadBudget;
  while (!sending_ && budget > 0) {
    if (payload_total_ != 0) {
      std::byte* dst;
      std::size_t want = payload_total_ - payload_got_;
      if (reserved_.data() != nullptr) {
        dst = reserved_.data() + payload_got_;
      } else {
        if (drain_.empty()) drain_.resize(kDrainBuffer);
        dst = drain_.data();
        want = std::min(want, drain_.size());
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
    header_got_ += static_cast<std::size_t>(n);
    budget -= std::min(budget, static_cast<std::size_t>(n));
    if (header_got_ == header_.size()) {
      header_got_ = 0;
      if (HandleHeader() == Step::kClose) return Step::kClose;
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
  started_ = std::chrono::steady_clock::now();
  ServerMetrics& m = *ctx_.metrics;
  m.requests[ServerMetrics::Index(command_)].fetch_add(1, std::memory_order_relaxed);
  Store& store = *ctx_.store;
  switch (command_) {
    case Command::kPut:
      return StartPut(r);
    case Command::kGet: {
      Result<PinnedChunk> pin = store.Pin(key_);
      if (!pin.ok()) {
        if (!pin.status().IsNotFound()) Log("GET " + key_ + ": " + pin.status().ToString());
        m.get_misses.fetch_add(1, std::memory_order_relaxed);
        return StartReply(kReplyFail, 0, kNoChunkLayout);
      }
      m.get_hits.fetch_add(1, std::memory_order_relaxed);
      pinned_ = std::move(pin).value();
      Result<ChunkLayout> layout = LayoutFromMeta(pinned_.meta());
      // A chunk stored without a layout (through the library) goes out as bytes, the way
      // LMCache describes a byte buffer: BINARY_BUFFER, dtype None, shape [size, 0, 0, 0].
      const ChunkLayout l =
          layout.ok() ? *layout
                      : ChunkLayout{kFormatBinaryBuffer, kDtypeNone,
                                    {static_cast<std::int32_t>(pinned_.size()), 0, 0, 0}};
      body_ = pinned_.data();
      body_size_ = pinned_.size();
      return StartReply(kReplySuccess, static_cast<std::int32_t>(body_size_), l);
    }
    case Command::kExist: {
      const bool found = store.Contains(key_);
      (found ? m.exist_hits : m.exist_misses).fetch_add(1, std::memory_order_relaxed);
      return StartReply(found ? kReplySuccess : kReplyFail, 0, kNoChunkLayout);
    }
    case Command::kList: {
      list_ = ctx_.keys->Snapshot(store);
      if (list_.size() > static_cast<std::size_t>(INT32_MAX)) {
        list_.clear();
        Log("LIST: the key list is over 2 GiB; replying FAIL");
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

Connection::Step Connection::StartPut(const Request& r) {
  payload_total_ = static_cast<std::size_t>(r.length);
  payload_got_ = 0;
  Result<ReservedChunk> reserved = ctx_.store->Reserve(key_, payload_total_, LayoutToMeta(r.layout));
  if (reserved.ok()) {
    reserved_ = std::move(reserved).value();
  } else {
    // Not the client's fault (the store is full of pinned chunks, the chunk is bigger than
    // any slot): the payload is read and dropped, the connection goes on. LMCache expects no
    // reply to a PUT; a later GET misses.
    ctx_.metrics->puts_refused.fetch_add(1, std::memory_order_relaxed);
    Log("PUT " + key_ + " of " + std::to_string(payload_total_) +
        " bytes not stored: " + reserved.status().ToString());
  }
  return Step::kKeep;
}

Connection::Step Connection::FinishPut() {
  ServerMetrics& m = *ctx_.metrics;
  payload_total_ = 0;
  payload_got_ = 0;
  SetLowWater(1);  // headers: wake on any byte
  if (reserved_.already_stored()) {
    m.puts_already_stored.fetch_add(1, std::memory_order_relaxed);
    reserved_.Abort();
  } else if (reserved_.data() != nullptr) {
    Status committed = reserved_.Commit();
    if (committed.ok()) {
      m.puts_stored.fetch_add(1, std::memory_order_relaxed);
      ctx_.keys->Add(key_, *ctx_.store);
    } else {
      m.puts_refused.fetch_add(1, std::memory_order_relaxed);
      Log("PUT " + key_ + " not stored: " + committed.ToString());
    }
  }
  FinishRequest();
  return Step::kKeep;
}

Connection::Step Connection::StartReply(std::int32_t code, std::int32_t length,
                                        const ChunkLayout& layout) {
  reply_ = EncodeReply(code, length, layout);
  if (code != kReplySuccess) {
    body_ = nullptr;
    body_size_ = 0;
  }
  sent_ = 0;
  sending_ = true;
  return OnWritable();  // most replies fit in the socket buffer at once
}

Connection::Step Connection::OnWritable() {
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
      Log(std::string(CommandName(command_)) + " reply failed: " + std::strerror(errno));
      return Step::kClose;  // the client went away; not bad input
    }
    sent_ += static_cast<std::size_t>(n);
  }
  ctx_.metrics->bytes_sent.fetch_add(body_size_, std::memory_order_relaxed);
  pinned_.Release();
  list_.clear();
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
