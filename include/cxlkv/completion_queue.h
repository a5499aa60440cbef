// CompletionQueue: where a Store reports the results of batched, asynchronous operations.
//
// The caller creates one queue (per client, per event loop), passes it to Store::SubmitGets
// or Store::SubmitPuts, then either polls it, blocks in Wait, or watches eventfd() with
// epoll/select/asyncio: the descriptor is readable exactly while completions are pending.
//
// Thread-safety: all member functions are thread-safe; any number of Store threads post while
// any number of callers poll. The queue must outlive every operation submitted with it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "cxlkv/status.h"

namespace cxlkv {

struct Completion {
  std::uint64_t user_data = 0;  // as given in the request
  Status status;                // Ok, or why this one operation failed
  std::size_t size = 0;         // a get: bytes copied into dst; a put: bytes stored
};

class CompletionQueue;
namespace internal {
void PostCompletion(CompletionQueue& queue, Completion completion);
}  // namespace internal

class CompletionQueue {
 public:
  // IOError when the eventfd cannot be created.
  static Result<std::unique_ptr<CompletionQueue>> Create();
  ~CompletionQueue();
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;

  // Moves up to out.size() completions into out, oldest first; returns how many. Never blocks.
  std::size_t Poll(std::span<Completion> out);
  // Like Poll, but first waits until at least min(min_count, out.size()) completions are
  // pending or the timeout passes; returns how many it moved (possibly fewer on timeout).
  std::size_t Wait(std::span<Completion> out, std::size_t min_count,
                   std::chrono::milliseconds timeout);
  std::size_t pending() const;  // completions posted and not yet taken
  // Non-blocking eventfd, readable while pending() > 0. Do not read it yourself: Poll keeps it
  // in step with the queue. Valid for the queue's lifetime.
  int eventfd() const;

 private:
  friend void internal::PostCompletion(CompletionQueue& queue, Completion completion);
  struct Impl;
  explicit CompletionQueue(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxlkv
