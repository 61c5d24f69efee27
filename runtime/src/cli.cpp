// The command line shared by every pipeline binary (CLI11):
//   run [--param name=value]... [--threads N] [--max-processes N] [--quiet] [--no-cache] [--rerun STEP]... [--gpu
//   auto|cuda|host]
//       [--experiment NAME] [--no-record] [--trace FILE.json] [--mlflow URI]
//   runs | show | compare | logs | lineage    the recorded runs (workspace_commands.hpp)
//   explain [--param name=value]... [--rerun STEP]...
//   graph [--format dot|mermaid]
//   describe
//   cache stats | cache gc --max-size SIZE --max-age DURATION
// Exit codes: 0 success, 1 a step failed, 2 bad command line or parameter,
// 130 interrupted by Ctrl-C.
#include <pthread.h>
#include <signal.h>
#include <atomic>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <oneapi/tbb/global_control.h>
#include <CLI/CLI.hpp>

#include <penstock/detail/runtime_api.hpp>
#include <penstock/version.hpp>

#include "cache_commands.hpp"
#include "cache_session.hpp"
#include "cache_store.hpp"
#include "chrome_trace.hpp"
#include "explain.hpp"
#include "graph_format.hpp"
#include "http_client.hpp"
#include "run_state.hpp"
#include "workspace_commands.hpp"
#include "workspace_store.hpp"

namespace penstock::detail::r1 {

namespace {

// Ctrl-C during `run`. SIGINT is blocked in the calling thread before the run
// starts (so in every thread the run creates) and a watcher thread takes it
// with sigwait: the flag is set by an ordinary thread, not a signal handler,
// and no step is interrupted in the middle of a system call. A second Ctrl-C
// ends the process at once.
class interrupt_watcher {
 public:
  interrupt_watcher() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals_, &previous_mask_);
    thread_ = std::thread([this] { watch(); });
  }
  interrupt_watcher(const interrupt_watcher&) = delete;
  interrupt_watcher& operator=(const interrupt_watcher&) = delete;
  ~interrupt_watcher() {
    done_.store(true);
    pthread_kill(thread_.native_handle(), SIGINT);  // wakes sigwait
    thread_.join();
    pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
  }

  [[nodiscard]] const std::atomic<bool>* flag() const noexcept { return &interrupted_; }

 private:
  void watch() {
    for (int count = 0;;) {
      int signal = 0;
      if (sigwait(&signals_, &signal) != 0 || done_.load()) return;
      if (++count == 1) {
        interrupted_.store(true);
        fmt::print(stderr, "\ninterrupted: letting running steps stop; press Ctrl-C again to quit at once\n");
      } else {
        std::_Exit(130);
      }
    }
  }

