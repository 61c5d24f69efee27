// posix_file: the cache store's POSIX file layer (an owned descriptor, whole
// writes, fsync of files and directories, mkdir, listing, unlink), each failure a cache_error naming the file.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace penstock::detail::r1 {

// strerror's text for an errno value.
[[nodiscard]] std::string errno_text(int error);

// A file descriptor, closed by the destructor.
class unique_fd {
 public:
  explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept;
  ~unique_fd();
  [[nodiscard]] int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // close() with its error reported: for a file just written, a failed
  // close can mean lost data.
  void close(const std::filesystem::path& file);

 private:
  int fd_;
};

// write() until every byte is written (EINTR retried).
void write_all(int fd, const std::byte* data, std::size_t size, const std::filesystem::path& file);
void sync_file(int fd, const std::filesystem::path& file);
void sync_directory(const std::filesystem::path& dir);
// mkdir that tolerates an existing directory; a new one is made durable
// before a blob is renamed into it.
void ensure_directory(const std::filesystem::path& dir);
// The names in `dir` (not . and ..); empty if `dir` does not exist.
[[nodiscard]] std::vector<std::string> list_directory(const std::filesystem::path& dir);
// unlink(): true if the file was removed, false if it was not there.
bool remove_file(const std::filesystem::path& file);

}  // namespace penstock::detail::r1
