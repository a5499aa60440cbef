// libFuzzer target: one lm:// Connection (server/connection.h), the state machine the event
// loop drives, fed a byte stream that the input splits at arbitrary points, against a
// MemoryChunkStore, with a clock the input advances. A reference model parses the same
// stream (ParseRequest; budgets, capacity and write-once as documented) and predicts every
// reply and what ends up stored.
//
// Input: 2 configuration bytes, then operations until the input ends (see the enum below):
// requests built from a few fields (valid ones are common), raw bytes, deliveries of the next
// n bytes of the stream, clock ticks, the client pausing its reads, a half-close (dropping
// what the client had not sent yet, so a request can be cut anywhere).
//
// Invariants (a violation traps):
//  - every chunk the store holds is the exact payload and layout of a PUT of that key that
//    was received whole: a half-received PUT is never visible, no byte is wrong;
//  - every reply is the model's: GET (code, layout, every byte), EXIST, HEALTH, LIST (keys
//    the store holds, at most max_list_bytes, all of them when they fit);
//  - the connection closes only for bad input, a half-close, or a timer, and a connection
//    that lives to the end of the input has answered every request, and stored exactly what
//    the model stored;
//  - budgets are never exceeded, and once the connection is gone nothing is reserved,
//    pinned or held.
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "server/connection.h"
#include "server/fuzz/memory_chunk_store.h"

