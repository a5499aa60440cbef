// CompletionQueue: a deque under a mutex, and an eventfd kept readable exactly while the deque
// is non-empty (written on the first post into an empty queue, drained by the Poll that empties
// it, both under the mutex), so an event loop never sees a stale or missing wakeup.
#include "util/log.h"
#include "cxlkv/completion_queue.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv {

struct CompletionQueue::Impl {
  ~Impl() {
    if (fd >= 0) ::close(fd);
  }
  int fd = -1;
  mutable internal::Mutex mu;
  internal::CondVar cv;  // a completion was posted
  std::deque<Completion> done GUARDED_BY(mu);

  // An eventfd write of 1 or read of the counter fails only on misuse (a closed or foreign
  // descriptor): that would break the readiness contract, so it aborts. Under mu, so that the
  // eventfd's readiness changes with the deque.
  void Signal() REQUIRES(mu) {
    const std::uint64_t one = 1;
    if (::write(fd, &one, sizeof(one)) != sizeof(one)) Die("write");
  }
  void Clear() REQUIRES(mu) {
    std::uint64_t value;
    if (::read(fd, &value, sizeof(value)) != sizeof(value) && errno != EAGAIN) Die("read");
  }
  [[noreturn]] static void Die(const char* what) {
    internal::LogF("cxlkv completion queue: eventfd %s failed: errno %d", what, errno);
    std::abort();
  }
};

CompletionQueue::CompletionQueue(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CompletionQueue::~CompletionQueue() = default;

Result<std::unique_ptr<CompletionQueue>> CompletionQueue::Create() {
  auto impl = std::make_unique<Impl>();
  impl->fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->fd < 0) return Status::FromErrno("creating the completion queue's eventfd", errno);
  return std::unique_ptr<CompletionQueue>(new CompletionQueue(std::move(impl)));
}

std::size_t CompletionQueue::Poll(std::span<Completion> out) {
  Impl& im = *impl_;
  internal::MutexLock lock(im.mu);
  std::size_t n = 0;
  while (n < out.size() && !im.done.empty()) {
    out[n++] = std::move(im.done.front());
    im.done.pop_front();
  }
  if (n > 0 && im.done.empty()) im.Clear();
  return n;
}

std::size_t CompletionQueue::Wait(std::span<Completion> out, std::size_t min_count,
                                  std::chrono::milliseconds timeout) {
  Impl& im = *impl_;
  {
    internal::MutexLock lock(im.mu);
    const std::size_t want = std::min(min_count, out.size());
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (im.done.size() < want && im.cv.WaitUntil(im.mu, deadline)) {
    }
  }
  return Poll(out);
}

std::size_t CompletionQueue::pending() const {
  internal::MutexLock lock(impl_->mu);
  return impl_->done.size();
}

int CompletionQueue::eventfd() const { return impl_->fd; }

namespace internal {

void PostCompletion(CompletionQueue& queue, Completion completion) {
  CompletionQueue::Impl& im = *queue.impl_;
  // Notified under the mutex: once a waiter has taken the last completion it may destroy the
  // queue, so the poster must not touch it after the unlock.
  internal::MutexLock lock(im.mu);
  if (im.done.empty()) im.Signal();
  im.done.push_back(std::move(completion));
  im.cv.SignalAll();
}

}  // namespace internal
}  // namespace cxlkv
