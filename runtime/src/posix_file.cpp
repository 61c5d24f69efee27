// posix_file: the cache store's POSIX file layer; see posix_file.hpp. Every
// failure is a cache_error whose message names the file and the errno text.
#include "posix_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <system_error>

#include <fmt/format.h>

#include "cache_store.hpp"

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

// Linux transfers at most this much in one read() / write() call.
constexpr std::size_t max_io = 0x7ffff000;

}  // namespace

std::string errno_text(int error) { return std::generic_category().message(error); }

unique_fd& unique_fd::operator=(unique_fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

unique_fd::~unique_fd() {
  if (fd_ >= 0) ::close(fd_);
}

void unique_fd::close(const fs::path& file) {
  const int fd = std::exchange(fd_, -1);
  if (fd >= 0 && ::close(fd) != 0 && errno != EINTR) {
    throw cache_error(fmt::format("cannot close {}: {}", file.string(), errno_text(errno)));
  }
}

void write_all(int fd, const std::byte* data, std::size_t size, const fs::path& file) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, std::min(size, max_io));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw cache_error(fmt::format("cannot write {}: {}", file.string(), errno_text(errno)));
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

void sync_file(int fd, const fs::path& file) {
  if (::fsync(fd) != 0) throw cache_error(fmt::format("cannot fsync {}: {}", file.string(), errno_text(errno)));
}

void sync_directory(const fs::path& dir) {
  const unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw cache_error(fmt::format("cannot open directory {}: {}", dir.string(), errno_text(errno)));
  sync_file(fd.get(), dir);
}

void ensure_directory(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0) {
    sync_directory(dir.parent_path());
  } else if (errno == ENOENT) {  // blobs/ itself was removed behind our back
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw cache_error(fmt::format("cannot create directory {}: {}", dir.string(), ec.message()));
    sync_directory(dir.parent_path());
  } else if (errno != EEXIST) {
    throw cache_error(fmt::format("cannot create directory {}: {}", dir.string(), errno_text(errno)));
  }
}

std::vector<std::string> list_directory(const fs::path& dir) {
  struct close_dir {
    void operator()(DIR* d) const noexcept { ::closedir(d); }
  };
  const std::unique_ptr<DIR, close_dir> stream(::opendir(dir.c_str()));
  if (!stream) {
    if (errno == ENOENT) return {};
    throw cache_error(fmt::format("cannot list {}: {}", dir.string(), errno_text(errno)));
  }
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(stream.get());
    if (entry == nullptr) break;
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  if (errno != 0) throw cache_error(fmt::format("cannot list {}: {}", dir.string(), errno_text(errno)));
  return names;
}

bool remove_file(const fs::path& file) {
  if (::unlink(file.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  throw cache_error(fmt::format("cannot remove {}: {}", file.string(), errno_text(errno)));
}

}  // namespace penstock::detail::r1
