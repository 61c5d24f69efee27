// record_writer: the one thread per process that writes runs' records in
// their workspaces (run_recorder hands it each run it records), off the
// run's threads: a run's first row 50 ms after it started and what its
// steps logged once per heartbeat. A run's last write (steps and status),
// with its first row if it ended within those 50 ms, is written by the
// run's own thread as it ends, its failures warnings in its report; or,
// with tracking_options::write_behind, by the writer after the run
// returned, in one transaction with those of the other runs of that
// workspace waiting for it (64 at most): then the process's exit, ps::wait_for_records() and every
// workspace opened in the process (workspace_store::open_for_reading,
// open_for_writing) wait until each run that has ended is written. A run
// whose process dies before it is written (kill -9 in its first 50 ms, or
// before a write behind it) shows as crashed once its heartbeat is stale, or
// not at all when its first row was not written. Private to the runtime.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "run_observers.hpp"
#include "workspace_store.hpp"

namespace penstock::detail::r1 {

// One run's recording, shared by the run (its run_recorder) and the writer.
struct recording {
  // Set before the writer is handed it; then the writer's alone.
  std::filesystem::path file;
  std::string directory;  // the working directory, as the file system spells it (git is asked there)
  run_row row;            // its first row (the writer adds git, host, user and process)
  std::vector<std::pair<std::string, std::string>> params;
  run_structure structure;  // its graph is valid until the run has ended
  std::chrono::milliseconds heartbeat{0};

  // Under the writer's mutex.
  run_observers* told = nullptr;   // who hears its warnings; null once the run returned (stderr)
  bool telling = false;            // the writer is telling `told` a warning
  bool busy = false;               // being written (by the writer, or by its run at its end)
  bool facts = false;              // git, host, user and process are in `row`
  bool begun = false;              // its first row was written (or tried)
  bool failed = false;             // a write failed: nothing more is tried
  bool ended = false;              // the run ended: `steps` and `end` are its last write
  bool behind = false;             // its run returned before its last write (write_behind)
  bool written = false;            // its last write was tried (it is recorded unless `failed`)
  std::optional<run_steps> steps;  // absent: the run threw past its steps
  run_row end;                     // its status, end time and counts
  std::vector<metric_row> metrics;
  std::vector<log_row> logs;
  std::chrono::steady_clock::time_point next_heartbeat{};  // or, before `begun`, its first row
  std::shared_ptr<workspace_store> store;
};

class record_writer {
 public:
  // This process's writer; its thread starts on first use (again in a child after fork()).
  static record_writer& instance();
  // Until every run of this process that has ended is written; at once when there is none.
  static void wait_for_ended_runs();

  record_writer(const record_writer&) = delete;
  record_writer& operator=(const record_writer&) = delete;

  // Starts writing `run`'s record: its first row (50 ms on), then a heartbeat each interval.
  void add(std::shared_ptr<recording> run);
  void log(recording& run, log_row row);
  void metric(recording& run, metric_row row);
  // The run has ended: waits for its first write to have been tried (its
  // graph, in `structure`, may go away after this); then writes its last
  // write on the calling thread, its warnings told to `told`, or, without
  // `wait`, hands it to the writer and returns, with `told` no longer told
  // anything. Returns whether the run is recorded: with `wait`, entirely;
  // without, so far.
  bool end(recording& run, std::optional<run_steps> steps, run_row end, bool wait);

 private:
  record_writer();
  friend struct writer_slot;
  void stop();
  void work();
  // Writes what the runs of `batch` (all of one workspace) have not
  // written, in one transaction: each one's first row (unless begun), what
  // it logged, its heartbeat and, `last`, its steps and status (it is then
  // written, and no longer the writer's).
  void write(std::unique_lock<std::mutex>& lock, std::span<recording* const> batch, bool last);
  // `message` to the run's observers while it runs, to stderr after.
  void tell(std::unique_lock<std::mutex>& lock, recording& run, const std::string& message);
  // Runs written behind whose records in `file` failed with `reason`: one
  // line on stderr, then nothing for that file until a write succeeds, a
  // different reason comes, or the process exits; then how many more.
  void tell_unwritten(std::unique_lock<std::mutex>& lock, const std::string& file, const std::vector<std::string>& runs,
                      bool whole, const std::string& reason);
  // `file` by value: the caller may pass the key of the entry it erases.
  void tell_unwritten_since(std::unique_lock<std::mutex>& lock, std::string file);

  struct unwritten {
    std::string reason;
    std::size_t runs = 0;  // since the line on stderr
    std::string first, last;
  };

  std::mutex mutex_;
  std::condition_variable wake_;     // the writer's: work to do
  std::condition_variable changed_;  // the runs': a run begun, telling done, a run written
  std::vector<std::shared_ptr<recording>> runs_;
  std::set<std::pair<std::string, digest>> known_;  // structures written: workspace file, structure digest
  bool stopping_ = false;                           // the process is exiting
  bool stopped_ = false;                            // the thread has ended
  std::size_t behind_ = 0;                          // runs that returned before their last write, not yet written
  std::map<std::string, unwritten> unwritten_;      // workspace file: its failure told on stderr
  std::set<std::filesystem::path> checkpoints_;     // workspaces whose WAL is long: checkpointed by the writer
  std::set<std::filesystem::path> uncheckpointed_;  // told on stderr that their checkpoint failed
  std::thread thread_;
};

}  // namespace penstock::detail::r1
