// execute: one run from start to report. Resolves the parameters, opens the
// cache session (or says why not), runs the executor, reads the outputs the
// caller asks for, and fills the run_report; output_slot hands values out.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <penstock/detail/code_fingerprints.hpp>
#include <penstock/detail/runtime_api.hpp>

#include "cache_session.hpp"
#include "cache_store.hpp"
#include "executor.hpp"
#include "file_values.hpp"
#include "gpu_runtime.hpp"
#include "mlflow_export.hpp"
#include "progress.hpp"
#include "run_observers.hpp"
#include "run_recorder.hpp"
#include "run_state.hpp"
#include "workspace_store.hpp"

namespace penstock::detail::r1 {

namespace {

// Removes a run's output directory unless a value still alive (an output
// whose file could not be stored) points into it.
void remove_unless_referenced(const graph_description& graph, run_state& state, const std::filesystem::path& base) {
  const std::string prefix = base.string() + "/";
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const auto& slot = graph.nodes[i].slot;
    for (std::size_t k = 0; k < slot.path_value_count; ++k) {
      const path_value* value = slot.path_value(state.node_slots[i], k);
      if (value == nullptr) break;
      std::error_code ec;
      const std::string where = std::filesystem::absolute(value->raw_path(), ec).string();
      if (where.compare(0, prefix.size(), prefix) == 0) return;
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(base, ec);
  std::filesystem::remove(base.parent_path(), ec);  // work/, when no other run is using it
}

// Below this much free space on the cache's file system, a run's step files
// are written elsewhere: a full cache disk must not fail the steps that
// write files (a command's outputs, ctx.output_path()).
constexpr std::uintmax_t min_free_for_step_files = std::uintmax_t{64} << 20;

// Where a run's step files go: <work>/<name>, unless the file system of
// `work` is nearly full and the system's temporary directory is on another
// one; then <tmp>/penstock-work-<uid>/<name>, with a warning. Either way
// the cache stores a copy of what it keeps, so the place does not change a
// key or a result.
std::filesystem::path step_files_base(const std::filesystem::path& work, const std::string& name, run_observers& told) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path existing = work;  // work/ itself may not exist yet
  while (!existing.empty() && !fs::exists(existing, ec)) existing = existing.parent_path();
  const fs::space_info space = fs::space(existing.empty() ? fs::path(".") : existing, ec);
  if (ec || space.available >= min_free_for_step_files) return work / name;
  const fs::path tmp = fs::temp_directory_path(ec);
  struct stat cache_fs {};
  struct stat tmp_fs {};
  if (ec || ::stat(existing.c_str(), &cache_fs) != 0 || ::stat(tmp.c_str(), &tmp_fs) != 0 ||
      cache_fs.st_dev == tmp_fs.st_dev)
    return work / name;
  const fs::path elsewhere = tmp / fmt::format("penstock-work-{}", ::getuid()) / name;
  told.warning(fmt::format("{} has {:.1f} MiB free: this run's step files are written in {} instead", existing.string(),
                           static_cast<double>(space.available) / (1 << 20), elsewhere.string()));
  return elsewhere;
}

}  // namespace

namespace {

// Each parameter's value as the run uses it, formatted by its type.
std::vector<std::pair<std::string, std::string>> param_values(const graph_description& graph, const run_state& state) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(graph.params.size());
  for (std::size_t i = 0; i < graph.params.size(); ++i) {
    const auto& p = graph.params[i];
    out.emplace_back(std::string(p.name), p.slot.format != nullptr ? p.slot.format(state.param_slots[i]) : "");
  }
  return out;
}

// tracking_options::mlflow: the recorded run, read back from its workspace, to MLflow.
void send_to_mlflow(const run_options& options, run_report& report, const run_recorder* recorder, run_observers& told) {
  const std::string& uri = options.tracking.mlflow;
  if (recorder == nullptr || !recorder->recorded()) {
    told.warning(fmt::format("run {} not sent to MLflow at {}: {}", report.run_id, uri,
                             recorder == nullptr ? "tracking is off (MLflow is sent the recorded run)"
                                                 : "it could not be recorded (see above)"));
    return;
  }
  try {
    const auto store = workspace_store::open_for_reading(workspace_of(options));
    const auto run = store->find_run(report.run_id);
    if (!run) throw mlflow_error("the run is not in its workspace");
    const mlflow_sent sent = send_to_mlflow(*store, *run, uri);
    report.mlflow_url = sent.url;
    for (const auto& note : sent.notes) told.warning(fmt::format("MLflow: {}", note));
  } catch (const std::exception& e) {
    told.warning(fmt::format("run {} not sent to MLflow: {} (send it later: export-mlflow {} {})", report.run_id,
                             e.what(), report.run_id, uri));
  }
}

}  // namespace

