// cxlkv: inspect the memory a machine offers for KV-cache tiers, run the demo, serve LMCache.
#include <CLI/CLI.hpp>

#include <vector>

#include "tools/cxlkv/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"cxlkv: tiers for LLM KV-cache chunks over DRAM, CXL memory, /dev/dax and files"};
  app.set_version_flag("--version", "cxlkv " CXLKV_VERSION);
  app.require_subcommand(1);
  const std::vector<cxlkv::cli::Command> commands = {
      cxlkv::cli::AddDevicesCommand(app),
      cxlkv::cli::AddDemoCommand(app),
      cxlkv::cli::AddBenchCommand(app),
      cxlkv::cli::AddServeCommand(app),
      cxlkv::cli::AddStatsCommand(app),
      cxlkv::cli::AddReplayCommand(app),
      cxlkv::cli::AddFormatCommand(app),
      cxlkv::cli::AddFsckCommand(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);  // prints help, the version, or the error; non-zero for errors
  }
  for (const cxlkv::cli::Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return cxlkv::cli::kExitUsage;  // unreachable: require_subcommand(1) saw to it
}
