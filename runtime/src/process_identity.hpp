// process_identity: who a process is, for the rows and files it leaves in a
// cache directory (pid, start time from /proc, host, a random token), and whether such an owner is still alive.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace penstock::detail::r1 {

// 16 random bytes: a store's owner token in leases and marks.
using owner_token = std::array<unsigned char, 16>;

// When the process started (field 22 of /proc/<pid>/stat, clock ticks since
// boot): with the pid, it tells a process from a later one that was given
// the same pid. nullopt where it cannot be read.
[[nodiscard]] std::optional<std::int64_t> process_start_time(std::int64_t pid);

// True unless the process certainly does not exist: kill(pid, 0) finds no
// such process, or it is a zombie (a child killed but not reaped yet still
// answers kill), or it started at another time than `started` (the pid was
// given to a new process after the owner died). `started` nullopt: the pid alone decides.
[[nodiscard]] bool process_alive(std::int64_t pid, std::optional<std::int64_t> started);

[[nodiscard]] std::string host_name();
// getrandom(), or std::random_device where it is unavailable.
[[nodiscard]] owner_token random_token();
// 32 random bits, the same way: for names (run ids, staging directories)
// and seeds. (A std::random_device is set up again on each construction.)
[[nodiscard]] std::uint32_t random_u32();

struct process_identity {
  pid_t pid = 0;
  std::optional<std::int64_t> started;  // process_start_time(pid)
  std::string host;
  std::string host_tag;  // 8 hex digits of the host name's digest: short enough for a file name
  owner_token token{};   // one per store: tells two stores of one process apart

  // This process, with a fresh token. The pid's start time and the host
  // are read once per process (again in a forked child).
  [[nodiscard]] static process_identity current();

  // Is the process (`other_pid`, `other_started`) of this host gone? A row or
  // file with this process's pid but another start time was left by an
  // earlier process that had the same pid (a container's pid 1, say).
  [[nodiscard]] bool other_gone(std::int64_t other_pid, std::optional<std::int64_t> other_started) const;
};

}  // namespace penstock::detail::r1
