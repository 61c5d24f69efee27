// The workspace commands of the shared command line and of the standalone
// `penstock` tool: questions about the recorded runs.
//   runs [--experiment NAME] [--status STATUS] [--pipeline NAME] [--param NAME=VALUE]... [--limit N]
//   show RUN [--plot METRIC --out FILE.svg] [--html FILE.html]
//                                 the run, its parameters, steps and metric summary; or a plot of one
//                                 metric; or the run as one self-contained HTML page
//   compare RUN RUN... [--all] [--plot METRIC --out FILE.svg]
//                                 parameters and final metrics side by side (only those that differ);
//                                 or one metric of each run in one plot
//   logs RUN [STEP]               the lines its steps logged
//   lineage RUN STEP|DIGEST       who produced a value and who read it, across runs
//   export-mlflow RUN URI [--replace]
//                                 send the run to an MLflow tracking server (mlflow_export.hpp)
// Each takes --json and --workspace FILE; RUN is an id, a unique prefix of
// one, or `latest`. Private to the runtime.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace penstock::detail::r1 {

struct workspace_arguments {
  std::string workspace;  // empty: the default
  bool json = false;
  std::string experiment;
  std::string status;
  std::string pipeline;
  std::vector<std::string> params;
  std::size_t limit = 20;
  std::string run;                // show, logs, lineage
  std::vector<std::string> runs;  // compare
  std::string target;             // logs: a step; lineage: a step or a digest prefix; export-mlflow: the URI
  bool all = false;               // compare --all; export-mlflow --replace
  std::string plot;               // show, compare: the metric to draw
  std::string out;                // where the plot goes
  std::string html;               // show: where the page goes
};

struct workspace_commands {
  CLI::App* runs = nullptr;
  CLI::App* show = nullptr;
  CLI::App* compare = nullptr;
  CLI::App* logs = nullptr;
  CLI::App* lineage = nullptr;
  CLI::App* export_mlflow = nullptr;
  // CLI11 keeps references to bound variables: they live here, shared.
  std::shared_ptr<workspace_arguments> args;
};

[[nodiscard]] workspace_commands add_workspace_commands(CLI::App& app);

// Runs the parsed workspace command, if one was parsed, on its --workspace
// or `default_workspace`. Exit codes: 0 answered; 1 no such run or step, or
// the workspace cannot be read, or MLflow did not take the run (a message
// on `err`); 2 a bad argument.
[[nodiscard]] std::optional<int> run_workspace_command(const workspace_commands& commands,
                                                       const std::filesystem::path& default_workspace,
                                                       std::ostream& out, std::ostream& err);

}  // namespace penstock::detail::r1
