// Connection: one lm:// client connection's state machine, driven by the event loop.
//
// It reads a 186-byte header, then either receives a PUT's payload straight into the slot
// the store reserved for it (no staging buffer; the chunk becomes visible only once every
// byte is in and it is committed), or sends a reply: GET's chunk goes out of the tier through
// sendmsg from a pinned lease (header and chunk in one iovec), never copied in user space.
// While a reply is being sent nothing more is read, so replies keep request order. A GET of a
// chunk in a tier read through I/O (the spill log) is pinned by a reader thread, not the event
// loop (waiting(), OnPinned); nothing more is read meanwhile either.
//
// Bad input (an unknown command, a negative or oversized length, a bad key, a connection
// that closes mid-header or mid-payload) ends the connection with one log line; a partly
// received PUT is aborted (its reservation freed), so no other connection or chunk notices.
//
// What a client can make the server hold is bounded (docs/security.md, "Clients"): a PUT
// reserves its slot only within the server's budget for PUTs in flight, a GET pins its chunk
// (and a LIST holds its copy) only within the budget for unsent replies (past half of either,
// only as much as twice what the connection has moved: ByteBudget), and a PUT over
// budget, for a key already stored or refused by the store is read into the event loop's
// scratch buffer and dropped. CheckTimers ends a connection whose request (header and
// payload) or reply outlives its deadline or moves slower than the minimum rate, and one
// idle between requests past the idle timeout; its reservation and lease go with it.
//
// Time is what the loop passes in (`now`), so tests and the fuzz target drive it.
//
// Thread-safety: a Connection is used by one event-loop thread at a time.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "server/budget.h"
#include "server/chunk_store.h"
#include "server/key_list.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/protocol.h"
#include "util/unique_fd.h"

namespace cxlkv::serve {

// What every connection of one event loop shares. Durations of 0 and a rate of 0 mean none.
struct ServeContext {
  ChunkStore* store = nullptr;
  KeyList* keys = nullptr;
  ServerMetrics* metrics = nullptr;
  ServerLog* log = nullptr;          // null: no log lines
  ByteBudget* reserved = nullptr;    // slots reserved by PUTs being received
  ByteBudget* replies = nullptr;     // chunks pinned and LIST copies held by unsent replies
  std::span<std::byte> scratch;      // the loop's buffer for payloads read and dropped
  std::size_t max_payload = 0;
  std::size_t max_list_bytes = 0;
  std::size_t receive_low_water = 0;  // SO_RCVLOWAT while a PUT payload arrives; 0 leaves 1
  std::chrono::milliseconds request_timeout{0};  // a request's first header byte to its last byte
  std::chrono::milliseconds reply_timeout{0};    // a reply's first byte to its last
  std::chrono::milliseconds idle_timeout{0};     // between requests
  std::size_t min_transfer_rate = 0;  // bytes/s a payload or reply averages after its first second
  bool quiet = false;  // no log lines for refused PUTs and failed sends (benchmarks)
};

class Connection {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Step { kKeep, kClose };

  Connection(UniqueFd fd, std::string peer, const ServeContext& ctx, Clock::time_point now);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const { return fd_.get(); }
  bool sending() const { return sending_; }
  // A GET waiting for its chunk to be pinned off the loop (in a tier read through I/O): the
  // loop stops reading this connection, has a reader thread call ChunkStore::Pin(key()), and
  // hands the result to OnPinned.
  bool waiting() const { return waiting_; }
  const std::string& key() const { return key_; }
  // Between requests: no header byte, payload, pin or reply outstanding.
  bool idle() const {
    return !sending_ && !waiting_ && payload_total_ == 0 && header_got_ == 0;
  }
  Clock::time_point last_active() const { return last_active_; }

  // Reads what the socket holds (up to a budget, so one client cannot starve the others of
  // its event loop) and acts on it.
  Step OnReadable(Clock::time_point now);
  // Sends what is left of the current reply.
  Step OnWritable(Clock::time_point now);
  // The waiting GET's pin, made off the loop: starts its reply.
  Step OnPinned(Result<std::unique_ptr<ChunkStore::Lease>> pin, Clock::time_point now);
  // kClose (after one log line and a count) when a deadline, the minimum rate or the idle
  // timeout has passed.
  Step CheckTimers(Clock::time_point now);

 private:
  Step HandleHeader();
  Step StartPut(const Request& r);
  Step StartGet(Result<std::unique_ptr<ChunkStore::Lease>> pin);
  Step FinishPut();
  Step StartReply(std::int32_t code, std::int32_t length, const ChunkLayout& layout);
  void FinishRequest();
  void SetLowWater(std::size_t bytes);
  Step BadInput(const std::string& why);
  Step TimedOut(const std::string& why);
  bool TooSlow(std::size_t bytes, Clock::time_point since, Clock::time_point now) const;
  void Log(const std::string& line) const;

  UniqueFd fd_;
  std::string peer_;
  ServeContext ctx_;

  Command command_ = Command::kHealth;
  std::string key_;
  Clock::time_point started_;          // real time of the header: the latency histograms
  Clock::time_point request_started_;  // loop time of the request's first byte
  Clock::time_point last_active_;      // loop time of the last byte moved either way

  std::array<std::byte, kRequestHeaderSize> header_{};
  std::size_t header_got_ = 0;

  // A PUT's payload: into reservation_ when the store gave a slot, else read and dropped.
  std::unique_ptr<ChunkStore::Reservation> reservation_;
  BudgetHold reserved_hold_;
  std::span<std::byte> payload_dst_;  // reservation_'s bytes; empty when dropping
  std::size_t payload_total_ = 0;
  std::size_t payload_got_ = 0;
  int low_water_ = 1;  // the socket's SO_RCVLOWAT

  bool waiting_ = false;  // a GET's pin is being made off the loop
  // A reply: header, then the body from a lease (GET) or from list_ (LIST).
  bool sending_ = false;
  Clock::time_point reply_started_;
  std::array<std::byte, kReplyHeaderSize> reply_{};
  std::unique_ptr<ChunkStore::Lease> lease_;
  std::string list_;
  BudgetHold reply_hold_;
  const std::byte* body_ = nullptr;
  std::size_t body_size_ = 0;
  std::size_t sent_ = 0;

  // Bytes moved in whole transfers (PUT payloads received, GET chunks sent): what this
  // connection may ask of the budgets beyond their first half (ByteBudget).
  std::size_t credit_ = 0;
};

}  // namespace cxlkv::serve
