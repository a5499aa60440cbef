#include "util/log.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <string>

#include "cxlkv/log.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv {
namespace {

// The sink, replaced whole: a logger copies the pointer under the mutex and calls the sink
// outside it, so a slow sink never holds up SetLogSink or other loggers, and a sink being
// replaced stays alive until its last call returns.
struct SinkState {
  internal::Mutex mu;
  std::shared_ptr<const LogSink> sink GUARDED_BY(mu);  // null: stderr
};
SinkState& Sink() {
  static SinkState state;
  return state;
}

}  // namespace

void SetLogSink(LogSink sink) {
  std::shared_ptr<const LogSink> next;
  if (sink) next = std::make_shared<const LogSink>(std::move(sink));
  SinkState& state = Sink();
  internal::MutexLock lock(state.mu);
  state.sink.swap(next);
}  // the old sink goes here, or with its last caller

namespace internal {

void LogLine(std::string_view line) {
  std::shared_ptr<const LogSink> sink;
  {
    SinkState& state = Sink();
    internal::MutexLock lock(state.mu);
    sink = state.sink;
  }
  if (sink != nullptr) {
    (*sink)(line);
    return;
  }
  // One fwrite of line and newline, so that lines of concurrent threads do not interleave.
  std::string out(line);
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stderr);
}

void LogF(const char* format, ...) {
  char buf[1024];
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  if (n < 0) {
    LogLine(std::string("cxlkv: a log line could not be formatted: ") + format);
    return;
  }
  LogLine(std::string_view(buf, std::min(static_cast<std::size_t>(n), sizeof(buf) - 1)));
}

}  // namespace internal
}  // namespace cxlkv
