// Waiting, without sleeping in a loop, for what another process does: a
// process to end (pidfd_open + poll) and a file to appear (inotify + poll).
// Each wait is bounded, so a hang fails the test instead of stalling it.
#pragma once

#include <poll.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>

namespace penstock_test {

namespace detail {

// The milliseconds left until `deadline`, for poll (0 when it has passed).
inline int left_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Closes its descriptor when the scope ends.
struct closes_on_exit {
  int fd;
  ~closes_on_exit() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace detail

// Whether process `pid` (any process, not only a child) has ended within
// `timeout`: a zombie no one has reaped yet counts as ended. A pid that no
// longer exists has ended.
inline bool ends_within(pid_t pid, std::chrono::milliseconds timeout) {
  const detail::closes_on_exit fd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
  if (fd.fd < 0) return errno == ESRCH;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    pollfd p{.fd = fd.fd, .events = POLLIN, .revents = 0};
    const int n = ::poll(&p, 1, detail::left_ms(deadline));
    if (n > 0) return true;  // readable: the process has exited
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

// Whether `path` exists within `timeout`; its directory must exist. A file
// made elsewhere and renamed in counts as soon as the rename is done.
inline bool appears_within(const std::filesystem::path& path, std::chrono::milliseconds timeout) {
  const detail::closes_on_exit fd{::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)};
  if (fd.fd < 0) return false;
  const std::filesystem::path directory = path.has_parent_path() ? path.parent_path() : ".";
  if (::inotify_add_watch(fd.fd, directory.c_str(), IN_CREATE | IN_MOVED_TO) < 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Watched first, then looked at: a file made in between is seen either way.
  while (!std::filesystem::exists(path)) {
    pollfd p{.fd = fd.fd, .events = POLLIN, .revents = 0};
    const int n = ::poll(&p, 1, detail::left_ms(deadline));
    if (n == 0) return std::filesystem::exists(path);
    if (n < 0 && errno != EINTR) return false;
    alignas(inotify_event) char events[4096];
    while (::read(fd.fd, events, sizeof events) > 0) {
    }  // drained; the loop looks at the path again
  }
  return true;
}

}  // namespace penstock_test
