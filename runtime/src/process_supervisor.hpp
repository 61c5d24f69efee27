// process_supervisor: runs a run's command steps as processes, off the
// oneTBB workers. A command is spawned (posix_spawn, no shell, its own
// process group, stdin from /dev/null) by the thread that submits it when
// a slot is free, so nothing is handed over before it starts; one thread
// per run, started by the first submission, then waits for it: reads its
// stdout and stderr while it runs (poll on the pipes and a pidfd), forwards
// each line to the step's log and each `penstock:metric` line to its
// metrics, and ends it on a timeout or when the run is stopped: SIGTERM to
// the group, SIGKILL after the grace period. When the leader exits, the
// rest of its group is killed, so no child it left behind survives the
// step. At most `max_processes` run at once; the others wait in order of
// submission and are spawned by that thread as slots free. Private to the
// runtime.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <penstock/context.hpp>

namespace penstock::detail::r1 {

struct process_request {
  std::string step;  // the step's name, for its log lines and metrics
  std::filesystem::path program;
  std::vector<std::string> argv;         // argv[0] as written
  std::vector<std::string> environment;  // NAME=value, all of it
  std::filesystem::path directory;       // its working directory
  std::chrono::nanoseconds timeout{0};   // from when it starts; 0: none
  std::chrono::nanoseconds grace{std::chrono::seconds(5)};
};

struct process_outcome {
  enum class ending : std::uint8_t { exited, signaled, timed_out, cancelled, not_started };
  ending how = ending::not_started;
  int code = 0;                            // exit status, when exited
  int signal = 0;                          // the signal that ended it, when signaled
  bool started = false;                    // it was spawned
  bool killed = false;                     // it outlived SIGTERM and was sent SIGKILL
  std::string error{};                     // why it did not start
  std::vector<std::string> stderr_tail{};  // its last stderr lines (at most tail_lines)
  std::uint64_t lines_not_logged = 0;      // over the log limit
};

class process_supervisor : public std::enable_shared_from_this<process_supervisor> {
 public:
  static constexpr std::size_t tail_lines = 20;
  // What one command forwards to the log, in bytes; past it, lines are
  // counted (the stderr tail is still kept).
  static constexpr std::size_t log_limit = std::size_t{4} << 20;

  // `sink` gets the log lines and metrics (thread-safe); `stop` ends every
  // command and refuses new ones. Made with std::make_shared: its thread
  // holds it too.
  process_supervisor(std::size_t max_processes, const std::atomic<bool>* stop, log_sink* sink);
  ~process_supervisor();
  process_supervisor(const process_supervisor&) = delete;
  process_supervisor& operator=(const process_supervisor&) = delete;

  // Starts the command now, on the calling thread, when a slot is free and
  // no earlier command waits for one; else it waits for a slot. `done` is
  // called once, on the supervisor's thread, when it has ended (or could
  // not start). It must not block; it may submit again.
  void submit(process_request request, std::function<void(process_outcome)> done);
  // submit() and wait for it.
  process_outcome run(process_request request);
  // The run is done with it: ends what still runs (as a stop does) and
  // returns once every `done` has returned (at once, when the run waited
  // for its commands); `stop` and `sink` are not used after. The thread
  // then ends by itself: the run does not wait for it to exit.
  void close() noexcept;

  [[nodiscard]] std::size_t max_processes() const noexcept { return max_; }

 private:
  struct job;
  void loop();
  void wake() const noexcept;
  void start_thread();
  // Calls j's `done`, then counts it told.
  void tell(std::unique_ptr<job> j);
  // One submission less to tell (under mutex_): wakes close().
  void count_told();
  bool start(job& j);
  void read_output(job& j, int which, bool until_eof);
  void emit_line(job& j, int which, std::string_view line);
  void finish(job& j);

  const std::size_t max_;
  const std::atomic<bool>* stop_;  // under mutex_
  log_sink* sink_;
  int wake_fd_ = -1;
  std::mutex mutex_;
  // Under mutex_: jobs waiting for a slot, handed to the thread; jobs
  // started (or refused) by submit(), for the thread to watch; the slots
  // taken (running, or being started); the jobs not started yet (here and
  // in waiting_), which a new submission waits behind.
  std::deque<std::unique_ptr<job>> submitted_;
  std::deque<std::unique_ptr<job>> started_;
  std::size_t slots_used_ = 0;
  std::size_t queued_ = 0;
  std::size_t outstanding_ = 0;  // submitted, `done` not returned yet
  std::condition_variable all_told_;
  bool closing_ = false;
  std::once_flag thread_started_;
  std::vector<std::unique_ptr<job>> waiting_;  // the thread's own, in order
  std::vector<std::unique_ptr<job>> running_;
};

}  // namespace penstock::detail::r1
