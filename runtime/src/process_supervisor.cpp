#include "process_supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <future>
#include <mutex>
#include <system_error>
#include <utility>

#include <fmt/format.h>

namespace penstock::detail::r1 {

namespace {

using clock = std::chrono::steady_clock;

constexpr std::size_t chunk = 64 * 1024;
// A line longer than this is logged in pieces of this size.
constexpr std::size_t longest_line = 64 * 1024;
// What one readiness of a pipe reads at most, so that one chatty command
// cannot starve the others.
constexpr int reads_per_turn = 16;
constexpr std::chrono::milliseconds stop_check{50};
constexpr std::string_view metric_prefix = "penstock:metric ";

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

int milliseconds_until(clock::time_point when, clock::time_point now) {
  if (when <= now) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(when - now).count();
  return static_cast<int>(std::min<long long>(ms, 60'000));
}

// `penstock:metric NAME=VALUE [step=N]`: false if the rest of the line is
// not of that form.
bool parse_metric(std::string_view rest, std::string& name, double& value, std::int64_t& step) {
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  const std::size_t space = rest.find(' ');
  std::string_view pair = rest.substr(0, space);
  std::string_view more = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  const std::size_t eq = pair.rfind('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == pair.size()) return false;
  name.assign(pair.substr(0, eq));
  const std::string number(pair.substr(eq + 1));
  char* end = nullptr;
  errno = 0;
  value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || errno == ERANGE) return false;
  step = 0;
  while (!more.empty() && more.front() == ' ') more.remove_prefix(1);
  if (more.empty()) return true;
  if (more.substr(0, 5) != "step=") return false;
  more.remove_prefix(5);
  const auto [ptr, ec] = std::from_chars(more.data(), more.data() + more.size(), step);
  return ec == std::errc() && ptr == more.data() + more.size();
}

// Its own process group (so that a signal reaches all it started, and a
// Ctrl-C to the terminal's group does not reach it), no blocked signals
// and every signal at its default (the caller may ignore SIGPIPE or
// handle SIGINT).
void in_own_group_with_default_signals(posix_spawnattr_t& attr) noexcept {
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
}

// The commands of a process that dies without ending them (kill -9, a
// crash) would run on, reparented to init. A helper, `sh` started with the
// first command, waits for the end of file of its standard input, a
// socket this process never writes to (so it is never woken before); then
// (this process ended, however) it kills every process group listed in a
// file of this process's: one fixed-width slot per running command, its
// group written into a free slot as it starts and blanked once it is
// reaped (a write of one slot: whole or not at all, even under kill -9). A
// group's leader is reaped only after its group was killed, so a listed
// group's id is not reused meanwhile.
class orphan_guard {
 public:
  static orphan_guard& instance() {
    static auto* guard = new orphan_guard;  // never destroyed: commands may end as the process exits
    return *guard;
  }
  void started(pid_t group) noexcept {
    const std::scoped_lock lock(mutex_);
    if (owner_ != ::getpid()) start();  // first use here (or a child after fork(): its own helper)
    if (file_ < 0) return;
    std::size_t slot = 0;
    while (slot < slots_.size() && slots_[slot] != 0) ++slot;
    if (slot == slots_.size()) slots_.push_back(0);
    slots_[slot] = group;
    write_slot(slot, fmt::format("{:>{}}\n", group, slot_width - 1));
  }
  void ended(pid_t group) noexcept {
    const std::scoped_lock lock(mutex_);
    if (owner_ != ::getpid() || file_ < 0) return;
    const auto it = std::find(slots_.begin(), slots_.end(), group);
    if (it == slots_.end()) return;
    *it = 0;
    write_slot(static_cast<std::size_t>(it - slots_.begin()), std::string(slot_width - 1, ' ') + "\n");
  }

 private:
  static constexpr std::size_t slot_width = 12;  // "%11d\n"

  void write_slot(std::size_t slot, const std::string& text) noexcept {
    if (::pwrite(file_, text.data(), text.size(), static_cast<off_t>(slot * slot_width)) !=
        static_cast<ssize_t>(text.size())) {
      close_fd(file_);  // commands are no longer guarded (a full disk)
    }
  }

  void start() noexcept {
    owner_ = ::getpid();
    file_ = -1;
    slots_.clear();
    const char* dir = std::getenv("TMPDIR");
    std::string path = fmt::format("{}/penstock-commands-XXXXXX", dir != nullptr && *dir != '\0' ? dir : "/tmp");
    const int file = ::mkostemp(path.data(), O_CLOEXEC);
    if (file < 0) return;
    static constexpr const char* script =
        "trap '' INT TERM HUP; while read -r _; do :; done; "
        "while read -r g; do [ -n \"$g\" ] && kill -s KILL -- \"-$g\" 2>/dev/null; done < \"$0\"; rm -f \"$0\"";
    int pair[2] = {-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      ::close(file);
      ::unlink(path.c_str());
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&actions, pair[1], 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    in_own_group_with_default_signals(attr);
    char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>(script), path.data(), nullptr};
    char* envp[] = {nullptr};
    pid_t pid = -1;
    const int failed = ::posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(pair[1]);
    if (failed != 0) {
      ::close(pair[0]);
      ::close(file);
      ::unlink(path.c_str());
      return;
    }
    socket_ = pair[0];  // kept open, never written: its end of file is this process's end
    file_ = file;
  }

  std::mutex mutex_;
  pid_t owner_ = 0;
  int file_ = -1;
  int socket_ = -1;
  std::vector<pid_t> slots_;  // the group in each slot of the file; 0: free
};

}  // namespace

struct process_supervisor::job {
  process_request request;
  std::function<void(process_outcome)> done;
  process_outcome outcome;
  pid_t pid = -1;
  int pidfd = -1;
  std::array<int, 3> pipe{-1, -1, -1};  // [1]: stdout, [2]: stderr (read ends)
  std::array<std::string, 3> partial;
  std::size_t logged = 0;
  clock::time_point deadline = clock::time_point::max();
  clock::time_point kill_at = clock::time_point::max();
  bool terminated = false;
  bool timed_out = false;
  bool cancelled = false;
  bool exited = false;
};

process_supervisor::process_supervisor(std::size_t max_processes, const std::atomic<bool>* stop, log_sink* sink)
    : max_(std::max<std::size_t>(max_processes, 1)), stop_(stop), sink_(sink) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "cannot make an eventfd for commands");
}

process_supervisor::~process_supervisor() { close_fd(wake_fd_); }

void process_supervisor::close() noexcept {
  std::unique_lock lock(mutex_);
  closing_ = true;
  wake();
  all_told_.wait(lock, [this] { return outstanding_ == 0; });
  stop_ = nullptr;  // the run's: the thread, ending by itself, must not read it
}

void process_supervisor::start_thread() {
  // The thread owns the supervisor with its run: it ends by itself once
  // closed, and the run does not wait for it to exit.
  std::call_once(thread_started_, [this] { std::thread([self = shared_from_this()] { self->loop(); }).detach(); });
}

void process_supervisor::wake() const noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

void process_supervisor::tell(std::unique_ptr<job> j) {
  j->done(std::move(j->outcome));
  j.reset();
  const std::scoped_lock lock(mutex_);
  count_told();
}

void process_supervisor::count_told() {
  if (--outstanding_ == 0) all_told_.notify_all();
}

void process_supervisor::submit(process_request request, std::function<void(process_outcome)> done) {
  auto j = std::make_unique<job>();
  j->request = std::move(request);
  j->done = std::move(done);
  bool here = false;
  {
    const std::scoped_lock lock(mutex_);
    here = !closing_ && queued_ == 0 && slots_used_ < max_ &&
           (stop_ == nullptr || !stop_->load(std::memory_order_relaxed));
    ++outstanding_;
    if (here) ++slots_used_;
  }
  if (!here) {
    try {
      start_thread();
    } catch (...) {
      const std::scoped_lock lock(mutex_);
      count_told();
      throw;
    }
    {
      const std::scoped_lock lock(mutex_);
      ++queued_;
      submitted_.push_back(std::move(j));
    }
    wake();
    return;
  }
  // Spawned on this thread, with no hand-over before it starts; the
  // supervisor's thread (started now, the first time, while the command
  // runs) watches it from here on, and reports a command that could not
  // start like one that ended.
  start(*j);
  try {
    start_thread();
  } catch (...) {
    // Nothing could watch it: it is ended here, and the caller told why.
    if (j->outcome.started) finish(*j);
    const std::scoped_lock lock(mutex_);
    --slots_used_;
    count_told();
    throw;
  }
  {
    const std::scoped_lock lock(mutex_);
    started_.push_back(std::move(j));
  }
  wake();
}

process_outcome process_supervisor::run(process_request request) {
  std::promise<process_outcome> ended;
  auto result = ended.get_future();
  submit(std::move(request), [&ended](process_outcome o) { ended.set_value(std::move(o)); });
  return result.get();
}

bool process_supervisor::start(job& j) {
  const process_request& r = j.request;
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    j.outcome.error = fmt::format("cannot make its output pipes: {}", std::strerror(errno));
    close_fd(out[0]);
    close_fd(out[1]);
    return false;
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  posix_spawn_file_actions_addchdir_np(&actions, r.directory.c_str());
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  in_own_group_with_default_signals(attr);

  std::vector<char*> argv;
  argv.reserve(r.argv.size() + 1);
  for (const auto& a : r.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(r.environment.size() + 1);
  for (const auto& e : r.environment) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  const int failed = ::posix_spawn(&pid, r.program.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close_fd(out[1]);
  close_fd(err[1]);
  if (failed != 0) {
    close_fd(out[0]);
    close_fd(err[0]);
    j.outcome.error =
        fmt::format("cannot start '{}' in {}: {}", r.program.string(), r.directory.string(), std::strerror(failed));
    return false;
  }
  j.pid = pid;
  orphan_guard::instance().started(pid);
  j.outcome.started = true;
  j.pipe[1] = out[0];
  j.pipe[2] = err[0];
  for (int k = 1; k <= 2; ++k) ::fcntl(j.pipe[k], F_SETFL, ::fcntl(j.pipe[k], F_GETFL) | O_NONBLOCK);
  // Through syscall(): glibc 2.36's <sys/pidfd.h> declares pidfd_open
  // without C linkage for C++. -1 on an old kernel: polled with waitid.
  j.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (r.timeout.count() > 0) j.deadline = clock::now() + r.timeout;
  return true;
}

void process_supervisor::emit_line(job& j, int which, std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (which == 1 && line.substr(0, metric_prefix.size()) == metric_prefix) {
    std::string name;
    double value = 0;
    std::int64_t step = 0;
    if (parse_metric(line.substr(metric_prefix.size()), name, value, step)) {
      if (sink_ != nullptr) sink_->metric(j.request.step, name, value, step);
      return;
    }
  }
  if (which == 2) {
    auto& tail = j.outcome.stderr_tail;
    if (tail.size() == tail_lines) tail.erase(tail.begin());
    tail.emplace_back(line);
  }
  if (j.logged + line.size() > log_limit) {
    ++j.outcome.lines_not_logged;
    return;
  }
  j.logged += line.size();
  if (sink_ != nullptr) sink_->write(j.request.step, context::npos, line);
}

void process_supervisor::read_output(job& j, int which, bool until_eof) {
  int& fd = j.pipe[static_cast<std::size_t>(which)];
  std::string& partial = j.partial[static_cast<std::size_t>(which)];
  char buffer[chunk];
  // Draining a finished command: as much as is there, but not forever (a
  // process that left its group may still be writing).
  const int turns = until_eof ? 256 : reads_per_turn;
  for (int t = 0; t < turns && fd >= 0; ++t) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      close_fd(fd);
      break;
    }
    std::string_view data(buffer, static_cast<std::size_t>(n));
    while (!data.empty()) {
      const std::size_t nl = data.find('\n');
      if (nl == std::string_view::npos) {
        partial.append(data);
        while (partial.size() >= longest_line) {
          emit_line(j, which, std::string_view(partial).substr(0, longest_line));
          partial.erase(0, longest_line);
        }
        break;
      }
      if (partial.empty()) {
        emit_line(j, which, data.substr(0, nl));
      } else {
        partial.append(data.substr(0, nl));
        emit_line(j, which, partial);
        partial.clear();
      }
      data.remove_prefix(nl + 1);
    }
  }
}

void process_supervisor::finish(job& j) {
  // Whatever the leader left in its group goes with it; its zombie keeps
  // the group's id from being reused until it is reaped below.
  ::kill(-j.pid, SIGKILL);
  int status = 0;
  while (::waitpid(j.pid, &status, 0) < 0 && errno == EINTR) {
  }
  orphan_guard::instance().ended(j.pid);
  for (int k = 1; k <= 2; ++k) {
    read_output(j, k, true);
    if (!j.partial[static_cast<std::size_t>(k)].empty()) {
      emit_line(j, k, j.partial[static_cast<std::size_t>(k)]);
      j.partial[static_cast<std::size_t>(k)].clear();
    }
    close_fd(j.pipe[static_cast<std::size_t>(k)]);
  }
  close_fd(j.pidfd);
  auto& o = j.outcome;
  if (j.cancelled) {
    o.how = process_outcome::ending::cancelled;
  } else if (j.timed_out) {
    o.how = process_outcome::ending::timed_out;
  } else if (WIFEXITED(status)) {
    o.how = process_outcome::ending::exited;
    o.code = WEXITSTATUS(status);
  } else {
    o.how = process_outcome::ending::signaled;
    o.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
  if (WIFSIGNALED(status) && (j.cancelled || j.timed_out)) o.signal = WTERMSIG(status);
  if (WIFEXITED(status) && (j.cancelled || j.timed_out)) o.code = WEXITSTATUS(status);
}

void process_supervisor::loop() {
  std::vector<pollfd> fds;
  // Per pollfd: the running job and what it is (0: pidfd, 1/2: a pipe).
  std::vector<std::pair<job*, int>> owners;
  // Jobs submit() could not start, told outside the lock (done may submit).
  std::vector<std::unique_ptr<job>> refused;
  for (;;) {
    bool closing = false;
    bool stopping = false;
    {
      const std::scoped_lock lock(mutex_);
      while (!started_.empty()) {
        std::unique_ptr<job> j = std::move(started_.front());
        started_.pop_front();
        if (j->outcome.started) {
          running_.push_back(std::move(j));
        } else {
          --slots_used_;
          refused.push_back(std::move(j));
        }
      }
      while (!submitted_.empty()) {
        waiting_.push_back(std::move(submitted_.front()));
        submitted_.pop_front();
      }
      closing = closing_;
      stopping = closing || (stop_ != nullptr && stop_->load(std::memory_order_relaxed));
    }
    for (auto& j : refused) tell(std::move(j));
    refused.clear();
    auto now = clock::now();
    if (stopping) {
      {
        const std::scoped_lock lock(mutex_);
        queued_ -= waiting_.size();
      }
      for (auto& w : waiting_) {
        w->outcome.how = process_outcome::ending::cancelled;
        tell(std::move(w));
      }
      waiting_.clear();
      for (auto& r : running_) {
        if (r->terminated) continue;
        ::kill(-r->pid, SIGTERM);
        r->terminated = r->cancelled = true;
        r->kill_at = now + r->request.grace;
      }
    }
    while (!waiting_.empty()) {
      {
        const std::scoped_lock lock(mutex_);
        if (slots_used_ >= max_) break;
        ++slots_used_;
        --queued_;
      }
      std::unique_ptr<job> j = std::move(waiting_.front());
      waiting_.erase(waiting_.begin());
      if (start(*j)) {
        running_.push_back(std::move(j));
      } else {
        {
          const std::scoped_lock lock(mutex_);
          --slots_used_;
        }
        tell(std::move(j));  // may submit again: picked up next turn
      }
    }
    if (closing && running_.empty() && waiting_.empty()) {
      const std::scoped_lock lock(mutex_);
      if (submitted_.empty() && started_.empty()) return;
      continue;
    }

    now = clock::now();
    int timeout = running_.empty() ? -1 : static_cast<int>(stop_check.count());
    for (auto& r : running_) {
      if (!r->terminated && now >= r->deadline) {
        ::kill(-r->pid, SIGTERM);
        r->terminated = r->timed_out = true;
        r->kill_at = now + r->request.grace;
      }
      if (r->terminated && !r->outcome.killed && now >= r->kill_at) {
        ::kill(-r->pid, SIGKILL);
        r->outcome.killed = true;
      }
      if (!r->terminated) timeout = std::min(timeout, milliseconds_until(r->deadline, now));
      if (r->terminated && !r->outcome.killed) timeout = std::min(timeout, milliseconds_until(r->kill_at, now));
      if (r->pidfd < 0) timeout = std::min(timeout, 20);
    }

    fds.clear();
    owners.clear();
    fds.push_back({.fd = wake_fd_, .events = POLLIN, .revents = 0});
    owners.emplace_back(nullptr, -1);
    for (auto& r : running_) {
      if (r->pidfd >= 0) {
        fds.push_back({.fd = r->pidfd, .events = POLLIN, .revents = 0});
        owners.emplace_back(r.get(), 0);
      }
      for (int k = 1; k <= 2; ++k) {
        if (r->pipe[static_cast<std::size_t>(k)] < 0) continue;
        fds.push_back({.fd = r->pipe[static_cast<std::size_t>(k)], .events = POLLIN, .revents = 0});
        owners.emplace_back(r.get(), k);
      }
    }
    const int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready < 0 && errno != EINTR) timeout = 10;  // keep going; a stuck poll would hang the run
    if (ready > 0) {
      for (std::size_t f = 0; f < fds.size(); ++f) {
        if (fds[f].revents == 0) continue;
        auto [j, what] = owners[f];
        if (j == nullptr) {
          std::uint64_t count = 0;
          [[maybe_unused]] const auto n = ::read(wake_fd_, &count, sizeof count);
        } else if (what == 0) {
          j->exited = true;
        } else {
          read_output(*j, what, false);
        }
      }
    }
    for (auto& r : running_) {
      if (r->exited || r->pidfd >= 0) continue;
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(r->pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0)
        r->exited = true;
    }
    for (std::size_t k = 0; k < running_.size();) {
      if (!running_[k]->exited) {
        ++k;
        continue;
      }
      std::unique_ptr<job> j = std::move(running_[k]);
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(k));
      finish(*j);
      {
        const std::scoped_lock lock(mutex_);
        --slots_used_;
      }
      tell(std::move(j));
    }
  }
}

}  // namespace penstock::detail::r1
