// Batched, asynchronous operations: SubmitGets and SubmitPuts, run by the store's copy threads.
//
// A batch is cut into pieces: one per put, and for gets one per stripe of up to kStripe bytes
// of each chunk. Pieces sit in submission order and the copy threads take them from the front,
// so the chunks a request reads first are copied first, and a large chunk is copied by every
// thread at once, each byte once, straight from the tier into the caller's buffer. Chunks in
// unmapped tiers (the spill log) make one more piece, put first (device reads take longest):
// one Read per tier of all of them, in request order (the log's: at its queue depth).
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <utility>

#include "backends/store_impl.h"
#include "util/cpu.h"
#include "util/format.h"
#include "util/log.h"

namespace cxlkv {

using internal::PostCompletion;

namespace {

using Clock = std::chrono::steady_clock;
// Large enough that taking a piece (a mutex round trip) is noise next to copying it, small
// enough that two threads share a single 2 MiB chunk.
constexpr std::size_t kStripe = std::size_t{1} << 20;
// Piece::op of the piece that reads every chunk of a batch that is in an unmapped tier.
constexpr std::uint32_t kUnmappedPiece = 0xFFFFFFFF;

}  // namespace

struct Store::Impl::Batch {
  struct GetOp {
    Hit hit;
    std::byte* dst = nullptr;
    ChunkMeta* meta = nullptr;
    std::uint64_t user_data = 0;
    std::atomic<std::uint32_t> pieces_left{0};
    std::string key;  // kept in an unmapped tier: the tier checks it, promotion writes it
  };
  struct PutOp {
    std::string key;
    std::vector<std::span<const std::byte>> parts;
    ChunkMeta meta;
    std::uint64_t user_data = 0;
  };
  struct Piece {
    std::uint32_t op = 0;
    std::size_t offset = 0;
    std::size_t length = 0;
  };

  explicit Batch(CompletionQueue& queue) : cq(&queue) {}

