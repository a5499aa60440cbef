// The one place the library writes warnings: every line goes to the sink set with SetLogSink
// (include/cxlkv/log.h), stderr by default.
//
// Thread-safety: LogLine and LogF may be called from any thread, concurrently.
#pragma once

#include <string_view>

namespace cxlkv::internal {

// Sends one line (no trailing newline) to the current sink.
void LogLine(std::string_view line);

// printf-style LogLine. A line longer than 1 KiB is cut there.
void LogF(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace cxlkv::internal
