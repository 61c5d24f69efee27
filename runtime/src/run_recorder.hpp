// run_recorder: the observer that records a run in its workspace
// (workspace_store), through the process's record_writer: the run hands it
// its first row as it starts, what its steps log as they log it, and its
// steps (three byte strings, step_tables.hpp) and status as it ends. Any
// failure is one warning, and the run goes on unrecorded.
#pragma once

#include <filesystem>
#include <memory>

#include <penstock/graph_description.hpp>
#include <penstock/observer.hpp>
#include <penstock/run_report.hpp>

#include "executor.hpp"
#include "record_writer.hpp"
#include "run_observers.hpp"

namespace penstock::detail::r1 {

// The pipeline's structural digest: its steps' identities in order and its outputs.
[[nodiscard]] digest structure_digest(const graph_description& graph);
// The same, made once per schedule (`plan`, of `graph`).
[[nodiscard]] const digest& structure_of(const schedule& plan, const graph_description& graph);

class run_recorder final : public observer {
 public:
  // Records into `file`; says what fails through `told`.
  run_recorder(std::filesystem::path file, const tracking_options& options, run_observers& told, const schedule& plan);
  run_recorder(const run_recorder&) = delete;
  run_recorder& operator=(const run_recorder&) = delete;
  // Without finish(): the run threw past its steps, and is recorded as failed.
  ~run_recorder() override;

  void run_started(const run_start& run) override;
  void log(std::string_view step, std::size_t element, std::string_view line) override;
  void metric(std::string_view step, std::string_view name, double value, std::int64_t step_number) override;
  // The run's last write (its steps and status), handed to the writer; with
  // `wait`, returns once it is written (its warnings told). Call once,
  // before the report is handed on; the report may go away after it.
  void finish(const run_report& report, bool wait);
  // After finish(): whether every write so far went through (after
  // finish(report, true): the run is in the workspace).
  [[nodiscard]] bool recorded() const noexcept { return recorded_; }

 private:
  std::filesystem::path file_;
  tracking_options options_;
  run_observers& told_;
  const schedule& plan_;
  record_writer* writer_ = nullptr;
  std::shared_ptr<recording> record_;  // from run_started() until finish()
  bool recorded_ = false;
};

}  // namespace penstock::detail::r1
