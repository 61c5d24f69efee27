// command_steps: how the executor runs a command step (ps::command). On a
// worker it turns the step's inputs into its argument list and environment
// and hands it to the run's process_supervisor; the worker goes on with
// other steps. When the process ends, the supervisor judges the attempt
// (exit code, signal, declared outputs), retries it in a fresh directory or
// enqueues the step's completion, which sets its value and counts its
// consumers down. Private to the runtime.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <oneapi/tbb/task_group.h>

#include <penstock/run_report.hpp>

#include "process_supervisor.hpp"
#include "step_clock.hpp"

namespace penstock::detail::r1 {

// One command step's run, from its first attempt to its completion.
struct command_run {
  std::uint32_t node = 0;
  // The argument list with inputs and sources filled in; outputs' entries
  // are filled per attempt (their directory is new each time).
  std::vector<std::string> argv;
  std::filesystem::path program;
  std::vector<std::string> environment;
  std::filesystem::path directory;  // this attempt's
  std::vector<std::filesystem::path> outputs;
  std::uint32_t attempts = 0;
  step_status status = step_status::failed;
  std::string error;
  step_clock::ticks started = 0;
  std::optional<tbb::task_handle> finish;  // the asynchronous completion
  // Set (release) on the supervisor's thread before the completion is
  // enqueued, read (acquire) by it: the edge ThreadSanitizer cannot see
  // through an uninstrumented libtbb.
  std::atomic<bool> ended{false};
};

// "exited with code 3; its last lines of stderr: ...", "was killed by
// signal 9 (SIGKILL)", ...: what went wrong with one attempt, or empty.
[[nodiscard]] std::string describe_ending(const process_outcome& outcome);

}  // namespace penstock::detail::r1