  CompletionQueue* cq;
  Clock::time_point submitted = Clock::now();
  std::vector<GetOp> gets;  // sized once at submit: ops never move
  std::vector<PutOp> puts;
  std::vector<Piece> pieces;
  std::vector<std::uint32_t> unmapped;  // gets whose chunk is in an unmapped tier, in order
  // Prefetch of the batch's memory chunks: range_of_op[i] is op i's range in the stream.
  std::shared_ptr<Prefetcher::Stream> stream;
  std::vector<std::uint32_t> range_of_op;
  std::size_t next = 0;     // the next piece to hand out; guarded by Impl::work_mu
};

Status Store::SubmitGets(std::span<const GetRequest> requests, CompletionQueue& cq) {
  Impl& im = *impl_;
  auto batch = std::make_shared<Impl::Batch>(cq);
  batch->gets = std::vector<Impl::Batch::GetOp>(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const GetRequest& r = requests[i];
    Result<Impl::Hit> hit = im.PinForRead(r.key);
    if (!hit.ok()) {
      PostCompletion(cq, Completion{r.user_data, hit.status(), 0});
      continue;
    }
    if (r.dst.size() < hit->size) {
      im.Unpin(hit->id);
      PostCompletion(cq, Completion{r.user_data,
                                    Status::InvalidArgument(
                                        "buffer of " + FormatBytes(r.dst.size()) +
                                        " is smaller than the chunk of " +
                                        FormatBytes(hit->size) + " for key " + std::string(r.key)),
                                    0});
      continue;
    }
    Impl::Batch::GetOp& op = batch->gets[i];
    op.hit = *hit;
    op.dst = r.dst.data();
    op.meta = r.meta;
    op.user_data = r.user_data;
    if (hit->data == nullptr) {
      op.key.assign(r.key);
      batch->unmapped.push_back(static_cast<std::uint32_t>(i));
      continue;
    }
    std::uint32_t pieces = 0;
    for (std::size_t off = 0; off < hit->size; off += kStripe, ++pieces) {
      batch->pieces.push_back({static_cast<std::uint32_t>(i), off,
                               std::min(kStripe, hit->size - off)});
    }
    op.pieces_left.store(pieces, std::memory_order_relaxed);
  }
  if (!batch->unmapped.empty()) {
    batch->pieces.insert(batch->pieces.begin(), {kUnmappedPiece, 0, 0});
  }
  if (batch->pieces.empty()) return Status::Ok();
  if (im.prefetcher) {
    // The chunks in the order their first stripes will be taken: the pieces' order.
    std::vector<std::span<const std::byte>> ranges;
    batch->range_of_op.assign(batch->gets.size(), 0);
    for (const Impl::Batch::Piece& p : batch->pieces) {
      if (p.op == kUnmappedPiece || p.offset != 0) continue;
      const Impl::Batch::GetOp& op = batch->gets[p.op];
      batch->range_of_op[p.op] = static_cast<std::uint32_t>(ranges.size());
      ranges.emplace_back(op.hit.data, op.hit.size);
    }
    if (ranges.size() > 1) batch->stream = im.prefetcher->Announce(ranges);
  }
  if (!im.Enqueue(std::move(batch))) {
    return Status::Busy("the store is shutting down");  // not reached: ~Store joins first
  }
  return Status::Ok();
}

Status Store::SubmitPuts(std::span<const PutRequest> requests, CompletionQueue& cq) {
  Impl& im = *impl_;
  auto batch = std::make_shared<Impl::Batch>(cq);
  batch->puts.resize(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const PutRequest& r = requests[i];
    Impl::Batch::PutOp& op = batch->puts[i];
    op.key.assign(r.key);
    if (r.parts.empty()) {
      op.parts.push_back(r.bytes);
    } else {
      for (const iovec& part : r.parts) {
        op.parts.emplace_back(static_cast<const std::byte*>(part.iov_base), part.iov_len);
      }
    }
    op.meta = r.meta;
    op.user_data = r.user_data;
    batch->pieces.push_back({static_cast<std::uint32_t>(i), 0, 0});
  }
  if (batch->pieces.empty()) return Status::Ok();
  if (!im.Enqueue(std::move(batch))) return Status::Busy("the store is shutting down");
  return Status::Ok();
}

void Store::Impl::StartWorkers(unsigned count, const std::vector<int>& cpus) {
  for (unsigned i = 0; i < count; ++i) {
    const int cpu = cpus.empty() ? -1 : cpus[i % cpus.size()];
    workers.emplace_back([this, cpu, i] {
      NameThisThread("cxlkv-copy-" + std::to_string(i));
      if (cpu >= 0 && !PinThisThread(cpu)) {
        internal::LogF("cxlkv: cannot pin a copy thread to CPU %d; it runs unpinned", cpu);
      }
      WorkerLoop();
    });
  }
}

void Store::Impl::StopWorkers() {
  {
    internal::MutexLock lock(work_mu);
    work_stopping = true;
  }
  work_cv.SignalAll();
  for (std::thread& w : workers) w.join();
  workers.clear();
}

bool Store::Impl::Enqueue(std::shared_ptr<Batch> batch) {
  {
    internal::MutexLock lock(work_mu);
    if (work_stopping) return false;
    work.push_back(std::move(batch));
  }
  work_cv.SignalAll();
  return true;
}

void Store::Impl::WorkerLoop() {
  for (;;) {
    std::shared_ptr<Batch> batch;
    std::size_t piece = 0;
    {
      internal::MutexLock lock(work_mu);
      while (work.empty() && !work_stopping) work_cv.Wait(work_mu);
      if (work.empty()) return;  // stopping, and everything submitted is done
      batch = work.front();
      piece = batch->next++;
      if (batch->next == batch->pieces.size()) work.pop_front();
    }
    RunPiece(*batch, piece);
  }
}

void Store::Impl::RunPiece(Batch& batch, std::size_t index) {
  const Batch::Piece& piece = batch.pieces[index];
  if (!batch.puts.empty()) {
    Batch::PutOp& op = batch.puts[piece.op];
    Status s = PutParts(op.key, op.parts, op.meta);
    std::size_t size = 0;
    if (s.ok()) {
      for (auto part : op.parts) size += part.size();
    }
    PostCompletion(*batch.cq, Completion{op.user_data, std::move(s), size});
    return;
  }
  if (piece.op == kUnmappedPiece) {
    RunUnmappedReads(batch);
    return;
  }
  Batch::GetOp& op = batch.gets[piece.op];
  if (batch.stream && piece.offset == 0) batch.stream->Started(batch.range_of_op[piece.op]);
  std::memcpy(op.dst + piece.offset, op.hit.data + piece.offset, piece.length);
  if (op.pieces_left.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (op.meta != nullptr) *op.meta = op.hit.header->chunk_meta();
  Unpin(op.hit.id);
  FinishRead(op.hit);
  batch_get_latency.Record(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - batch.submitted)
          .count()));
  PostCompletion(*batch.cq, Completion{op.user_data, Status::Ok(), op.hit.size});
}

void Store::Impl::RunUnmappedReads(Batch& batch) {
  std::vector<UnmappedGet> gets(batch.unmapped.size());
  for (std::size_t j = 0; j < gets.size(); ++j) {
    Batch::GetOp& op = batch.gets[batch.unmapped[j]];
    gets[j].hit = &op.hit;
    gets[j].key = op.key;
    gets[j].dst = {op.dst, op.hit.size};
  }
  ReadUnmapped(gets);
  for (std::size_t j = 0; j < gets.size(); ++j) {
    Batch::GetOp& op = batch.gets[batch.unmapped[j]];
    if (gets[j].status.ok() && op.meta != nullptr) *op.meta = gets[j].meta;
    Unpin(op.hit.id);
    batch_get_latency.Record(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - batch.submitted)
            .count()));
    const std::size_t size = gets[j].status.ok() ? op.hit.size : 0;
    PostCompletion(*batch.cq, Completion{op.user_data, std::move(gets[j].status), size});
  }
}

}  // namespace cxlkv
