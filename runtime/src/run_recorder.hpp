// run_recorder: the observer that records a run in its workspace
// (workspace_store). Opening the workspace, asking git for the revision and
// every write happen on the recorder's own thread, which refreshes the run's
// heartbeat and writes what the steps logged once per interval; the run's
// end writes its steps (three byte strings, step_tables.hpp) and status. Any failure is one warning, and
// the run goes on unrecorded.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <penstock/graph_description.hpp>
#include <penstock/observer.hpp>
#include <penstock/run_report.hpp>

#include "run_observers.hpp"
#include "workspace_store.hpp"

namespace penstock::detail::r1 {

// The pipeline's structural digest: its steps' identities in order and its outputs.
[[nodiscard]] digest structure_digest(const graph_description& graph);

// The status a step run is recorded with: ran, cached, failed, skipped, cancelled.
[[nodiscard]] recorded recorded_status(const step_report& step) noexcept;

class run_recorder final : public observer {
 public:
  // Records into `file`; says what fails through `told`.
  run_recorder(std::filesystem::path file, const tracking_options& options, run_observers& told);
  run_recorder(const run_recorder&) = delete;
  run_recorder& operator=(const run_recorder&) = delete;
  ~run_recorder();

  void run_started(const run_start& run) override;
  void log(std::string_view step, std::size_t element, std::string_view line) override;
  void metric(std::string_view step, std::string_view name, double value, std::int64_t step_number) override;
  // The run's last write (its steps, lineage and status); waits for the
  // recorder's thread to end. Call once, before the report is handed on.
  void finish(const run_report& report);
  // After finish(): whether every write went through (the run is in the workspace).
  [[nodiscard]] bool recorded() const noexcept { return !failed_ && store_ != nullptr; }

 private:
  void work();
  // Writes what is pending (and `end`'s steps and status); false once a write failed.
  bool flush(std::unique_lock<std::mutex>& lock, const run_report* end);

  std::filesystem::path file_;
  tracking_options options_;
  run_observers& told_;
  const graph_description* graph_ = nullptr;
  std::string run_id_;
  std::string directory_;  // the working directory, as the file system spells it
  digest structure_{};
  run_row row_;
  std::vector<std::pair<std::string, std::string>> params_;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool ending_ = false;
  const run_report* report_ = nullptr;  // set by finish()
  bool failed_ = false;                 // a write failed: nothing more is tried
  std::vector<metric_row> metrics_;
  std::vector<log_row> logs_;
  std::shared_ptr<workspace_store> store_;
  std::thread thread_;
};

}  // namespace penstock::detail::r1
