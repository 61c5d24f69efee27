// The standalone `penstock` tool: the workspace's questions (runs, show,
// compare, logs, lineage) without a pipeline binary. It opens runs.db in
// --cache-dir (default: $PENSTOCK_HOME, else ./.penstock), or --workspace FILE.
#include <filesystem>
#include <iostream>
#include <string>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <penstock/version.hpp>

#include "cache_store.hpp"
#include "workspace_commands.hpp"
#include "workspace_store.hpp"

int main(int argc, char** argv) {
  using namespace penstock::detail::r1;
  CLI::App app(fmt::format("penstock {}: the runs recorded in a workspace", PENSTOCK_VERSION_STRING), "penstock");
  app.set_version_flag("--version", std::string("penstock ") + PENSTOCK_VERSION_STRING);
  app.require_subcommand(1);
  std::string cache_dir;
  app.add_option("-C,--cache-dir", cache_dir,
                 "the cache directory whose runs.db to open (default: $PENSTOCK_HOME, else .penstock)")
      ->type_name("DIR");
  const workspace_commands commands = add_workspace_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  const std::filesystem::path directory =
      cache_dir.empty() ? default_cache_directory() : std::filesystem::path(cache_dir);
  return run_workspace_command(commands, workspace_file(directory), std::cout, std::cerr).value_or(2);
}
