// record_writer: the process's thread that writes runs' records; see
// record_writer.hpp.
#include "record_writer.hpp"

#include <penstock/detail/runtime_api.hpp>

#include <pthread.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>

#include <fmt/format.h>

#include "cache_session.hpp"
#include "program_output.hpp"

namespace penstock::detail::r1 {

namespace {

using steady = std::chrono::steady_clock;

// A run's first row is written this long after it started: a run that ends
// sooner is written once, at its end (one transaction, not two: a short
// run's recording costs half as much).
constexpr std::chrono::milliseconds first_row_delay{50};

// How many runs that returned may wait for their last write (write_behind).
constexpr std::size_t max_behind = 64;

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
// that runs pipelines in a loop does not spawn git twice per run. (Its
// statics are never destroyed: the writer may ask as the process exits.)
void git_state(const std::string& directory, run_row& row) {
  struct answer {
    steady::time_point when;
    std::string commit;
    std::optional<bool> dirty;
  };
  static auto* mutex = new std::mutex;
  static auto* answers = new std::map<std::string, answer>;
  const auto now = steady::now();
  {
    const std::scoped_lock lock(*mutex);
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
  const std::scoped_lock lock(*mutex);
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
  static auto* mutex = new std::mutex;
  static auto* facts = new process_facts;
  const std::scoped_lock lock(*mutex);
  if (facts->pid != ::getpid()) {
    const auto me = process_identity::current();
    *facts = {.pid = me.pid, .started = me.started, .host = printable(me.host), .user = printable(user_name())};
  }
  return *facts;
}

// The run's git revision, host, user and process, in its first row.
void fill_facts(recording& run) {
  git_state(run.directory, run.row);  // the directory as it is, not its printable form
  const process_facts me = this_process();
  run.row.host = me.host;
  run.row.pid = me.pid;
  run.row.pid_started = me.started;
  run.row.user = me.user;
  run.facts = true;
}

}  // namespace

// The process's writer. The writer itself is never destroyed (a child after
// fork() leaves its parent's alone and makes its own); this slot's
// destructor, at the process's exit, lets it write the runs that ended and
// stops its thread.
struct writer_slot {
  std::mutex mutex;
  record_writer* writer = nullptr;
  pid_t pid = 0;

  writer_slot() = default;
  writer_slot(const writer_slot&) = delete;
  writer_slot& operator=(const writer_slot&) = delete;
  ~writer_slot() {
    const std::scoped_lock lock(mutex);
    if (writer != nullptr && pid == ::getpid()) writer->stop();
  }
  // This process's writer, or null when none was started here.
  record_writer* current() {
    const std::scoped_lock lock(mutex);
    return pid == ::getpid() ? writer : nullptr;
  }
};

namespace {

writer_slot& slot() {
  static writer_slot s;
  return s;
}

}  // namespace

record_writer& record_writer::instance() {
  writer_slot& s = slot();
  const std::scoped_lock lock(s.mutex);
  if (s.writer == nullptr || s.pid != ::getpid()) {
    s.writer = new record_writer;  // never deleted: see writer_slot
    s.pid = ::getpid();
  }
  return *s.writer;
}

void record_writer::wait_for_ended_runs() {
  record_writer* w = slot().current();
  if (w == nullptr) return;
  std::unique_lock lock(w->mutex_);
  w->changed_.wait(lock, [w] {
    return w->stopped_ ||
           std::none_of(w->runs_.begin(), w->runs_.end(), [](const auto& r) { return r->ended && !r->written; });
  });
}

record_writer::record_writer() {
  thread_ = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), "penstock-record");
    work();
  });
}

void record_writer::stop() {
  {
    const std::scoped_lock lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void record_writer::add(std::shared_ptr<recording> run) {
  {
    const std::scoped_lock lock(mutex_);
    if (stopping_ || stopped_) {
      // The process is exiting: its writer no longer writes.
      run->begun = run->failed = run->written = true;
      return;
    }
    run->next_heartbeat = steady::now() + first_row_delay;
    runs_.push_back(std::move(run));
  }
  wake_.notify_all();
}

void record_writer::log(recording& run, log_row row) {
  const std::scoped_lock lock(mutex_);
  if (!run.failed && !run.ended) run.logs.push_back(std::move(row));  // after a failed write nothing drains them
}

void record_writer::metric(recording& run, metric_row row) {
  const std::scoped_lock lock(mutex_);
  if (!run.failed && !run.ended) run.metrics.push_back(std::move(row));
}

bool record_writer::end(recording& run, std::optional<run_steps> steps, run_row end, bool wait) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this, &run] { return (!run.busy && !run.telling) || stopped_; });
  if (run.written || stopped_) return false;  // not recorded (the process is exiting)
  run.ended = true;
  run.steps = std::move(steps);
  run.end = std::move(end);
  // Written here, on the run's thread, when the run waits for it: no handing over and back.
  if (wait) {
    recording* const one = &run;
    write(lock, std::span(&one, 1), true);
    run.told = nullptr;
    changed_.notify_all();
    return !run.failed;
  }
  // The writer may write its first row after the run's graph is gone: it
  // is given the structure encoded unless it wrote it already.
  if (!run.begun && !known_.contains({run.file.string(), run.structure.hash})) {
    run.busy = true;
    lock.unlock();
    run.structure.data = encode_structure(*run.structure.graph);
    lock.lock();
    run.busy = false;
  }
  run.structure.graph = nullptr;
  run.told = nullptr;
  run.behind = true;
  ++behind_;
  wake_.notify_all();
  // No further behind than max_behind runs: a process whose runs are
  // shorter than their writes waits for them here.
  changed_.wait(lock, [this] { return behind_ < max_behind || stopped_; });
  return !run.failed;
}