namespace {

using namespace cxlkv::serve;  // NOLINT(google-build-using-namespace)
using cxlkv::ChunkMeta;
using cxlkv::serve::fuzz::MemoryChunkStore;
using Clock = Connection::Clock;

#define CHECK(cond) \
  do {              \
    if (!(cond)) __builtin_trap(); \
  } while (0)

enum Op : std::uint8_t { kRequest, kRaw, kDeliver, kDeliverAll, kTick, kToggleReading, kHalfClose, kOps };

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  std::uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint16_t U16() { return static_cast<std::uint16_t>(U8() | U8() << 8); }
  std::vector<std::byte> Bytes(std::size_t n) {
    std::vector<std::byte> out;
    while (n-- > 0 && !done()) out.push_back(static_cast<std::byte>(U8()));
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// A payload that differs by seed, built by block copies (a byte loop here would be traced by
// the coverage instrumentation at every byte).
std::vector<std::byte> Payload(std::size_t n, std::uint8_t seed) {
  std::array<std::byte, 256> block;
  for (std::size_t i = 0; i < block.size(); ++i) {
    block[i] = static_cast<std::byte>((seed * 31u + i * 7u) & 0xff);
  }
  std::vector<std::byte> p(n);
  for (std::size_t i = 0; i < n; i += block.size()) {
    std::memcpy(p.data() + i, block.data(), std::min(block.size(), n - i));
  }
  return p;
}

struct Expected {
  Command command;
  std::string key;
  std::int32_t code;
  std::vector<std::byte> bytes;  // GET hits
  ChunkLayout layout;
  std::set<std::string> keys;    // LIST: the keys stored then
};

// The reference: what the server should do with the delivered stream, in stream order.
class Model {
 public:
  Model(std::size_t max_payload, std::size_t reserved_cap, std::size_t reply_cap,
        std::size_t capacity)
      : max_payload_(max_payload), reserved_cap_(reserved_cap), reply_cap_(reply_cap),
        capacity_(capacity) {}

  void Consume(const std::vector<std::byte>& bytes) {
    std::size_t i = 0;
    while (i < bytes.size() && !bad_) {
      if (put_.has_value()) {
        const std::size_t n = std::min(bytes.size() - i, put_->length - put_->bytes.size());
        put_->bytes.insert(put_->bytes.end(), bytes.begin() + static_cast<std::ptrdiff_t>(i),
                           bytes.begin() + static_cast<std::ptrdiff_t>(i + n));
        i += n;
        if (put_->bytes.size() == put_->length) FinishPut();
        continue;
      }
      const std::size_t n = std::min(bytes.size() - i, header_.size() - header_got_);
      std::memcpy(header_.data() + header_got_, bytes.data() + i, n);
      header_got_ += n;
      i += n;
      if (header_got_ == header_.size()) {
        header_got_ = 0;
        Header();
      }
    }
  }
  bool bad() const { return bad_; }
  bool mid_request() const { return header_got_ != 0 || put_.has_value(); }
  std::deque<Expected>& replies() { return replies_; }
  const std::map<std::string, MemoryChunkStore::Chunk>& stored() const { return stored_; }
  // Keys stored by PUTs that precede the n-th reply (those are surely processed).
  const std::vector<std::set<std::string>>& stored_before_reply() const { return before_reply_; }

 private:
  struct Put {
    std::string key;
    std::size_t length;
    ChunkLayout layout;
    bool will_store;
    std::vector<std::byte> bytes;
  };
  void Header() {
    cxlkv::Result<Request> r = ParseRequest(header_, max_payload_);
    if (!r.ok()) {
      bad_ = true;
      return;
    }
    if (r->command == Command::kPut) {
      const std::size_t n = static_cast<std::size_t>(r->length);
      // Decided at the header, as the server does: budget, write once, capacity.
      const bool store = Fits(n, reserved_cap_) && stored_.count(r->key) == 0 && used_ + n <= capacity_;
      if (store) used_ += n;  // the reservation counts until the payload ends
      put_ = Put{r->key, n, r->layout, store, {}};
      return;
    }
    Expected e{r->command, r->key, kReplyFail, {}, kNoChunkLayout, {}};
    if (r->command == Command::kGet) {
      auto it = stored_.find(r->key);
      if (it != stored_.end() && Fits(it->second.bytes.size(), reply_cap_)) {
        e.code = kReplySuccess;
        credit_ += it->second.bytes.size();  // sent whole before the next request is read
        e.bytes = it->second.bytes;
        e.layout = *LayoutFromMeta(it->second.meta);
      }
    } else if (r->command == Command::kExist) {
      e.code = stored_.count(r->key) != 0 ? kReplySuccess : kReplyFail;
    } else if (r->command == Command::kHealth) {
      e.code = kReplySuccess;
    } else {  // LIST: checked against the keys; its code depends on the cut list's size
      for (const auto& [k, c] : stored_) e.keys.insert(k);
      e.code = 0;
    }
    std::set<std::string> keys;
    for (const auto& [k, c] : stored_) keys.insert(k);
    before_reply_.push_back(std::move(keys));
    replies_.push_back(std::move(e));
  }
  // ByteBudget's rule with nothing else held (one connection): half of the cap to anyone,
  // the rest to requests no larger than twice the connection's credit.
  bool Fits(std::size_t n, std::size_t cap) const {
    return n <= cap && (n <= cap / 2 || n / 2 <= credit_);
  }
  void FinishPut() {
    credit_ += put_->length;  // a whole payload, stored or dropped
    if (put_->will_store) stored_[put_->key] = MemoryChunkStore::Chunk{put_->bytes, LayoutToMeta(put_->layout)};
    put_.reset();
  }

  std::size_t max_payload_, reserved_cap_, reply_cap_, capacity_;
  std::array<std::byte, kRequestHeaderSize> header_{};
  std::size_t header_got_ = 0;
  std::optional<Put> put_;
  bool bad_ = false;
  std::size_t used_ = 0;
  std::size_t credit_ = 0;  // bytes moved in whole transfers, as the connection counts them
  std::map<std::string, MemoryChunkStore::Chunk> stored_;
  std::deque<Expected> replies_;
  std::vector<std::set<std::string>> before_reply_;
};

// ChunkMeta's operator== lives in the store, which this target does not link.
bool SameMeta(const ChunkMeta& a, const ChunkMeta& b) {
  return a.size == b.size && std::memcmp(a.bytes.data(), b.bytes.data(), a.size) == 0;
}

// memcmp, not a loop this target's coverage instrumentation would trace byte by byte.
bool SameBytes(const std::vector<std::byte>& a, const std::vector<std::byte>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

std::int32_t IntAt(const std::byte* p, std::size_t i) {
  std::int32_t v;
  std::memcpy(&v, p + 4 * i, sizeof(v));
  return v;
}

class Harness {
 public:
  Harness(Input& in) : in_(in) {
    const std::uint8_t c0 = in.U8(), c1 = in.U8();
    static constexpr std::size_t kBudgets[4] = {1024, 8192, 65536, 1 << 20};
    static constexpr std::size_t kPayloads[4] = {512, 4096, 32768, 65536};
    static constexpr std::size_t kRates[4] = {0, 1024, 65536, 1 << 20};
    max_payload_ = kPayloads[(c0 >> 5) & 3];
    reserved_ = std::make_unique<ByteBudget>(kBudgets[c0 & 3]);
    replies_ = std::make_unique<ByteBudget>(kBudgets[(c0 >> 2) & 3]);
    store_ = std::make_unique<MemoryChunkStore>((c0 & 0x10) != 0 ? 16384 : 262144);
    const std::size_t max_list = (c0 & 0x80) != 0 ? 64 : 4096;
    model_ = std::make_unique<Model>(max_payload_, reserved_->cap(), replies_->cap(),
                                     (c0 & 0x10) != 0 ? 16384 : 262144);
    int fds[2];
    CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    client_ = cxlkv::UniqueFd(fds[0]);
    ctx_.store = store_.get();
    ctx_.keys = &keys_;
    ctx_.metrics = &metrics_;
    ctx_.reserved = reserved_.get();
    ctx_.replies = replies_.get();
    ctx_.scratch = scratch_;
    ctx_.max_payload = max_payload_;
    ctx_.max_list_bytes = max_list;
    ctx_.request_timeout = std::chrono::milliseconds(100 * (c1 & 7));
    ctx_.reply_timeout = std::chrono::milliseconds(100 * ((c1 >> 3) & 7));
    ctx_.min_transfer_rate = kRates[(c1 >> 6) & 3];
    ctx_.quiet = true;
    now_ = Clock::time_point() + std::chrono::hours(1);
    conn_ = std::make_unique<Connection>(cxlkv::UniqueFd(fds[1]), "fuzz", ctx_, now_);
  }

  void Run() {
    while (!in_.done()) {
      switch (static_cast<Op>(in_.U8() % kOps)) {
        case kRequest: AddRequest(); break;
        case kRaw: { auto b = in_.Bytes(in_.U8()); Append(b); break; }
        case kDeliver: Deliver(in_.U16() % 4096 + 1); break;
        case kDeliverAll: Deliver(stream_.size()); break;
        case kTick: Tick(std::chrono::milliseconds(in_.U16() % 3000)); break;
        case kToggleReading: reading_ = !reading_; Pump(); break;
        case kHalfClose:  // the client closes its side; what it had not sent is never sent
          stream_.clear();
          if (!half_closed_) {
            CHECK(::shutdown(client_.get(), SHUT_WR) == 0);
            half_closed_ = true;
            Pump();
          }
          break;
        default: break;
      }
      CheckBudgets();
    }
    // The end: the client reads everything, the rest of the stream goes out.
    reading_ = true;
    for (int i = 0; i < 64 && !stream_.empty() && conn_ != nullptr; ++i) Deliver(stream_.size());
    Pump();
    const bool whole = conn_ != nullptr && stream_.empty() && !model_->mid_request() && !model_->bad();
    if (whole) {
      CHECK(model_->replies().empty());  // every request answered
      CHECK(store_->chunks().size() == model_->stored().size());
    }
    // Stored chunks: exactly the model's, and at least those before the last reply.
    for (const auto& [key, c] : store_->chunks()) {
      auto it = model_->stored().find(key);
      CHECK(it != model_->stored().end());
      CHECK(SameBytes(c.bytes, it->second.bytes) && SameMeta(c.meta, it->second.meta));
    }
    if (answered_ > 0) {
      for (const std::string& k : model_->stored_before_reply()[answered_ - 1]) {
        CHECK(store_->Contains(k));
      }
    }
    CHECK(metrics_.puts_stored.load() == store_->chunks().size());
    conn_.reset();
    CHECK(reserved_->used() == 0 && replies_->used() == 0);
    CHECK(store_->open_reservations() == 0 && store_->open_leases() == 0);
  }

 private:
  // The stream is capped (kMaxStream bytes in all): an input of a few KiB could otherwise
  // ask for hundreds of 64 KiB payloads, and spend its time copying them.
  void Append(const std::vector<std::byte>& b) {
    if (appended_ + b.size() > kMaxStream) return;
    appended_ += b.size();
    stream_.insert(stream_.end(), b.begin(), b.end());
  }

  void AddRequest() {
    const std::uint8_t cmd = in_.U8(), key = in_.U8(), layout = in_.U8(), seed = in_.U8();
    const std::uint16_t len = in_.U16();
    Request r;
    static constexpr Command kCommands[5] = {Command::kPut, Command::kGet, Command::kExist,
                                             Command::kList, Command::kHealth};
    r.command = cmd % 6 < 5 ? kCommands[cmd % 6] : static_cast<Command>(static_cast<std::int8_t>(cmd));
    r.key = (key & 0x80) != 0 ? std::string(1 + key % 150, static_cast<char>('a' + key % 26))
                              : "k" + std::to_string(key % 4);
    const auto n = static_cast<std::int32_t>(len % (max_payload_ + 64));
    if (r.command == Command::kPut) {
      switch (layout % 3) {
        case 0: r.layout = {kFormatBinaryBuffer, kDtypeNone, {n, 0, 0, 0}}; break;
        case 1: r.layout = {kFormatKv2LTD, kDtypeBfloat16, {n / 2, 1, 0, 0}}; break;
        default: r.layout = {layout & 7, layout >> 4, {n, 0, 0, 0}}; break;
      }
    }
    r.length = r.command == Command::kPut ? n : 0;
    cxlkv::Result<std::array<std::byte, kRequestHeaderSize>> h = EncodeRequest(r);
    CHECK(h.ok());
    const std::size_t payload = r.command == Command::kPut ? static_cast<std::size_t>(n) : 0;
    if (appended_ + h->size() + payload > kMaxStream) return;  // header and payload, or neither
    Append(std::vector<std::byte>(h->begin(), h->end()));
    if (payload > 0) Append(Payload(payload, seed));
  }

  // Sends up to n bytes of the stream (what the socket takes), feeding the model the same.
  void Deliver(std::size_t n) {
    for (int tries = 0; tries < 100000 && n > 0 && !stream_.empty() && conn_ != nullptr &&
                        !half_closed_;
         ++tries) {
      const ssize_t k = ::send(client_.get(), stream_.data(), std::min(n, stream_.size()), MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        Pump();
        if (!reading_ && conn_ != nullptr && conn_->sending()) return;  // the client is stuck
        continue;
      }
      const std::vector<std::byte> sent(stream_.begin(), stream_.begin() + k);
      stream_.erase(stream_.begin(), stream_.begin() + k);  // at most kMaxStream in all
      model_->Consume(sent);
      n -= static_cast<std::size_t>(k);
      Pump();
    }
  }

  void Tick(std::chrono::milliseconds d) {
    now_ += d;
    if (conn_ != nullptr && conn_->CheckTimers(now_) == Connection::Step::kClose) Close(true);
    Pump();
  }

  void Close(bool allowed) {
    CHECK(allowed);
    conn_.reset();
  }

  // Runs the connection until it waits for the client, reading replies when the client reads.
  void Pump() {
    for (int i = 0; i < 4096 && conn_ != nullptr; ++i) {
      int queued = 0;
      CHECK(::ioctl(conn_->fd(), FIONREAD, &queued) == 0);
      Connection::Step step;
      if (conn_->sending()) {
        step = conn_->OnWritable(now_);
        // Only a client that went away fails a send; this one never does.
        if (step == Connection::Step::kClose) Close(false);
        ReadReplies();
        if (conn_->sending() && !reading_) break;
        continue;
      }
      if (queued == 0 && !(half_closed_ && !eof_seen_)) break;
      if (queued == 0) eof_seen_ = true;
      step = conn_->OnReadable(now_);
      if (step == Connection::Step::kClose) {
        // Bad input (the model saw it), a half-close, or a half-close in mid-request.
        Close(model_->bad() || half_closed_);
        ReadReplies();
      }
      CheckBudgets();
    }
    ReadReplies();
  }

  void ReadReplies() {
    if (!reading_) return;
    for (;;) {  // into a member buffer: a 64 KiB stack array costs ASan a poisoning per call
      const ssize_t k = ::recv(client_.get(), recv_buf_.data(), recv_buf_.size(), 0);
      if (k <= 0) break;
      replies_in_.insert(replies_in_.end(), recv_buf_.begin(), recv_buf_.begin() + k);
    }
    for (;;) {
      if (replies_in_.size() < kReplyHeaderSize) return;
      const std::int32_t code = IntAt(replies_in_.data(), 0), length = IntAt(replies_in_.data(), 1);
      CHECK(code == kReplySuccess || code == kReplyFail);
      CHECK(length >= 0);
      const std::size_t body = code == kReplySuccess ? static_cast<std::size_t>(length) : 0;
      if (replies_in_.size() < kReplyHeaderSize + body) return;
      CHECK(!model_->replies().empty());  // no reply without a request
      Expected e = std::move(model_->replies().front());
      model_->replies().pop_front();
      ++answered_;
      const std::byte* b = replies_in_.data() + kReplyHeaderSize;
      if (e.command == Command::kList) {
        CHECK(body <= ctx_.max_list_bytes);
        std::set<std::string> listed;
        std::string text(reinterpret_cast<const char*>(b), body);
        for (std::size_t start = 0; start < text.size();) {
          std::size_t nl = text.find('\n', start);
          if (nl == std::string::npos) nl = text.size();
          listed.insert(text.substr(start, nl - start));
          start = nl + 1;
        }
        for (const std::string& k : listed) CHECK(e.keys.count(k) != 0);
        std::size_t all = 0;
        for (const std::string& k : e.keys) all += k.size() + 1;
        if (all > 0) --all;
        if (code == kReplySuccess && all <= ctx_.max_list_bytes) CHECK(listed.size() == e.keys.size());
        // FAIL only when the list (as cut) could be over the reply budget's open half.
        if (code == kReplyFail) CHECK(std::min(all, ctx_.max_list_bytes) > replies_->cap() / 2);
        if (code == kReplySuccess) CHECK(body <= replies_->cap());
      } else {
        CHECK(code == e.code);
        if (e.command == Command::kGet && code == kReplySuccess) {
          CHECK(body == e.bytes.size() && std::memcmp(b, e.bytes.data(), body) == 0);
          const ChunkLayout l{IntAt(replies_in_.data(), 2), IntAt(replies_in_.data(), 3),
                              {IntAt(replies_in_.data(), 4), IntAt(replies_in_.data(), 5),
                               IntAt(replies_in_.data(), 6), IntAt(replies_in_.data(), 7)}};
          CHECK(l == e.layout);
        } else {
          CHECK(length == 0);
        }
      }
      replies_in_.erase(replies_in_.begin(), replies_in_.begin() + static_cast<std::ptrdiff_t>(kReplyHeaderSize + body));
    }
  }

  void CheckBudgets() {
    CHECK(reserved_->used() <= reserved_->cap());
    CHECK(replies_->used() <= replies_->cap());
    // Nothing half-received is visible: every stored chunk is a whole PUT's payload. Chunks
    // never change once stored, so each is compared when it first appears.
    if (store_->chunks().size() == verified_.size()) return;
    for (const auto& [key, c] : store_->chunks()) {
      if (!verified_.insert(key).second) continue;
      auto it = model_->stored().find(key);
      CHECK(it != model_->stored().end() && SameBytes(c.bytes, it->second.bytes));
    }
  }

  Input& in_;
  std::size_t max_payload_ = 0;
  std::unique_ptr<ByteBudget> reserved_, replies_;
  std::unique_ptr<MemoryChunkStore> store_;
  std::unique_ptr<Model> model_;
  KeyList keys_;
  ServerMetrics metrics_;
  std::vector<std::byte> scratch_ = std::vector<std::byte>(4096);
  ServeContext ctx_;
  cxlkv::UniqueFd client_;
  Clock::time_point now_;
  std::unique_ptr<Connection> conn_;
  static constexpr std::size_t kMaxStream = std::size_t{1} << 20;
  std::vector<std::byte> stream_;      // what the client has yet to send
  std::size_t appended_ = 0;           // bytes ever appended to stream_
  std::vector<std::byte> replies_in_;  // what it has read and not yet parsed
  std::vector<std::byte> recv_buf_ = std::vector<std::byte>(65536);
  bool reading_ = true;
  bool half_closed_ = false;
  bool eof_seen_ = false;
  std::size_t answered_ = 0;
  std::set<std::string> verified_;  // stored chunks already compared with the model
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  Harness h(in);
  h.Run();
  return 0;
}
