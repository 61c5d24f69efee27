// process_identity: pid, start time, host and token of this process, and the
// liveness test for another one (kill(pid, 0) and /proc/<pid>/stat).
#include "process_identity.hpp"

#include <signal.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <exception>
#include <fstream>
#include <limits>
#include <mutex>
#include <random>
#include <sstream>

#include <penstock/digest.hpp>

namespace penstock::detail::r1 {

namespace {

// /proc/<pid>/stat after the command name: "S ppid ..." (field 3 onwards);
// empty if it cannot be read (no such process, or no /proc).
std::string process_stat(std::int64_t pid) {
  std::ifstream stat_file("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat_file, text)) return {};
  const auto paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return {};
  return text.substr(paren + 2);
}

}  // namespace

std::optional<std::int64_t> process_start_time(std::int64_t pid) {
  std::istringstream fields(process_stat(pid));
  std::string field;
  for (int i = 3; i <= 22; ++i)
    if (!(fields >> field)) return std::nullopt;
  try {
    return std::stoll(field);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool process_alive(std::int64_t pid, std::optional<std::int64_t> started) {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  const std::string stat = process_stat(pid);
  if (stat.empty()) return true;  // no /proc: trust kill()
  if (stat[0] == 'Z' || stat[0] == 'X') return false;
  if (!started) return true;  // a row written before schema 4, or a temporary's old-format name
  const auto now_started = process_start_time(pid);
  return !now_started || *now_started == *started;
}

std::string host_name() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0) return "unknown-host";
  return name.data();
}

owner_token random_token() {
  owner_token token{};
  std::size_t got = 0;
  while (got < token.size()) {
    const ssize_t n = ::getrandom(token.data() + got, token.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::random_device device;  // getrandom unavailable: fall back
      for (auto& b : token) b = static_cast<unsigned char>(device());
      return token;
    }
    got += static_cast<std::size_t>(n);
  }
  return token;
}

std::uint32_t random_u32() {
  const owner_token t = random_token();
  return static_cast<std::uint32_t>(t[0]) | static_cast<std::uint32_t>(t[1]) << 8 |
         static_cast<std::uint32_t>(t[2]) << 16 | static_cast<std::uint32_t>(t[3]) << 24;
}

process_identity process_identity::current() {
  // Every run opens a store, and so asks: /proc/self/stat (an ifstream)
  // and the host's digest once per process, not once per run. Never
  // destroyed: the record's writer asks as the process exits.
  static auto* mutex = new std::mutex;
  static auto* known_here = new process_identity;
  process_identity& known = *known_here;
  process_identity self;
  {
    const std::scoped_lock lock(*mutex);
    if (known.pid != ::getpid()) {
      known.pid = ::getpid();
      known.started = process_start_time(known.pid);
      known.host = host_name();
      known.host_tag = hasher().update(known.host).finish().hex().substr(0, 8);
    }
    self = known;
  }
  self.token = random_token();
  return self;
}

bool process_identity::other_gone(std::int64_t other_pid, std::optional<std::int64_t> other_started) const {
  if (other_pid == pid) return other_started && started && *other_started != *started;
  return !process_alive(other_pid, other_started);
}

}  // namespace penstock::detail::r1