void record_writer::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    // One write per pass: first rows first (their runs may be waiting to
    // end), then last writes, then heartbeats that are due.
    const auto now = steady::now();
    recording* first = nullptr;
    recording* last = nullptr;
    recording* beat = nullptr;
    auto next = steady::time_point::max();
    recording* ask = nullptr;
    for (const auto& r : runs_) {
      if (r->busy) continue;  // its run is writing it, or making its structure
      if (!r->facts && !r->ended) {
        if (ask == nullptr) ask = r.get();
      } else if (r->ended) {
        if (last == nullptr) last = r.get();
      } else if (!r->begun && r->next_heartbeat <= now) {
        if (first == nullptr) first = r.get();
      } else if (r->begun && r->next_heartbeat <= now) {
        if (beat == nullptr) beat = r.get();
      } else {
        next = std::min(next, r->next_heartbeat);
      }
    }
    if (ask != nullptr) {
      // At once, while the run runs: git may take milliseconds.
      ask->busy = true;
      lock.unlock();
      fill_facts(*ask);
      lock.lock();
      ask->busy = false;
      changed_.notify_all();
    } else if (first != nullptr) {
      write(lock, std::span(&first, 1), false);
    } else if (last != nullptr) {
      // With every other run of that workspace that has ended: one commit for all.
      std::vector<recording*> batch;
      for (const auto& r : runs_)
        if (r->ended && !r->busy && r->file == last->file && batch.size() < max_behind) batch.push_back(r.get());
      write(lock, batch, true);
    } else if (!checkpoints_.empty()) {
      // Beside the runs' commits, which do not wait for it (WAL: a
      // checkpoint and a writer go on at once).
      const std::filesystem::path file = *checkpoints_.begin();
      checkpoints_.erase(checkpoints_.begin());
      lock.unlock();
      std::string failure;
      try {
        workspace_store::checkpoint_wal(file);
      } catch (const std::exception& e) {
        failure = e.what();
      }
      lock.lock();
      // Once per file: the WAL only grows (readers read it all the same).
      if (!failure.empty() && uncheckpointed_.insert(file).second) {
        lock.unlock();
        std::fprintf(stderr, "penstock: warning: the record's WAL is not checkpointed: %s\n", failure.c_str());
        lock.lock();
      }
    } else if (stopping_) {
      while (!unwritten_.empty()) tell_unwritten_since(lock, unwritten_.begin()->first);
      // What still runs as the process exits stays as it is: crashed, once its heartbeat is stale.
      stopped_ = true;
      changed_.notify_all();
      return;
    } else if (beat != nullptr) {
      write(lock, std::span(&beat, 1), false);
    } else {
      wake_.wait_until(lock, next);
    }
  }
}

