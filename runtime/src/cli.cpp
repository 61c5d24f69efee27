// The command line shared by every pipeline binary (CLI11):
//   run [--param name=value]... [--threads N] [--quiet]
//   graph [--format dot|mermaid]
//   describe
// Exit codes: 0 success, 1 a step failed, 2 bad command line or parameter,
// 130 interrupted by Ctrl-C.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <penstock/detail/runtime_api.hpp>
#include <penstock/version.hpp>

#include "graph_format.hpp"
#include "run_state.hpp"

namespace penstock::detail::r1 {

namespace {

std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the Ctrl-C handler needs a lock-free flag");

extern "C" void on_interrupt(int) {
  interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

std::pair<std::string, std::string> split_param(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw CLI::ValidationError("--param", "expected name=value, got '" + text + "'");
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

int run_command(const graph_description& graph, const std::vector<std::string>& params, std::size_t threads,
                bool quiet) {
  run_options options;
  options.threads = threads;
  options.progress = quiet ? progress_mode::none : progress_mode::automatic;
  for (const auto& p : params) options.params.push_back(split_param(p));
  options.stop = &interrupted;

  interrupted.store(false);
  auto previous = std::signal(SIGINT, on_interrupt);
  run_outcome outcome;
  try {
    outcome = execute(graph, options);
  } catch (const param_error& e) {
    std::signal(SIGINT, previous);
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  std::signal(SIGINT, previous);

  const run_report& report = outcome.report;
  for (auto index : graph.outputs) {
    if (const void* slot = output_slot(*outcome.state, index)) {
      const std::string text = graph.nodes[index].slot.format(slot);
      fmt::print("{} = {}\n", graph.nodes[index].name,
                 text.empty() ? "<" + std::string(graph.nodes[index].output_type) + ">" : text);
    }
  }
  if (report.interrupted) {
    fmt::print(stderr, "interrupted: {}\n", report.summary());
    return 130;
  }
  if (!report.ok()) {
    fmt::print(stderr, "{}\n", report.summary());
    return 1;
  }
  if (!quiet) fmt::print(stderr, "{}\n", report.summary());
  return 0;
}

}  // namespace

int main(const graph_description& graph, int argc, const char* const* argv) {
  CLI::App app(fmt::format("pipeline '{}' (penstock {})", graph.name, PENSTOCK_VERSION_STRING));
  app.set_version_flag("--version", std::string("penstock ") + PENSTOCK_VERSION_STRING);
  app.require_subcommand(1);

  std::vector<std::string> params;
  std::size_t threads = 0;
  bool quiet = false;
  auto* run = app.add_subcommand("run", "run the pipeline");
  run->add_option("-p,--param", params, "set a parameter, as name=value (repeatable)")->type_name("NAME=VALUE");
  run->add_option("-j,--threads", threads, "worker threads (default: one per core)")->check(CLI::Range(1, 4096));
  run->add_flag("-q,--quiet", quiet, "no progress or summary; outputs and errors only");

  std::string format = "dot";
  auto* graph_cmd = app.add_subcommand("graph", "print the pipeline's graph");
  graph_cmd->add_option("-f,--format", format, "dot or mermaid")
      ->check(CLI::IsMember({"dot", "mermaid"}))
      ->capture_default_str();

  auto* describe_cmd = app.add_subcommand("describe", "list the parameters and the steps with their types");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (run->parsed()) return run_command(graph, params, threads, quiet);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (graph_cmd->parsed()) {
    fmt::print("{}", format == "dot" ? to_dot(graph) : to_mermaid(graph));
  } else if (describe_cmd->parsed()) {
    fmt::print("{}", describe(graph));
  }
  return 0;
}

}  // namespace penstock::detail::r1
