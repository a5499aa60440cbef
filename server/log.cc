#include "server/log.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace cxlkv::serve {
namespace {
// How long, at shutdown, the lines still queued may wait for the output.
constexpr int kShutdownGraceMs = 200;
}  // namespace

ServerLog::ServerLog(double lines_per_second, int fd)
    : fd_(fd),
      rate_(lines_per_second),
      stop_event_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      tokens_(std::max(lines_per_second, 1.0)),
      refilled_(Clock::now()) {
  writer_ = std::thread([this] { WriterMain(); });
}

ServerLog::~ServerLog() {
  {
    internal::MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.Signal();
  const std::uint64_t one = 1;
  // Without the eventfd (it failed to open) the writer's poll still times out at shutdown.
  if (stop_event_.get() >= 0 && ::write(stop_event_.get(), &one, sizeof(one)) < 0) {
  }
  writer_.join();
}

void ServerLog::Line(std::string line) {
  {
    internal::MutexLock lock(mu_);
    if (rate_ > 0) {
      const Clock::time_point now = Clock::now();
      const double elapsed = std::chrono::duration<double>(now - refilled_).count();
      tokens_ = std::min(std::max(rate_, 1.0), tokens_ + elapsed * rate_);
      refilled_ = now;
    }
    if (stop_ || queue_.size() >= kMaxQueued || (rate_ > 0 && tokens_ < 1)) {
      ++dropped_;
      return;
    }
    if (rate_ > 0) tokens_ -= 1;
    queue_.push_back("cxlkv serve: " + std::move(line) + "\n");
  }
  cv_.Signal();
}

std::uint64_t ServerLog::dropped() const {
  internal::MutexLock lock(mu_);
  return dropped_;
}

std::uint64_t ServerLog::written() const {
  internal::MutexLock lock(mu_);
  return written_;
}

void ServerLog::WriterMain() {
  internal::MutexLock lock(mu_);
  for (;;) {
    while (!stop_ && queue_.empty()) cv_.Wait(mu_);
    if (queue_.empty()) return;  // stopping, nothing left
    std::string text;
    if (dropped_ > reported_) {
      text = "cxlkv serve: " + std::to_string(dropped_ - reported_) +
             " log lines dropped (over the log rate, or the output is not keeping up)\n";
      reported_ = dropped_;
    }
    text += std::move(queue_.front());
    queue_.pop_front();
    const bool stopping = stop_;
    lock.Unlock();
    const bool ok = WriteAll(text, stopping);
    lock.Lock();
    if (ok) {
      ++written_;
    } else {
      // The output did not drain before the stop: this line and the queue are dropped.
      dropped_ += 1 + queue_.size();
      queue_.clear();
      return;
    }
  }
}

bool ServerLog::WriteAll(const std::string& text, bool stopping) {
  std::size_t done = 0;
  const auto give_up = Clock::now() + std::chrono::milliseconds(kShutdownGraceMs);
  while (done < text.size()) {
    pollfd fds[2] = {{fd_, POLLOUT, 0}, {stop_event_.get(), POLLIN, 0}};
    // While serving, wait for the output as long as it takes (only this thread waits); once
    // stopping, only for the grace.
    int timeout = -1;
    if (stopping || stop_event_.get() < 0) {
      timeout = static_cast<int>(std::max<std::int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(give_up - Clock::now()).count()));
    }
    const int n = ::poll(fds, stopping ? 1 : 2, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // a poll error, or the grace ran out
    if (!stopping && fds[1].revents != 0) {
      stopping = true;  // asked to stop while the output was full: only the grace is left
      continue;
    }
    if ((fds[0].revents & (POLLERR | POLLNVAL)) != 0) return false;
    // POLLOUT on a pipe means a page is free, so a line (< 4 KiB) goes in whole.
    const ssize_t k = ::write(fd_, text.data() + done, text.size() - done);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k <= 0) return false;
    done += static_cast<std::size_t>(k);
  }
  return true;
}

}  // namespace cxlkv::serve