void record_writer::write(std::unique_lock<std::mutex>& lock, std::span<recording* const> batch, bool last) {
  struct one {
    std::shared_ptr<recording> run;  // held: `runs_` may change meanwhile
    bool first;
    bool tried;
    std::vector<metric_row> metrics;
    std::vector<log_row> logs;
    std::optional<run_steps> steps;
  };
  std::vector<one> writes;
  writes.reserve(batch.size());
  for (recording* r : batch) {
    one w{.run = *std::find_if(runs_.begin(), runs_.end(), [r](const auto& h) { return h.get() == r; }),
          .first = !r->begun,
          .tried = !r->failed,
          .metrics = {},
          .logs = {},
          .steps = {}};
    r->busy = true;
    w.metrics.swap(r->metrics);
    w.logs.swap(r->logs);
    if (last) w.steps = std::move(r->steps);
    writes.push_back(std::move(w));
  }
  std::string failure;
  bool long_wal = false;
  if (std::any_of(writes.begin(), writes.end(), [](const one& w) { return w.tried; })) {
    lock.unlock();
    try {
      std::vector<run_write> rows;
      workspace_store* store = nullptr;  // one file for the batch: one store
      for (auto& w : writes) {
        if (!w.tried) continue;
        recording& run = *w.run;
        if (w.first) {
          if (!run.facts) fill_facts(run);
          run.store = workspace_store::shared_for_writing(run.file);
        }
        store = run.store.get();
        rows.push_back({.run = run.row.id,
                        .begin = w.first ? &run.row : nullptr,
                        .structure = w.first ? &run.structure : nullptr,
                        .params = w.first ? std::span(run.params) : std::span<std::pair<std::string, std::string>>(),
                        .heartbeat = w.first ? std::nullopt : std::optional(std::chrono::system_clock::now()),
                        .steps = w.steps ? &*w.steps : nullptr,
                        .metrics = w.metrics,
                        .logs = w.logs,
                        .end = last ? &run.end : nullptr});
      }
      try {
        store->write(rows);
      } catch (const workspace_store::schema_changed&) {
        // Opened again (migrated, or refused if newer) and written once more.
        auto fresh = workspace_store::shared_for_writing(writes.front().run->file);
        for (auto& w : writes)
          if (w.tried) w.run->store = fresh;
        store = fresh.get();
        store->write(rows);
      }
      long_wal = store->wal_is_long();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    lock.lock();
  }
  if (long_wal) {
    // Not on this thread: a checkpoint takes milliseconds, more than most runs' records.
    checkpoints_.insert(writes.front().run->file);
    wake_.notify_all();
  }
  // Runs whose own run no longer hears a warning (written behind) are
  // told on stderr together: one line for the batch, not one per run.
  std::vector<std::string> untold;
  bool untold_whole = true;  // none of them has a row in the workspace
  for (auto& w : writes) {
    recording& run = *w.run;
    if (w.first && w.tried && failure.empty()) known_.insert({run.file.string(), run.structure.hash});
    if (w.first) run.structure.graph = nullptr;  // its run may end and take its graph with it
    if (w.tried && !failure.empty()) {
      run.failed = true;
      run.store.reset();
      if (run.told == nullptr) {
        untold.push_back(run.row.id);
        untold_whole = untold_whole && w.first;
      } else {
        // Told before `begun`: a run that ends now still has the warning in its report.
        tell(lock, run,
             w.first ? fmt::format("run {} is not recorded: {}", run.row.id, failure)
                     : fmt::format("run {}: its record in {} stops here: {}", run.row.id, run.file.string(), failure));
      }
    }
    run.begun = true;
    run.busy = false;
    run.next_heartbeat = steady::now() + run.heartbeat;
    if (last) {
      run.written = true;
      if (run.behind) --behind_;
      std::erase(runs_, w.run);
    }
  }
  if (!writes.empty()) {
    const std::string file = writes.front().run->file.string();  // one file for the batch
    if (!untold.empty()) {
      tell_unwritten(lock, file, untold, untold_whole, failure);
    } else if (failure.empty()) {
      tell_unwritten_since(lock, file);
    }
  }
  changed_.notify_all();
}

void record_writer::tell_unwritten(std::unique_lock<std::mutex>& lock, const std::string& file,
                                   const std::vector<std::string>& runs, bool whole, const std::string& reason) {
  auto told = unwritten_.find(file);
  if (told != unwritten_.end() && told->second.reason == reason) {
    if (told->second.runs == 0) told->second.first = runs.front();
    told->second.runs += runs.size();
    told->second.last = runs.back();
    return;
  }
  tell_unwritten_since(lock, file);
  unwritten_[file] = unwritten{.reason = reason, .runs = 0, .first = {}, .last = {}};
  const std::string which = runs.size() == 1
                                ? "run " + runs.front()
                                : fmt::format("{} runs ({} to {})", runs.size(), runs.front(), runs.back());
  const char* const verb = runs.size() == 1 ? "is" : "are";
  const std::string message = whole ? fmt::format("{} {} not recorded in {}: {}", which, verb, file, reason)
                                    : fmt::format("{}: the record in {} stops here: {}", which, file, reason);
  lock.unlock();
  std::fprintf(stderr, "penstock: warning: %s\n", message.c_str());
  lock.lock();
}

void record_writer::tell_unwritten_since(std::unique_lock<std::mutex>& lock, std::string file) {
  const auto told = unwritten_.find(file);
  if (told == unwritten_.end()) return;
  const unwritten since = std::move(told->second);
  unwritten_.erase(told);
  if (since.runs == 0) return;
  const std::string which = since.runs == 1
                                ? "1 more run (" + since.first + ")"
                                : fmt::format("{} more runs ({} to {})", since.runs, since.first, since.last);
  const std::string message = fmt::format("{} {} not recorded in {}, or not entirely, for the same reason", which,
                                          since.runs == 1 ? "is" : "are", file);
  lock.unlock();
  std::fprintf(stderr, "penstock: warning: %s\n", message.c_str());
  lock.lock();
}

void record_writer::tell(std::unique_lock<std::mutex>& lock, recording& run, const std::string& message) {
  if (run.told == nullptr) {
    lock.unlock();
    std::fprintf(stderr, "penstock: warning: %s\n", message.c_str());
    lock.lock();
    return;
  }
  run_observers* told = run.told;
  run.telling = true;
  lock.unlock();
  told->warning(message);
  lock.lock();
  run.telling = false;
  changed_.notify_all();
}

void wait_for_records() { record_writer::wait_for_ended_runs(); }

}  // namespace penstock::detail::r1
