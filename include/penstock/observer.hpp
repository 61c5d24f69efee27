// ps::observer: what a run tells whoever watches it (the progress display,
// the workspace's run record, a user's own). Attach one with
// run_options::observers; with none attached a run makes no calls at all.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace penstock {

struct graph_description;
struct step_report;
struct run_report;

// What an observer is told as a run starts.
struct run_start {
  const graph_description& graph;
  std::string_view run_id;
  std::string_view experiment;
  // Every parameter's value as this run uses it, formatted by its type.
  std::span<const std::pair<std::string, std::string>> params;
  std::chrono::system_clock::time_point started;
};

// Every call may come from any thread, several at once (step events come
// from the worker running the step): an observer guards its own state. A
// call must not throw; what it needs to say it says with its own means. The
// events of a run, in order: run_started; per step, step_started (only for a
// step that computes), step_retried for each failed attempt but the last,
// then step_finished (every step: computed, cached, failed, skipped, not
// run); log and metric lines while steps run; warnings at any time; and
// run_finished, after every step's step_finished.
class observer {
 public:
  virtual ~observer() = default;
  virtual void run_started(const run_start& /*run*/) {}
  // `node`: the step's index in run_start::graph.nodes. `worker`: the
  // oneTBB thread index in the run's arena.
  virtual void step_started(std::uint32_t /*node*/, int /*worker*/) {}
  virtual void step_retried(std::uint32_t /*node*/, std::uint32_t /*attempt*/, std::string_view /*error*/) {}
  // The step's report as it ended (report.cache_hit for a hit); `took`: how
  // long it computed (zero for one that did not).
  virtual void step_finished(std::uint32_t /*node*/, const step_report& /*report*/, std::chrono::nanoseconds /*took*/) {
  }
  // ctx.log(line) in step `step` (element: a map's element, else npos).
  virtual void log(std::string_view /*step*/, std::size_t /*element*/, std::string_view /*line*/) {}
  // ctx.log_metric(name, value, step_number) in step `step`.
  virtual void metric(std::string_view /*step*/, std::string_view /*name*/, double /*value*/,
                      std::int64_t /*step_number*/) {}
  // Something the run could not do but did without (the cache or the record
  // unusable, a value not stored): the run goes on.
  virtual void warning(std::string_view /*message*/) {}
  // The run's report, complete (its run_id, durations, outputs' digests).
  virtual void run_finished(const run_report& /*report*/) {}
};

}  // namespace penstock
