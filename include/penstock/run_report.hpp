// What a run did: per-step status, attempts and time, and the run's summary.
// Returned by pipeline::run and printed by `run`.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <penstock/digest.hpp>
#include <penstock/gpu_context.hpp>
#include <penstock/observer.hpp>

namespace penstock {

enum class step_status : std::uint8_t {
  not_run,  // never started (run interrupted before it)
  succeeded,
  failed,     // threw on every attempt
  timed_out,  // exceeded .timeout()
  skipped,    // an input failed, so it could not run
  cancelled,  // stopped by an interrupt while running
};

[[nodiscard]] constexpr const char* to_string(step_status s) noexcept {
  switch (s) {
    case step_status::not_run: return "not run";
    case step_status::succeeded: return "succeeded";
    case step_status::failed: return "failed";
    case step_status::timed_out: return "timed out";
    case step_status::skipped: return "skipped";
    case step_status::cancelled: return "cancelled";
  }
  return "unknown";
}

struct step_report {
  // The members every pass over a run's steps reads (its record, its
  // summary) come first, together: two cache lines of each step's report,
  // where a 10,000-step report is 2 MB.
  step_status status = step_status::not_run;
  // Caching (run_options::cache): whether the output came from the cache
  // instead of a run (status is then succeeded and attempts 0).
  bool cache_hit = false;
  std::uint32_t attempts = 0;
  // On which oneTBB worker it ran or was found (its thread index in the
  // run's arena; -1 for a step that neither computed nor was found:
  // skipped, not run), and when it started computing (or was found), from
  // the run's start.
  int worker = -1;
  std::chrono::nanoseconds started{0};
  std::chrono::nanoseconds duration{0};
  // A ps::map that ran: its elements, and how many came from the cache.
  std::size_t elements = 0;
  std::size_t elements_cached = 0;
  // With the cache: the step-run key, when the step could be keyed, and
  // the content digest of its output (computed or cached).
  std::optional<digest> key{};
  std::optional<digest> output{};
  std::string error;  // the last attempt's message, for failed / timed out steps
  std::string name;
  // A warning about the cache, such as a corrupt blob that was reported and recomputed.
  std::string cache_note{};
};

enum class progress_mode : std::uint8_t {
  automatic,  // a live line on a terminal, plain lines otherwise
  live,
  lines,
  none,
};

struct cache_options {
  // Off for pipeline::run unless set; on for the command line's `run`
  // (--no-cache turns it off).
  bool enabled = false;
  // Empty: $PENSTOCK_HOME if set, else .penstock under the working directory.
  std::string directory{};
  // These steps, and every step that depends on them, run even when their
  // output is cached (their new outputs replace the cached ones).
  std::vector<std::string> rerun{};
  // A step being computed holds a lease on its key, so that another process
  // asking for the same key waits instead of computing it too. The run
  // renews its leases every lease_renewal while their steps (and map
  // elements) compute, so a waiter waits for a step of any length; a lease
  // that is not renewed for lease_ttl (its holder hung, or runs on another
  // host and died) is taken over. A holder that died on this host is taken
  // over at once.
  std::chrono::seconds lease_ttl{120};
  std::chrono::milliseconds lease_renewal{std::chrono::seconds{30}};
  // Serve hits, store nothing: no leases, no entries, no run record (a
  // shared cache this run must not change). A cache directory that cannot
  // be written is used this way by itself; either way the run says so once.
  bool read_only = false;
};

// Every run is recorded in a workspace (an SQLite file, runs.db, in the
// cache directory unless `workspace` names another): its parameters, each
// step's status and time, logs, metrics and lineage, for the `runs`, `show`,
// `compare`, `logs` and `lineage` commands. A workspace that cannot be
// written is a warning, never a failed run.
struct tracking_options {
  bool enabled = true;
  std::string experiment = "Default";
  // Empty: runs.db in cache_options::directory (else $PENSTOCK_HOME, else
  // .penstock under the working directory), whether the cache is on or off.
  std::string workspace{};
  // A running run's record is refreshed this often; one not refreshed for
  // three times as long (its process was killed) shows as crashed.
  std::chrono::milliseconds heartbeat{std::chrono::seconds{5}};
  // Also sent, once recorded, to the MLflow tracking server at this URI
  // (http://HOST:PORT): the run, its parameters, metrics and tags, each
  // step as a nested run. A server that cannot be reached or refuses it is
  // a warning; `penstock export-mlflow RUN URI` sends it later.
  std::string mlflow{};
  // The run returns before its record's last write (its steps and status:
  // about 0.3 ms for 10,000 steps), which the process's record writer makes
  // after it, with those of every other run waiting for it in one
  // transaction (at most 64 runs wait; the next one to end waits for them).
  // The record is complete once ps::wait_for_records() returns, when the
  // process exits normally, and when penstock opens the workspace in this
  // process (`runs`, `show`, ...); until then other processes see the run
  // as running, one killed before then is recorded as crashed (or not at
  // all when it ran under 50 ms), and a failure of that write is printed to
  // stderr, not in the report. For processes that run many short
  // pipelines; ignored with `mlflow` (the record is sent once complete).
  bool write_behind = false;
};

struct run_options {
  // 0: one per core. More than oneTBB allows (the cores, or a
  // tbb::global_control limit): that many, said in the run's warnings.
  std::size_t threads = 0;
  // How many command steps (ps::command) run at once; 0: one per core.
  // Their processes do not hold a thread while they run.
  std::size_t max_processes = 0;
  progress_mode progress = progress_mode::none;
  // name=value pairs, parsed by each parameter's type. The `{}` keeps g++'s
  // -Wmissing-field-initializers quiet for run({.threads = 2}).
  std::vector<std::pair<std::string, std::string>> params{};
  // When set and true, no new steps start and running ones see
  // context::stop_requested(). ps::main points it at its Ctrl-C flag.
  const std::atomic<bool>* stop = nullptr;
  cache_options cache{};
  // The backend of GPU steps (.on(ps::gpu)): unset picks CUDA when this build
  // has it and a device is present, the host backend otherwise. Asking for
  // cuda where there is none fails the run before any step starts.
  std::optional<gpu_backend> gpu{};
  // Told of the run's events (observer.hpp), in this order, after the
  // runtime's own (progress display, record); not owned.
  std::vector<observer*> observers{};
  tracking_options tracking{};
};

struct run_report {
  std::string pipeline;
  std::vector<step_report> steps;  // in topological order
  std::chrono::nanoseconds wall{0};
  bool interrupted = false;
  std::string run_id{};      // set when the run is recorded or uses the cache: its id in both
  std::string experiment{};  // the experiment it is recorded in (tracking_options)
  std::chrono::system_clock::time_point started{};
  // Every parameter's value as the run used it, formatted by its type.
  std::vector<std::pair<std::string, std::string>> params{};
  std::string mlflow_url{};  // the run's page in MLflow, when tracking_options::mlflow sent it there
  std::string cache_note{};  // why the cache was not used, when it was asked for and could not be
  // What the run could not do but did without (observer::warning), in order.
  std::vector<std::string> warnings{};
  // When the pipeline has GPU steps: the backend they ran on, and how many
  // times the runtime made the host wait for the GPU (copies of GPU values
  // to CPU steps or to the cache; never between two GPU steps).
  std::optional<gpu_backend> gpu{};
  std::uint64_t gpu_host_synchronizations = 0;
  // Copies between host memory and the run's GPU memory: one per edge from a
  // CPU step (or a cached value) to a GPU step, one per GPU value read by a
  // CPU step or stored in the cache, and those the steps made themselves.
  std::uint64_t gpu_copies_to_device = 0;
  std::uint64_t gpu_copies_to_host = 0;

  [[nodiscard]] bool ok() const noexcept {
    if (interrupted) return false;
    for (const auto& s : steps)
      if (s.status != step_status::succeeded) return false;
    return true;
  }
  [[nodiscard]] std::size_t count(step_status s) const noexcept {
    std::size_t n = 0;
    for (const auto& r : steps) n += r.status == s ? 1 : 0;
    return n;
  }
  [[nodiscard]] std::size_t cache_hits() const noexcept {
    std::size_t n = 0;
    for (const auto& r : steps) n += r.cache_hit ? 1 : 0;
    return n;
  }
  [[nodiscard]] const step_report* find(std::string_view name) const noexcept {
    for (const auto& r : steps)
      if (r.name == name) return &r;
    return nullptr;
  }
  // "pipeline 'churn': 5 succeeded, 1 failed, 2 skipped in 1.23 s" plus one
  // line per failed step with its message.
  [[nodiscard]] std::string summary() const;
};

// Thrown by pipeline::run when a parameter is unknown, missing or malformed:
// before any step runs.
class param_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace penstock