  sigset_t signals_{};
  sigset_t previous_mask_{};
  std::atomic<bool> interrupted_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

std::pair<std::string, std::string> split_param(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw CLI::ValidationError("--param", "expected name=value, got '" + text + "'");
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

// Every --rerun names a step of the pipeline (a command-line error, exit 2).
void check_step_names(const graph_description& graph, const std::vector<std::string>& names) {
  try {
    (void)forced_steps(graph, names);
  } catch (const std::invalid_argument& e) {
    throw CLI::ValidationError("--rerun", e.what());
  }
}

// Each parameter is given at most once: with two values, which one the run
// used would depend on the order of the command line, silently.
std::vector<std::pair<std::string, std::string>> split_params(const std::vector<std::string>& texts) {
  std::vector<std::pair<std::string, std::string>> params;
  std::map<std::string, std::string> seen;  // name -> value
  for (const auto& text : texts) {
    auto param = split_param(text);
    if (const auto [it, inserted] = seen.emplace(param.first, param.second); !inserted) {
      throw CLI::ValidationError(
          "--param", fmt::format("parameter '{0}' is given twice ({0}={1} and {0}={2}); give it once", param.first,
                                 it->second, param.second));
    }
    params.push_back(std::move(param));
  }
  return params;
}

// oneTBB runs at most max_allowed_parallelism threads at once: the cores it
// may use, unless the program raised or lowered it with a tbb::global_control.
// An arena asking for more gets no more, and oneTBB says so with a "TBB
// Warning" about workers; penstock clamps the request and says it once.
std::size_t allowed_threads(std::size_t requested) {
  const std::size_t allowed = tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
  if (requested <= allowed) return requested;
  fmt::print(stderr, "penstock: --threads {} is more than the {} threads oneTBB allows here; using {}\n", requested,
             allowed, allowed);
  return allowed;
}

struct run_arguments {
  std::vector<std::string> params;
  std::size_t threads = 0;
  std::size_t max_processes = 0;
  bool quiet = false;
  bool no_cache = false;
  std::vector<std::string> rerun;
  std::string gpu = "auto";
  std::string experiment = "Default";
  bool no_record = false;
  std::string trace;   // --trace FILE
  std::string mlflow;  // --mlflow URI
};

// With --quiet, no progress display is attached: the run's warnings still
// reach stderr through this.
class warning_printer final : public observer {
 public:
  void warning(std::string_view message) override { fmt::print(stderr, "penstock: {}\n", message); }
};

// The exit code in the run's record; a failure is a warning.
void record_exit_code(const run_options& options, const std::string& run_id, int code) {
  if (!options.tracking.enabled || run_id.empty()) return;
  try {
    workspace_store::open_for_writing(workspace_of(options))->set_exit_code(run_id, code);
  } catch (const std::exception& e) {
    fmt::print(stderr, "penstock: run {}: its exit code is not recorded: {}\n", run_id, e.what());
  }
}

run_options options_from(const graph_description& graph, const run_arguments& args) {
  run_options options;
  options.threads = args.threads;
  options.max_processes = args.max_processes;
  options.progress = args.quiet ? progress_mode::none : progress_mode::automatic;
  options.params = split_params(args.params);
  check_step_names(graph, args.rerun);
  options.cache.enabled = !args.no_cache;
  options.cache.rerun = args.rerun;
  options.tracking.enabled = !args.no_record;
  options.tracking.experiment = args.experiment;
  options.tracking.mlflow = args.mlflow;
  if (args.gpu == "host") options.gpu = gpu_backend::host;
  if (args.gpu == "cuda") options.gpu = gpu_backend::cuda;
  return options;
}

int explain_command(const graph_description& graph, const run_arguments& args) {
  const run_options options = options_from(graph, args);
  try {
    fmt::print("{}", format_explanation(explain(graph, options)));
  } catch (const param_error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const cache_error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}

int run_command(const graph_description& graph, const run_arguments& args) {
  const bool quiet = args.quiet;
  run_options options = options_from(graph, args);
  options.threads = allowed_threads(options.threads);
  if (!args.mlflow.empty()) {
    try {
      (void)parse_http_uri(args.mlflow);
    } catch (const std::invalid_argument& e) {
      fmt::print(stderr, "error: --mlflow: MLflow tracking URI {}\n", e.what());
      return 2;
    }
  }
  warning_printer warnings;
  if (quiet) options.observers.push_back(&warnings);
  run_outcome outcome;
  {
    interrupt_watcher watcher;
    options.stop = watcher.flag();
    try {
      outcome = execute(graph, options);
    } catch (const std::invalid_argument& e) {  // a bad parameter, or --gpu cuda without a device
      fmt::print(stderr, "error: {}\n", e.what());
      return 2;
    }
  }

  const run_report& report = outcome.report;
  const int code = report.interrupted ? 130 : report.ok() ? 0 : 1;
  record_exit_code(options, report.run_id, code);
  if (!args.trace.empty()) {
    try {
      write_chrome_trace(graph, report, args.trace);
    } catch (const std::exception& e) {
      fmt::print(stderr, "penstock: {}\n", e.what());  // the run's result stands
    }
  }
  // Reported cache misses (a corrupt or missing blob that was recomputed).
  for (const auto& step : report.steps)
    if (!step.cache_note.empty()) fmt::print(stderr, "warning: step '{}': {}\n", step.name, step.cache_note);
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
  if (!quiet && !report.mlflow_url.empty()) fmt::print(stderr, "in MLflow: {}\n", report.mlflow_url);
  return 0;
}

// CLI11 2.1.2 answers a word that is no subcommand (`frobnicate`) with "A
// subcommand is required", as if none were given: name it and the commands.
std::optional<CLI::ExtrasError> unknown_command(const CLI::App& app, const CLI::ParseError& e) {
  if (e.get_exit_code() == 0 || !app.get_subcommands().empty()) return std::nullopt;
  const std::vector<std::string> extra = app.remaining();
  if (extra.empty() || extra.front().starts_with('-')) return std::nullopt;
  std::string commands;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* sub) { return !sub->get_name().empty(); }))
    commands += (commands.empty() ? "" : ", ") + sub->get_name();
  return CLI::ExtrasError(fmt::format("'{}' is not a command; the commands are {}", extra.front(), commands),
                          CLI::ExitCodes::ExtrasError);
}

}  // namespace

