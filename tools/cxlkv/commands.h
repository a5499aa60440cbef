// The subcommands of the `cxlkv` tool. Each lives in its own file and registers itself on the
// root CLI11 app; main() parses and runs the one that was chosen.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

namespace CLI {
class App;
}

namespace cxlkv::cli {

// Exit statuses shared by all commands.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the command ran and found a problem (a bad checksum)
inline constexpr int kExitUsage = 2;    // bad options or an environment it cannot start in

// Prints "cxlkv COMMAND: MESSAGE" to stderr and returns kExitUsage.
inline int UsageError(const char* command, const std::string& message) {
  std::fprintf(stderr, "cxlkv %s: %s\n", command, message.c_str());
  return kExitUsage;
}

// A registered subcommand: `run` is called after parsing, when `app` was the one chosen, and
// returns the process exit status. The options it parses live inside `run`'s closure.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command AddDevicesCommand(CLI::App& root);  // devices_command.cc
Command AddDemoCommand(CLI::App& root);     // demo_command.cc
Command AddBenchCommand(CLI::App& root);    // bench_command.cc: `bench wss`
Command AddServeCommand(CLI::App& root);    // serve_command.cc
Command AddStatsCommand(CLI::App& root);    // stats_command.cc
Command AddReplayCommand(CLI::App& root);   // replay_command.cc
Command AddFormatCommand(CLI::App& root);   // pool_command.cc
Command AddFsckCommand(CLI::App& root);     // pool_command.cc

}  // namespace cxlkv::cli
