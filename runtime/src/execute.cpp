// execute: one run from start to report. Resolves the parameters, opens the
// cache session (or says why not), runs the executor, reads the outputs the
// caller asks for, and fills the run_report; output_slot hands values out.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include <penstock/detail/runtime_api.hpp>

#include "cache_session.hpp"
#include "cache_store.hpp"
#include "executor.hpp"
#include "file_values.hpp"
#include "gpu_runtime.hpp"
#include "progress.hpp"
#include "run_state.hpp"

namespace penstock::detail::r1 {

namespace {

// Removes a run's output directory unless a value still alive (an output
// whose file could not be stored) points into it.
void remove_unless_referenced(const graph_description& graph, run_state& state, const std::filesystem::path& base) {
  const std::string prefix = base.string() + "/";
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const auto& slot = graph.nodes[i].slot;
    if (slot.path_value == nullptr) continue;
    const path_value* value = slot.path_value(state.node_slots[i]);
    if (value == nullptr) continue;
    std::error_code ec;
    const std::string where = std::filesystem::absolute(value->raw_path(), ec).string();
    if (where.compare(0, prefix.size(), prefix) == 0) return;
  }
  std::error_code ec;
  std::filesystem::remove_all(base, ec);
  std::filesystem::remove(base.parent_path(), ec);  // work/, when no other run is using it
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
  std::unique_ptr<cache_session> cache;
  std::string cache_note;
  if (options.cache.enabled) {
    try {
      cache = std::make_unique<cache_session>(graph, *state, options.cache, options.stop);
    } catch (const cache_error& e) {
      // Nothing is lost: the run goes on without the cache, and says so.
      cache_note = fmt::format("the cache could not be used, every step runs: {}", e.what());
      fmt::print(stderr, "penstock: {}\n", cache_note);
    }
  }
  if (cache && cache->store().read_only()) {
    cache_note = fmt::format("the cache at {} is read-only ({}): hits are served, nothing is stored",
                             cache->store().directory().string(), cache->store().read_only_reason());
    fmt::print(stderr, "penstock: {}\n", cache_note);
  }
  if (!cache) seal_file_params(graph, *state, nullptr);  // with the cache, the session hashed them
  // Files the steps write go under the cache directory, per run; with the
  // cache, a stored file is handed on as its copy in the cache, and the
  // run's directory is removed at the end when no output still points into it.
  // Where is decided now; the run's own name (a random id without the
  // cache) when a step first asks for a directory: most runs never do.
  const std::filesystem::path work =
      (cache                             ? cache->store().directory()
       : options.cache.directory.empty() ? default_cache_directory()
                                         : std::filesystem::path(options.cache.directory)) /
      "work";
  output_directories outputs([&cache, work] { return work / (cache ? cache->run_id() : new_run_id()); });
  progress shown(graph.name, graph.nodes.size(), options.progress, stderr);
  executor exec(graph, *plan, *state, options, shown, cache.get(), &outputs);
  exec.run(options.threads);
  shown.close();
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
  outcome.report.interrupted = options.stop != nullptr && options.stop->load();
  if (cache != nullptr) {
    for (std::uint32_t i = 0; i < graph.nodes.size(); ++i) {
      auto& step = outcome.report.steps[i];
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
    outcome.report.run_id = cache->run_id();
    cache->finish(outcome.report);
  }
  // A value that was released after its last consumer is not handed out:
  // output_slot() must return null for it, not an empty optional.
  for (std::size_t i = 0; i < graph.nodes.size(); ++i)
    outcome.state->succeeded[i] = outcome.report.steps[i].status == step_status::succeeded &&
                                  graph.nodes[i].slot.has_value(outcome.state->node_slots[i]);
  if (cache != nullptr && outputs.used()) remove_unless_referenced(graph, *outcome.state, outputs.base());
  return outcome;
}

const void* output_slot(const run_state& state, std::size_t index) noexcept {
  if (index >= state.node_slots.size() || !state.succeeded[index]) return nullptr;
  return state.node_slots[index];
}

}  // namespace penstock::detail::r1