run_outcome execute(const graph_description& graph, const run_options& options, const schedule* plan) {
  std::shared_ptr<const schedule> derived;
  if (plan == nullptr) plan = (derived = make_schedule(graph)).get();
  if (plan->inputs.size() != graph.nodes.size()) {
    throw std::invalid_argument(fmt::format("pipeline '{}': its schedule is for {} steps, the graph has {}", graph.name,
                                            plan->inputs.size(), graph.nodes.size()));
  }
  std::unique_ptr<gpu_runtime> gpu;
  if (std::any_of(graph.nodes.begin(), graph.nodes.end(),
                  [](const node_description& n) { return n.options.where == placement::gpu; })) {
    gpu = make_gpu_runtime(options.gpu, graph.nodes.size());
  }
  auto state = std::make_shared<run_state>(graph, std::move(gpu));
  resolve_params(graph, *state, options);

  const auto start = clock::now();
  const auto started_at = std::chrono::system_clock::now();
  // Who is told of the run: the progress display, the record, the caller's.
  run_observers told;
  std::optional<progress> shown;
  if (options.progress != progress_mode::none) told.attach(&shown.emplace(graph, options.progress, stderr));
  std::optional<run_recorder> recorder;
  if (options.tracking.enabled)
    told.attach(&recorder.emplace(workspace_of(options), options.tracking, told, *plan), false);
  for (observer* o : options.observers) told.attach(o);
  // A run id when anything will name the run: the cache's record, the workspace's, an observer.
  const bool named = options.cache.enabled || told.any();
  const std::string run_id = named ? new_run_id() : std::string();
  std::vector<std::pair<std::string, std::string>> params;
  if (told.any()) {
    params = param_values(graph, *state);
    told.run_started({.graph = graph,
                      .run_id = run_id,
                      .experiment = options.tracking.experiment,
                      .params = params,
                      .started = started_at});
  }
  for (auto& refused : refused_source_fingerprints()) told.warning(std::move(refused));

  std::unique_ptr<cache_session> cache;
  std::string cache_note;
  if (options.cache.enabled) {
    try {
      // On the run's arena: the session stats and hashes the commands' sources in parallel.
      arena_for(options.threads).execute([&] {
        cache = std::make_unique<cache_session>(graph, *state, options.cache, run_id, options.stop);
      });
    } catch (const cache_error& e) {
      // Nothing is lost: the run goes on without the cache, and says so.
      cache_note = fmt::format("the cache could not be used, every step runs: {}", e.what());
      told.warning(cache_note);
    }
  }
  // What the store could not give back (a lease, an in-use mark) is one of
  // the run's warnings while the run lasts.
  if (cache) cache->store().set_warning_sink([&told](std::string message) { told.warning(std::move(message)); });
  if (cache && cache->store().read_only()) {
    cache_note = fmt::format("the cache at {} is read-only ({}): hits are served, nothing is stored",
                             cache->store().directory().string(), cache->store().read_only_reason());
    told.warning(cache_note);
  }
  if (!cache) seal_file_params(graph, *state, nullptr);  // with the cache, the session hashed them
  // Files the steps write go under the cache directory, per run; with the
  // cache, a stored file is handed on as its copy in the cache, and the
  // run's directory is removed at the end when no output still points into it.
  // Where is decided now (elsewhere when the cache's disk is nearly full: see
  // step_files_base); the run's own name (a random id when the run has none)
  // when a step first asks for a directory: most runs never do.
  const std::filesystem::path work = (cache ? cache->store().directory() : cache_directory_of(options)) / "work";
  output_directories outputs(
      [&run_id, &told, work] { return step_files_base(work, run_id.empty() ? new_run_id() : run_id, told); });
  executor exec(graph, *plan, *state, options, told, cache.get(), &outputs);
  exec.run(options.threads);
  if (shown) shown->close();
  // The caller asks for the outputs: the only cached values read in a run
  // whose steps all hit.
  std::vector<std::uint32_t> unreadable;
  if (cache != nullptr)
    for (auto o : graph.outputs)
      if (cache->lazy(o) && !exec.materialize(o)) unreadable.push_back(o);

  run_outcome outcome{std::move(state), {}};
  outcome.report.pipeline = graph.name;
  outcome.report.steps = exec.take_reports();
  outcome.report.wall = clock::now() - start;
  outcome.report.started = started_at;
  outcome.report.run_id = run_id;
  outcome.report.experiment = options.tracking.enabled ? options.tracking.experiment : std::string();
  outcome.report.params = std::move(params);
  outcome.report.interrupted = options.stop != nullptr && options.stop->load();
  if (cache != nullptr) {
    for (std::uint32_t i = 0; i < graph.nodes.size(); ++i) {
      auto& step = outcome.report.steps[i];
      step.output = cache->output_digest(i);
      // Not a hit after all: its value was computed (the summary and the run
      // record count it as computed).
      if (cache->recomputed(i)) {
        step.cache_hit = false;
        step.attempts = std::max<std::uint32_t>(step.attempts, 1);
      }
      if (cache->note(i).empty()) continue;
      step.cache_note += (step.cache_note.empty() ? "" : "; ") + cache->note(i);
    }
  }
  for (auto o : unreadable) {
    auto& r = outcome.report.steps[o];
    r.status = step_status::failed;
    r.error = "its cached output could not be read nor recomputed";
  }
  outcome.report.cache_note = std::move(cache_note);
  if (outcome.state->gpu != nullptr) {
    outcome.report.gpu = outcome.state->gpu->backend();
    outcome.report.gpu_host_synchronizations = outcome.state->gpu->host_synchronizations();
    const auto copies = outcome.state->gpu->copies();
    outcome.report.gpu_copies_to_device = copies.to_device;
    outcome.report.gpu_copies_to_host = copies.to_host;
  }
  if (cache != nullptr) {
    if (auto warning = cache->finish(outcome.report)) told.warning(std::move(*warning));
  }
  // A value that was released after its last consumer is not handed out:
  // output_slot() must return null for it, not an empty optional.
  for (std::size_t i = 0; i < graph.nodes.size(); ++i)
    outcome.state->succeeded[i] = outcome.report.steps[i].status == step_status::succeeded &&
                                  graph.nodes[i].slot.has_value(outcome.state->node_slots[i]);
  if (cache != nullptr && outputs.used()) remove_unless_referenced(graph, *outcome.state, outputs.base());
  // The record's last write, then everyone else's end of the run, with
  // every warning the run gave.
  if (recorder) recorder->finish(outcome.report, !options.tracking.write_behind || !options.tracking.mlflow.empty());
  if (!options.tracking.mlflow.empty()) send_to_mlflow(options, outcome.report, recorder ? &*recorder : nullptr, told);
  if (cache != nullptr)
    cache->store().set_warning_sink(nullptr);  // later ones (leases given back as the session ends) to stderr
  outcome.report.warnings = told.take_warnings();
  if (told.any()) told.run_finished(outcome.report);
  return outcome;
}

const void* output_slot(const run_state& state, std::size_t index) noexcept {
  if (index >= state.node_slots.size() || !state.succeeded[index]) return nullptr;
  return state.node_slots[index];
}

}  // namespace penstock::detail::r1
