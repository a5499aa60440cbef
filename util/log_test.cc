#include "cxlkv/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "util/log.h"
#include "util/unique_fd.h"

namespace cxlkv {
namespace {

// Captures lines; restores the default sink when it goes.
struct Capture {
  std::mutex mu;
  std::vector<std::string> lines;
  Capture() {
    SetLogSink([this](std::string_view line) {
      std::lock_guard lock(mu);
      lines.emplace_back(line);
    });
  }
  ~Capture() { SetLogSink({}); }
};

// A warning from deep inside the library (a destructor with no caller to return a Status to)
// reaches the host's sink, as one line without its newline.
TEST(LogTest, ALibraryWarningGoesToTheSink) {
  Capture capture;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[1]);
  {
    UniqueFd owner(fds[0]);
    ::close(fds[0]);  // behind the owner's back: its close will fail with EBADF
  }
  std::lock_guard lock(capture.mu);
  ASSERT_EQ(capture.lines.size(), 1u);
  EXPECT_EQ(capture.lines[0], "cxlkv: close(" + std::to_string(fds[0]) +
                                  ") failed: Bad file descriptor");
}

TEST(LogTest, LongLinesAreCutAndTheDefaultSinkComesBack) {
  {
    Capture capture;
    internal::LogF("cxlkv: %s", std::string(5000, 'x').c_str());
    std::lock_guard lock(capture.mu);
    ASSERT_EQ(capture.lines.size(), 1u);
    EXPECT_EQ(capture.lines[0].size(), 1023u);
  }
  // Back on stderr: nothing reaches the old sink.
  testing::internal::CaptureStderr();
  internal::LogLine("cxlkv: to stderr");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "cxlkv: to stderr\n");
}

// Loggers on several threads while the sink is replaced over and over: every line reaches
// one sink or the other, whole, and no sink is called after it was replaced and released.
TEST(LogTest, ReplacingTheSinkWhileThreadsLog) {
  std::atomic<long> seen{0};
  std::atomic<bool> stop{false};
  auto make_sink = [&seen] {
    return [&seen](std::string_view line) {
      if (line.substr(0, 11) == "cxlkv: line") seen.fetch_add(1);
    };
  };
  SetLogSink(make_sink());
  constexpr int kThreads = 3, kLines = 2000;
  std::vector<std::thread> loggers;
  for (int t = 0; t < kThreads; ++t) {
    loggers.emplace_back([] {
      for (int i = 0; i < kLines; ++i) internal::LogF("cxlkv: line %d", i);
    });
  }
  std::thread swapper([&] {
    while (!stop.load()) SetLogSink(make_sink());
  });
  for (auto& t : loggers) t.join();
  stop.store(true);
  swapper.join();
  SetLogSink({});
  EXPECT_EQ(seen.load(), long{kThreads} * kLines);
}

}  // namespace
}  // namespace cxlkv
