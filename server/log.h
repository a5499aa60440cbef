// ServerLog: the server's log lines, written to stderr by a thread of their own, so that no
// event loop ever waits for the output: with stderr on a pipe nobody reads, serving goes on.
//
// Lines are rate-limited (a token bucket refilled at `lines_per_second`, holding as many) and
// queued (at most kMaxQueued); a line over the rate or beyond the queue is dropped and
// counted. The writer says how many were dropped in a line of its own before the next line it
// writes; dropped() feeds the metrics. On destruction the writer gives the lines still queued
// a short grace to be written, then drops them (an unread pipe never stalls a shutdown).
//
// Thread-safety: every member function is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>

#include "util/mutex.h"
#include "util/thread_annotations.h"
#include "util/unique_fd.h"

namespace cxlkv::serve {

class ServerLog {
 public:
  static constexpr std::size_t kMaxQueued = 1024;

  // Writes to fd (not owned; stderr by default), prefixing each line with "cxlkv serve: ".
  // lines_per_second <= 0: no rate limit (the queue still bounds what waits).
  explicit ServerLog(double lines_per_second, int fd = 2);
  ~ServerLog();
  ServerLog(const ServerLog&) = delete;
  ServerLog& operator=(const ServerLog&) = delete;

  // Queues one line (no newline) unless over the rate or the queue is full. Never blocks on
  // the output; takes a mutex held only for a queue push.
  void Line(std::string line);

  std::uint64_t dropped() const;  // lines dropped so far
  std::uint64_t written() const;  // lines written so far

 private:
  void WriterMain() EXCLUDES(mu_);
  // Writes all of text unless the stop event fires first (or, stopping, the output is not
  // writable within the grace); false when it gave up.
  bool WriteAll(const std::string& text, bool stopping);

  using Clock = std::chrono::steady_clock;
  const int fd_;
  const double rate_;
  UniqueFd stop_event_;  // eventfd: wakes a writer waiting for the output to drain

  mutable internal::Mutex mu_;
  internal::CondVar cv_;  // the queue or stop_ changed
  std::deque<std::string> queue_ GUARDED_BY(mu_);
  double tokens_ GUARDED_BY(mu_);
  Clock::time_point refilled_ GUARDED_BY(mu_);
  std::uint64_t dropped_ GUARDED_BY(mu_) = 0;
  std::uint64_t reported_ GUARDED_BY(mu_) = 0;  // dropped_ already announced in a line
  std::uint64_t written_ GUARDED_BY(mu_) = 0;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread writer_;
};

}  // namespace cxlkv::serve
