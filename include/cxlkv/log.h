// Where the library's warnings go.
//
// cxlkv reports failures through Status values; what it prints is only what has no caller to
// return to: a failed munmap or close in a destructor, a spill log falling back to buffered
// I/O, a background demotion that dropped a chunk, a copy thread that could not be pinned.
// By default each such line goes to stderr. A host process (a cache engine, a server with a
// logger of its own) routes them with SetLogSink.
//
// Thread-safety: SetLogSink may be called at any time from any thread. The sink may be called
// from any of the library's threads, several at once, and must not call SetLogSink itself.
// A line logged while SetLogSink replaces the sink goes to the old sink or the new one.
#pragma once

#include <functional>
#include <string_view>

namespace cxlkv {

// One line of text, without a trailing newline. Lines start with "cxlkv" and the part that
// wrote them ("cxlkv store: ...", "cxlkv: munmap(...) failed: ...").
using LogSink = std::function<void(std::string_view line)>;

// Routes every line the library logs from now on to `sink`; an empty sink restores the
// default (the line and a newline written to stderr).
void SetLogSink(LogSink sink);

}  // namespace cxlkv
