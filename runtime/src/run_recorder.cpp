// run_recorder: a run's record, written from the recorder's thread; see
// run_recorder.hpp.
#include "run_recorder.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <system_error>

#include <fmt/format.h>

#include <penstock/version.hpp>

#include "cache_session.hpp"
#include "program_output.hpp"

namespace penstock::detail::r1 {

namespace {

std::string user_name() {
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  if (::getpwuid_r(::geteuid(), &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr)
    return found->pw_name;
  if (const char* user = std::getenv("USER")) return user;
  return std::to_string(::geteuid());
}

// The revision of the git working tree around `directory`, and whether
// tracked files differ from it; "" and nullopt outside one (or without git).
// Asked of git at most once a second per directory and process: a process
// that runs pipelines in a loop does not spawn git twice per run.
void git_state(const std::string& directory, run_row& row) {
  struct answer {
    std::chrono::steady_clock::time_point when;
    std::string commit;
    std::optional<bool> dirty;
  };
  static std::mutex mutex;
  static auto* answers = new std::map<std::string, answer>;
  const auto now = std::chrono::steady_clock::now();
  {
    const std::scoped_lock lock(mutex);
    if (const auto it = answers->find(directory);
        it != answers->end() && now - it->second.when < std::chrono::seconds(1)) {
      row.git_commit = it->second.commit;
      row.git_dirty = it->second.dirty;
      return;
    }
  }
  constexpr std::chrono::seconds timeout{10};
  answer a{.when = now, .commit = {}, .dirty = std::nullopt};
  if (const auto head = program_output({"git", "rev-parse", "--verify", "--quiet", "HEAD"}, directory, timeout);
      head && head->size() >= 40) {
    a.commit = head->substr(0, head->find_first_of("\r\n"));
    if (const auto changes =
            program_output({"git", "status", "--porcelain", "--untracked-files=no"}, directory, timeout))
      a.dirty = !changes->empty();
  }
  row.git_commit = a.commit;
  row.git_dirty = a.dirty;
  const std::scoped_lock lock(mutex);
  (*answers)[directory] = std::move(a);
}

// Who this process is, looked up once per process (again in a child after fork()).
struct process_facts {
  pid_t pid = 0;
  std::optional<std::int64_t> started;
  std::string host;
  std::string user;
};

process_facts this_process() {
  static std::mutex mutex;
  static process_facts facts;
  const std::scoped_lock lock(mutex);
  if (facts.pid != ::getpid()) {
    const auto me = process_identity::current();
    facts = {.pid = me.pid, .started = me.started, .host = printable(me.host), .user = printable(user_name())};
  }
  return facts;
}

}  // namespace

digest structure_digest(const graph_description& graph) {
  hasher h;
  h.update(std::string_view("penstock pipeline structure v1")).update(graph.name);
  h.update_value(static_cast<std::uint64_t>(graph.nodes.size()));
  for (const auto& node : graph.nodes) h.update(node.identity);
  for (const auto o : graph.outputs) h.update_value(o);
  return h.finish();
}

recorded recorded_status(const step_report& step) noexcept {
  if (step.cache_hit) return recorded::cached;
  switch (step.status) {
    case step_status::succeeded: return recorded::ran;
    case step_status::failed:
    case step_status::timed_out: return recorded::failed;
    case step_status::skipped: return recorded::skipped;
    case step_status::cancelled:
    case step_status::not_run: return recorded::cancelled;
  }
  return recorded::failed;
}

run_recorder::run_recorder(std::filesystem::path file, const tracking_options& options, run_observers& told)
    : file_(std::move(file)), options_(options), told_(told) {}

run_recorder::~run_recorder() {
  if (thread_.joinable()) {
    {
      const std::scoped_lock lock(mutex_);
      ending_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
}

void run_recorder::run_started(const run_start& run) {
  graph_ = &run.graph;
  run_id_ = std::string(run.run_id);
  params_.assign(run.params.begin(), run.params.end());
  for (auto& [name, value] : params_) {
    name = printable(name);
    value = printable(value);
  }
  row_.id = run_id_;
  row_.experiment = printable(run.experiment);
  row_.pipeline = printable(run.graph.name);
  structure_ = structure_digest(run.graph);
  row_.structure = structure_.hex();
  row_.status = "running";
  row_.started = run.started;
  row_.heartbeat = run.started;
  // A heartbeat of at least 100 ms: a zero or negative one would write in a loop.
  options_.heartbeat = std::max(options_.heartbeat, std::chrono::milliseconds(100));
  row_.heartbeat_interval = options_.heartbeat;
  std::error_code ec;
  directory_ = std::filesystem::current_path(ec).string();
  row_.directory = printable(directory_);
  row_.version = PENSTOCK_VERSION_STRING;
  row_.steps = run.graph.nodes.size();
  thread_ = std::thread([this] { work(); });
}

void run_recorder::log(std::string_view step, std::size_t element, std::string_view line) {
  log_row row{.step = printable(step),
              .element = element == context::npos ? std::nullopt : std::optional<std::uint64_t>(element),
              .time = std::chrono::system_clock::now(),
              .line = printable(line)};
  const std::scoped_lock lock(mutex_);
  if (!failed_) logs_.push_back(std::move(row));  // after a failed write nothing drains them
}

void run_recorder::metric(std::string_view step, std::string_view name, double value, std::int64_t step_number) {
  metric_row row{.step = printable(step),
                 .name = printable(name),
                 .value = value,
                 .step_number = step_number,
                 .time = std::chrono::system_clock::now()};
  const std::scoped_lock lock(mutex_);
  if (!failed_) metrics_.push_back(std::move(row));
}

void run_recorder::finish(const run_report& report) {
  if (!thread_.joinable()) return;
  {
    const std::scoped_lock lock(mutex_);
    ending_ = true;
    report_ = &report;
  }
  wake_.notify_all();
  thread_.join();
}

void run_recorder::work() {
  std::unique_lock lock(mutex_);
  lock.unlock();
  // Off the run's threads: git, the workspace's opening, its first row.
  git_state(directory_, row_);  // the directory as it is, not its printable form
  const process_facts me = this_process();
  row_.host = me.host;
  row_.pid = me.pid;
  row_.pid_started = me.started;
  row_.user = me.user;
  try {
    store_ = workspace_store::shared_for_writing(file_);
    store_->write({.run = run_id_, .begin = &row_, .params = params_});
  } catch (const std::exception& e) {
    told_.warning(fmt::format("run {} is not recorded: {}", run_id_, e.what()));
    store_.reset();
  }
  lock.lock();
  failed_ = store_ == nullptr;
  while (!ending_) {
    wake_.wait_for(lock, options_.heartbeat, [this] { return ending_; });
    if (ending_) break;
    if (!failed_) (void)flush(lock, nullptr);
  }
  if (!failed_) (void)flush(lock, report_);
  // Ended without finish(): the run threw past its steps. Failed, not running
  // (it would show as crashed, then), with what it logged so far.
  if (!failed_ && report_ == nullptr) {
    run_row last;
    last.status = "failed";
    last.steps = row_.steps;
    last.ended = std::chrono::system_clock::now();
    lock.unlock();
    try {
      store_->write({.run = run_id_, .end = &last});
    } catch (const std::exception&) {
      // The run is going away with an exception of its own: this record's
      // end is left to the heartbeat's staleness (crashed).
    }
    lock.lock();
  }
}

bool run_recorder::flush(std::unique_lock<std::mutex>& lock, const run_report* end) {
  std::vector<metric_row> metrics;
  std::vector<log_row> logs;
  metrics.swap(metrics_);
  logs.swap(logs_);
  lock.unlock();
  run_steps steps;
  run_row last;
  if (end != nullptr) {
    steps.graph = graph_;
    steps.structure = structure_;
    steps.outcomes.resize(end->steps.size());
    steps.timings.resize(end->steps.size());
    for (std::uint32_t i = 0; i < end->steps.size(); ++i) {
      const step_report& s = end->steps[i];
      steps.outcomes[i] = {.status = recorded_status(s),
                           .attempts = s.attempts,
                           .key = s.key,
                           .output = s.output,
                           .elements = s.elements,
                           .elements_cached = s.elements_cached};
      // A hit's time and place are in the report (and the trace), not in the
      // record: a rerun whose steps all hit writes one byte per step.
      if (s.worker >= 0 && !s.cache_hit)
        steps.timings[i] = {.worker = s.worker, .started = s.started, .duration = s.duration};
      if (!s.error.empty()) steps.errors.emplace_back(i, printable(s.error));
      if (s.cache_hit) {
        ++last.cached;
      } else if (s.status == step_status::succeeded) {
        ++last.computed;
      } else if (s.status == step_status::failed || s.status == step_status::timed_out) {
        ++last.failed;
      }
    }
    last.status = end->interrupted ? "interrupted" : end->ok() ? "succeeded" : "failed";
    last.ended = end->started + std::chrono::duration_cast<std::chrono::system_clock::duration>(end->wall);
    last.steps = end->steps.size();
  }
  bool ok = true;
  try {
    store_->write({.run = run_id_,
                   .heartbeat = std::chrono::system_clock::now(),
                   .steps = end != nullptr ? &steps : nullptr,
                   .metrics = metrics,
                   .logs = logs,
                   .end = end != nullptr ? &last : nullptr});
  } catch (const std::exception& e) {
    told_.warning(fmt::format("run {}: its record in {} stops here: {}", run_id_, file_.string(), e.what()));
    ok = false;
  }
  lock.lock();
  failed_ = failed_ || !ok;
  return ok;
}

}  // namespace penstock::detail::r1
