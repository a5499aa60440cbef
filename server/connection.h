// Connection: one lm:// client connection's state machine, driven by the event loop.
//
// It reads a 186-byte header, then either receives a PUT's payload straight into the slot
// the store reserved for it (Store::Reserve: no staging buffer; the chunk becomes visible
// only once every byte is in and it is committed), or sends a reply: GET's chunk goes out of
// the tier through sendmsg from a pinned lease (header and chunk in one iovec), never copied
// in user space. While a reply is being sent nothing more is read, so replies keep request
// order.
//
// Bad input (an unknown command, a negative or oversized length, a bad key, a connection
// that closes mid-header or mid-payload) ends the connection with one log line; a partly
// received PUT is aborted (its reservation freed), so no other connection or chunk notices.
//
// Thread-safety: a Connection is used by one event-loop thread at a time.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cxlkv/store.h"
#include "server/key_list.h"
#include "server/metrics.h"
#include "server/protocol.h"
#include "util/unique_fd.h"

namespace cxlkv::serve {

// What every connection of a server shares.
struct ServeContext {
  Store* store = nullptr;
  KeyList* keys = nullptr;
  ServerMetrics* metrics = nullptr;
  std::size_t max_payload = 0;
  std::size_t receive_low_water = 0;  // SO_RCVLOWAT while a PUT payload arrives; 0 leaves 1
  bool quiet = false;  // no per-connection log lines (benchmarks)
};

class Connection {
 public:
  enum class Step { kKeep, kClose };

  Connection(UniqueFd fd, std::string peer, const ServeContext& ctx);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const { return fd_.get(); }
  bool sending() const { return sending_; }

  // Reads what the socket holds (up to a budget, so one client cannot starve the others of
  // its event loop) and acts on it.
  Step OnReadable();
  // Sends what is left of the current reply.
  Step OnWritable();

 private:
  Step HandleHeader();
  Step StartPut(const Request& r);
  Step FinishPut();
  Step StartReply(std::int32_t code, std::int32_t length, const ChunkLayout& layout);
  void FinishRequest();
  void SetLowWater(std::size_t bytes);
  Step BadInput(const std::string& why);
  void Log(const std::string& line) const;

  UniqueFd fd_;
  std::string peer_;
  ServeContext ctx_;

  Command command_ = Command::kHealth;
  std::string key_;
  std::chrono::steady_clock::time_point started_;

  std::array<std::byte, kRequestHeaderSize> header_{};
  std::size_t header_got_ = 0;

  // A PUT's payload: into reserved_ when the store gave a slot, else read and dropped.
  ReservedChunk reserved_;
  std::size_t payload_total_ = 0;
  std::size_t payload_got_ = 0;
  int low_water_ = 1;  // the socket's SO_RCVLOWAT
  std::vector<std::byte> drain_;  // scratch for dropped payloads, allocated on first use

  // A reply: header, then the body from a lease (GET) or from list_ (LIST).
  bool sending_ = false;
  std::array<std::byte, kReplyHeaderSize> reply_{};
  PinnedChunk pinned_;
  std::string list_;
  const std::byte* body_ = nullptr;
  std::size_t body_size_ = 0;
  std::size_t sent_ = 0;
};

}  // namespace cxlkv::serve