int main(const graph_description& graph, int argc, const char* const* argv) {
  CLI::App app(fmt::format("pipeline '{}' (penstock {})", graph.name, PENSTOCK_VERSION_STRING));
  app.set_version_flag("--version", std::string("penstock ") + PENSTOCK_VERSION_STRING);
  app.require_subcommand(1);

  run_arguments args;
  auto* run =
      app.add_subcommand("run", "run the pipeline; steps whose inputs and code are unchanged come from the cache");
  run->add_option("-p,--param", args.params, "set a parameter, as name=value (repeatable)")->type_name("NAME=VALUE");
  run->add_option("-j,--threads", args.threads, "worker threads (default: one per core)")->check(CLI::Range(1, 4096));
  run->add_option("--max-processes", args.max_processes,
                  "command steps (ps::command) running at once (default: one per core)")
      ->check(CLI::Range(1, 65536));
  run->add_flag("-q,--quiet", args.quiet, "no progress or summary; outputs and errors only");
  run->add_flag("--no-cache", args.no_cache, "run every step; read and write nothing in the cache");
  run->add_option("--gpu", args.gpu,
                  "backend of GPU steps: auto (CUDA when a device is present), cuda, or host (Thrust on oneTBB)")
      ->check(CLI::IsMember({"auto", "cuda", "host"}))
      ->default_str("auto");
  run->add_option("--rerun", args.rerun, "run this step and every step that depends on it even if cached (repeatable)")
      ->type_name("STEP");
  run->add_option("-e,--experiment", args.experiment, "record the run in this experiment")
      ->type_name("NAME")
      ->capture_default_str();
  auto* no_record = run->add_flag("--no-record", args.no_record, "do not record the run in the workspace");
  run->add_option("--mlflow", args.mlflow,
                  "also send the recorded run to this MLflow tracking server (http://HOST:PORT); "
                  "one that cannot be reached is a warning")
      ->type_name("URI")
      ->excludes(no_record);
  run->add_option("--trace", args.trace, "write the run as a Chrome trace (Perfetto, chrome://tracing)")
      ->type_name("FILE.json");

  auto* explain_cmd =
      app.add_subcommand("explain", "say which steps a run would take from the cache, and why the others miss");
  explain_cmd->add_option("-p,--param", args.params, "set a parameter, as name=value (repeatable)")
      ->type_name("NAME=VALUE");
  explain_cmd->add_option("--rerun", args.rerun, "as for run")->type_name("STEP");

  std::string format = "dot";
  auto* graph_cmd = app.add_subcommand("graph", "print the pipeline's graph");
  graph_cmd->add_option("-f,--format", format, "dot or mermaid")
      ->check(CLI::IsMember({"dot", "mermaid"}))
      ->capture_default_str();

  auto* describe_cmd = app.add_subcommand("describe", "list the parameters and the steps with their types");
  const cache_commands cache_cmds = add_cache_commands(app);
  const workspace_commands workspace_cmds = add_workspace_commands(app);

  // CLI11's own codes (105, 106, 109...) fold into the documented 2; help
  // and --version stay 0.
  const auto parse_failed = [&app](const CLI::ParseError& e) { return app.exit(e) == 0 ? 0 : 2; };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (const auto unknown = unknown_command(app, e)) return parse_failed(*unknown);
    return parse_failed(e);
  }

  try {
    if (run->parsed()) return run_command(graph, args);
    if (explain_cmd->parsed()) return explain_command(graph, args);
  } catch (const CLI::ParseError& e) {
    return parse_failed(e);
  }
  if (cache_cmds.cache->parsed()) return run_cache_command(cache_cmds, graph.name);
  if (const auto code = run_workspace_command(workspace_cmds, workspace_of(run_options{}), std::cout, std::cerr))
    return *code;
  if (graph_cmd->parsed()) {
    fmt::print("{}", format == "dot" ? to_dot(graph) : to_mermaid(graph));
  } else if (describe_cmd->parsed()) {
    fmt::print("{}", describe(graph));
  }
  return 0;
}

}  // namespace penstock::detail::r1
