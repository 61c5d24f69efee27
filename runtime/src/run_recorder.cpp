// run_recorder: a run's record, handed to the process's record_writer; see
// run_recorder.hpp.
#include "run_recorder.hpp"

#include <algorithm>
#include <system_error>

#include <penstock/version.hpp>

#include "cache_session.hpp"
#include "step_tables.hpp"

namespace penstock::detail::r1 {

digest structure_digest(const graph_description& graph) {
  hasher h;
  h.update(std::string_view("penstock pipeline structure v1")).update(graph.name);
  h.update_value(static_cast<std::uint64_t>(graph.nodes.size()));
  for (const auto& node : graph.nodes) h.update(node.identity);
  for (const auto o : graph.outputs) h.update_value(o);
  return h.finish();
}

const digest& structure_of(const schedule& plan, const graph_description& graph) {
  std::call_once(plan.structure_once, [&] { plan.structure = structure_digest(graph); });
  return plan.structure;
}

run_recorder::run_recorder(std::filesystem::path file, const tracking_options& options, run_observers& told,
                           const schedule& plan)
    : file_(std::move(file)), options_(options), told_(told), plan_(plan) {}

run_recorder::~run_recorder() {
  if (record_ == nullptr) return;
  // The run threw past its steps: failed, not running (it would show as
  // crashed, then), with what it logged so far; written before the
  // exception leaves run() unless its runs are written behind (after
  // run(), a caller may remove the directory the record would go in).
  run_row last;
  last.status = "failed";
  last.steps = record_->row.steps;
  last.ended = std::chrono::system_clock::now();
  (void)writer_->end(*record_, std::nullopt, std::move(last), !options_.write_behind);
}

void run_recorder::run_started(const run_start& run) {
  auto r = std::make_shared<recording>();
  r->file = file_;
  r->params.assign(run.params.begin(), run.params.end());
  for (auto& [name, value] : r->params) {
    name = printable(name);
    value = printable(value);
  }
  r->structure = {.hash = structure_of(plan_, run.graph), .graph = &run.graph, .data = {}};
  run_row& row = r->row;
  row.id = std::string(run.run_id);
  row.experiment = printable(run.experiment);
  row.pipeline = printable(run.graph.name);
  row.structure = r->structure.hash.hex();
  row.status = "running";
  row.started = run.started;
  row.heartbeat = run.started;
  // A heartbeat of at least 100 ms: a zero or negative one would write in a loop.
  r->heartbeat = std::max(options_.heartbeat, std::chrono::milliseconds(100));
  row.heartbeat_interval = r->heartbeat;
  std::error_code ec;
  r->directory = std::filesystem::current_path(ec).string();
  row.directory = printable(r->directory);
  row.version = PENSTOCK_VERSION_STRING;
  row.steps = run.graph.nodes.size();
  r->told = &told_;
  record_ = r;
  writer_ = &record_writer::instance();
  writer_->add(std::move(r));
}

void run_recorder::log(std::string_view step, std::size_t element, std::string_view line) {
  if (record_ == nullptr) return;
  writer_->log(*record_, {.step = printable(step),
                          .element = element == context::npos ? std::nullopt : std::optional<std::uint64_t>(element),
                          .time = std::chrono::system_clock::now(),
                          .line = printable(line)});
}

void run_recorder::metric(std::string_view step, std::string_view name, double value, std::int64_t step_number) {
  if (record_ == nullptr) return;
  writer_->metric(*record_, {.step = printable(step),
                             .name = printable(name),
                             .value = value,
                             .step_number = step_number,
                             .time = std::chrono::system_clock::now()});
}

void run_recorder::finish(const run_report& report, bool wait) {
  if (record_ == nullptr) return;
  // Made here, while the writer may still be writing the run's first row.
  report_tables t = encode_report(report.steps);
  run_row last;
  last.status = report.interrupted ? "interrupted" : report.ok() ? "succeeded" : "failed";
  last.ended = report.started + std::chrono::duration_cast<std::chrono::system_clock::duration>(report.wall);
  last.steps = report.steps.size();
  last.computed = t.computed;
  last.cached = t.cached;
  last.failed = t.failed;
  run_steps steps{.outcomes = std::move(t.outcomes), .timings = std::move(t.timings), .errors = std::move(t.errors)};
  recorded_ = writer_->end(*record_, std::move(steps), std::move(last), wait);
  record_.reset();
}

}  // namespace penstock::detail::r1
